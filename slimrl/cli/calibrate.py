"""``slimrl calibrate LOG --out my-scenario.yaml``: a scenario fitted to a real device run."""

from __future__ import annotations

import argparse
from pathlib import Path

from slimrl.cli import add_scenario_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Fit a scenario to a device log (`slimrl device run`, or your testbed's log in its "
        "format): the link's per-transfer latency and a capacity trace (transfer = latency + "
        "bytes / capacity, per time window), compute, edge and answer times as measured "
        "samples. Writes OUT.yaml, OUT.trace.csv and OUT.samples.csv, then replays the log's "
        "policy on the fitted scenario to show how well it reproduces the run."
    )
    parser.add_argument("log", type=Path, metavar="LOG", help="device log (JSON lines)")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT.yaml")
    add_scenario_arguments(
        parser,
        default=None,
        help="base scenario for the model, device profile, reward and modes (default: the one "
        "named in LOG.meta.json, or its bundle's)",
    )
    parser.add_argument(
        "--window-s",
        type=float,
        default=2.0,
        metavar="S",
        help="time window of one fitted capacity (default 2 s of trace time)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=None,
        metavar="L",
        help="fix the per-transfer latency instead of fitting it (a run that used one payload "
        "size cannot tell it from the capacity)",
    )
    parser.add_argument("--keys", type=int, default=8, metavar="N", help="replays in the check")
    parser.add_argument("--no-check", action="store_true", help="skip the closed-loop replay")


def _base(args: argparse.Namespace, meta: dict) -> object:

    from slimrl.errors import SlimrlError

    if args.env is not None:
        return args.env
    if meta.get("scenario"):
        return meta["scenario"]
    bundle = meta.get("bundle")
    if bundle and (Path(bundle) / "manifest.json").is_file():
        from slimrl.bundle.format import read_manifest

        sc = read_manifest(bundle, verify=False).get("scenario")
        if sc:
            return sc
    raise SlimrlError(
        f"{args.log}: the log names no scenario; pass --env SCENARIO (the one the run's model "
        "and device profiles come from)"
    )


def run(args: argparse.Namespace) -> int:
    from slimrl.runtime.calibrate import calibrate
    from slimrl.runtime.compare import closed_loop_log, print_closed_loop
    from slimrl.runtime.device import read_log
    from slimrl.scenario import load_scenario, parse_set_args

    _, meta = read_log(args.log)
    base = load_scenario(_base(args, meta), parse_set_args(args.set) or None)
    cal = calibrate(args.log, base, args.out, window_s=args.window_s, latency_ms=args.latency_ms)
    how = "fitted" if cal.latency_fitted else "given"
    print(
        f"wrote {cal.scenario_path}, {cal.trace_path.name} and {cal.samples_path.name}: "
        f"{cal.frames} frames; per-transfer latency {cal.latency_ms:.2f} ms ({how}, spread "
        f"{cal.residual_ms:.2f} ms), answer {cal.answer_ms:.2f} ms, capacity "
        f"{cal.capacity_mbps:.4g} Mbit/s on average over {cal.windows} windows ({cal.fades} "
        f"fades); "
        f"{cal.modes_measured} modes measured, {cal.modes_filled} filled from the nearest"
        + (
            f"; the link delivered {cal.delivery:.3f} of the trace that paced the run"
            if cal.delivery is not None
            else ""
        )
    )
    if not args.no_check:
        row = closed_loop_log(args.log, cal.scenario_path, cal.trace_path, keys=args.keys)
        print_closed_loop([row], "the run replayed on the calibrated scenario")
    return 0
