"""``slimrl traces``: summarise (``info``) or plot (``plot``) a trace file or folder, or turn a
goodput trace measured with a known payload into capacity (``to-capacity``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from slimrl.traces.sets import SPLITS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="a table of statistics per trace")
    plot = sub.add_parser("plot", help="capacity (Mbit/s) over time, one subplot per trace")
    for p in (info, plot):
        p.add_argument("path", type=Path, help="a trace file or a folder of traces")
        p.add_argument("--pattern", default="*", help="glob for files in a folder (default: *)")
        p.add_argument(
            "--resolution-ms",
            type=float,
            default=100,
            help="bin width for mahimahi traces in ms (default: 100)",
        )
        p.add_argument(
            "--column",
            default="DL_bitrate",
            choices=("DL_bitrate", "UL_bitrate"),
            help="series of UCC 5G CSVs (default: DL_bitrate)",
        )
        p.add_argument("--split", choices=SPLITS, default=None, help="only this split")
    plot.add_argument("--out", type=Path, required=True, help="PNG file to write")
    cap = sub.add_parser(
        "to-capacity",
        help="goodput of a known payload -> capacity, given the per-transfer latency",
        description="A transfer of P bytes takes L + P / C; a goodput G measured with P-byte "
        "transfers gives the capacity C = P / (P / G - L). Writes the canonical CSV.",
    )
    cap.add_argument("path", type=Path, help="the goodput trace (any supported format)")
    cap.add_argument(
        "--payload-bytes",
        type=float,
        required=True,
        metavar="B",
        help="payload of the transfers the goodput was measured with",
    )
    cap.add_argument(
        "--latency-ms",
        type=float,
        required=True,
        metavar="L",
        help="per-transfer latency the goodput contains (e.g. uplink + answer for a sample "
        "taken from the end-to-end time)",
    )
    cap.add_argument("--out", type=Path, required=True, metavar="OUT.csv")
    cap.add_argument("--resolution-ms", type=float, default=100, help="mahimahi bin width (ms)")
    cap.add_argument(
        "--column", default="DL_bitrate", choices=("DL_bitrate", "UL_bitrate"), help="UCC column"
    )


def run(args: argparse.Namespace) -> int:
    from slimrl.traces import TraceSet

    if args.action == "to-capacity":
        return _to_capacity(args)
    traces = TraceSet.from_path(
        args.path,
        pattern=args.pattern,
        split=args.split,
        resolution_ms=args.resolution_ms,
        column=args.column,
    )
    if args.action == "info":
        _info(traces)
    else:
        _plot(traces, args.out)
    return 0


def _to_capacity(args: argparse.Namespace) -> int:
    from slimrl.traces import load_trace
    from slimrl.traces.convert import goodput_to_capacity

    good = load_trace(args.path, resolution_ms=args.resolution_ms, column=args.column)
    cap = goodput_to_capacity(good, args.payload_bytes, args.latency_ms)
    cap.to_csv(args.out)
    print(
        f"wrote {args.out}: mean goodput {good.mean_mbps:.4g} Mbit/s -> mean capacity "
        f"{cap.mean_mbps:.4g} Mbit/s ({args.payload_bytes:g} B payloads, {args.latency_ms:g} ms)"
    )
    return 0


def _info(traces) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    table = Table(title=f"{traces.root} ({len(traces)} traces)")
    table.add_column("file", no_wrap=True)
    table.add_column("format")
    for col in ("duration s", "mean Mbit/s", "p5 Mbit/s", "p50 Mbit/s", "p95 Mbit/s", "outage"):
        table.add_column(col, justify="right")
    for tr in traces:
        p5, p50, p95 = tr.percentile_mbps([5, 50, 95])
        table.add_row(
            tr.name,
            tr.fmt,
            f"{tr.duration:.1f}",
            f"{tr.mean_mbps:.2f}",
            f"{p5:.2f}",
            f"{p50:.2f}",
            f"{p95:.2f}",
            f"{tr.outage_fraction:.3f}",
        )
    console.print(table)


def _plot(traces, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from slimrl.io import atomic_path

    n = len(traces)
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.2 + 1.6 * n), squeeze=False)
    for ax, tr in zip(axes[:, 0], traces, strict=True):
        mbps = tr.mbps
        ax.step(np.append(tr.times, tr.duration), np.append(mbps, mbps[-1]), where="post", lw=0.7)
        ax.set_title(f"{tr.name} (mean {tr.mean_mbps:.2f} Mbit/s)", fontsize=9, loc="left")
        ax.set_ylabel("Mbit/s")
        ax.set_xlim(0, tr.duration)
        ax.set_ylim(bottom=0)
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".").lower() or "png", dpi=100)
    plt.close(fig)
    print(f"wrote {out}")
