"""``slimrl device run`` / ``slimrl device compare``: the device loop against a real edge."""

from __future__ import annotations

import argparse
from pathlib import Path

from slimrl.cli import add_scenario_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = sub.add_parser("run", help="run frames through the policy, the uplink and the edge")
    r.add_argument(
        "--bundle",
        type=Path,
        default=None,
        metavar="DIR",
        help="exported policy bundle (default: agents/reference)",
    )
    r.add_argument(
        "--policy",
        default=None,
        metavar="NAME",
        help="a heuristic name (static:K,B, paper-ewma, rate-threshold, ...) or a "
        "bundle folder, instead of --bundle",
    )
    r.add_argument("--edge", required=True, metavar="HOST:PORT", help="edge server address")
    r.add_argument(
        "--trace",
        type=Path,
        required=True,
        metavar="FILE",
        help="uplink trace that paces the sender",
    )
    r.add_argument("--frames", type=int, default=500, metavar="N")
    r.add_argument(
        "--deadline-ms",
        type=float,
        default=None,
        metavar="D",
        help="deadline (default: the bundle's scenario deadline)",
    )
    r.add_argument("--out", type=Path, required=True, metavar="LOG", help="JSON-lines log")
    r.add_argument(
        "--env",
        default=None,
        metavar="SCENARIO",
        help="scenario for heuristics (default: the bundle's)",
    )
    r.add_argument("--seed", type=int, default=0, help="order of the test images, random policy")
    r.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="PATH",
        help="model checkpoint (default: the shipped weights)",
    )
    r.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="Fashion-MNIST folder (default: $SLIMRL_FMNIST_DIR, the Debian package's, "
        "../shared/data/fashion-mnist, else the test split shipped with slimrl)",
    )
    r.add_argument("--start-s", type=float, default=0.0, help="where in the trace to start (s)")
    r.add_argument(
        "--trace-scale",
        type=float,
        default=None,
        help="multiply the trace's capacity (default: the scenario's traces.scale)",
    )
    r.add_argument(
        "--base-delay-ms",
        type=float,
        default=0.0,
        help="one-way propagation delay to emulate on each way",
    )
    r.add_argument("--timeout-s", type=float, default=10.0, help="send / receive timeout")
    r.add_argument("--connect-timeout-s", type=float, default=2.0)
    r.add_argument(
        "--max-outage-s",
        type=float,
        default=60.0,
        help="give up after this long without an answer from the edge",
    )
    r.add_argument("--threads", type=int, default=1, help="torch threads of the encoder")
    r.add_argument("--quiet", action="store_true", help="no progress bar")

    c = sub.add_parser(
        "compare",
        help="device logs against the simulator: per policy, on-time and e2e p50/p95 of the "
        "run and of its closed-loop replay; per frame, measured next to simulated",
    )
    c.add_argument("logs", type=Path, nargs="+", metavar="LOG", help="device logs (one a policy)")
    add_scenario_arguments(c, default=None, required=True)
    c.add_argument(
        "--trace",
        type=Path,
        default=None,
        metavar="FILE",
        help="capacity trace to simulate on (default: the one named in each LOG.meta.json, "
        "times its trace_scale; a given FILE is used as it is)",
    )
    c.add_argument(
        "--trace-scale",
        type=float,
        default=None,
        metavar="X",
        help="multiply the capacity of --trace (e.g. by the share of its pacing trace a link "
        "delivered, as `slimrl calibrate` reports)",
    )
    c.add_argument(
        "--keys",
        type=int,
        default=8,
        metavar="N",
        help="closed-loop replays per log, each with its own random draws (default 8)",
    )
    c.add_argument(
        "--summary", type=Path, default=None, metavar="CSV", help="write the per-policy table"
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "compare":
        return _compare(args)
    import sys

    from rich.console import Console

    from slimrl.runtime.device_run import DeviceRunConfig, RunInterrupted, run_device

    cfg = DeviceRunConfig(
        edge=args.edge,
        trace=args.trace,
        frames=args.frames,
        out=args.out,
        deadline_ms=args.deadline_ms,
        bundle=args.bundle,
        policy=args.policy,
        scenario=args.env,
        seed=args.seed,
        trace_scale=args.trace_scale,
        model=args.model,
        data=args.data,
        start_s=args.start_s,
        base_delay_ms=args.base_delay_ms,
        connect_timeout_s=args.connect_timeout_s,
        io_timeout_s=args.timeout_s,
        max_outage_s=args.max_outage_s,
        threads=args.threads,
    )
    try:
        _, meta = run_device(cfg, progress=not args.quiet)
    except RunInterrupted as exc:  # the log is written; exit as a signal-ended process would
        print(f"slimrl device: {exc}", file=sys.stderr)
        return exc.exit_code
    s = meta["summary"]
    Console(stderr=True).print(
        f"{s['frames']} frames: on time {s['on_time_rate']:.1%}, correct {s['accuracy']:.1%}, "
        f"correct and on time {s['useful_rate']:.1%}, e2e p50 {s['e2e_p50_ms']:.1f} ms "
        f"p95 {s['e2e_p95_ms']:.1f} ms, {s['errors']} failed; decision "
        f"{s['decide_us_p50']:.1f} us (p50); log: {args.out}"
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    from slimrl.errors import SlimrlError
    from slimrl.runtime.compare import (
        closed_loop_log,
        compare_log,
        plot,
        print_closed_loop,
        print_table,
        write_csv,
    )
    from slimrl.scenario import load_scenario, parse_set_args

    if args.keys < 1:
        raise SlimrlError(f"--keys {args.keys}: expected at least 1")
    scenario = load_scenario(args.env, parse_set_args(args.set) or None)
    loop_rows = []
    for log in args.logs:
        rows, summary, meta = compare_log(log, scenario, args.trace)
        stem = log.with_suffix("")
        write_csv(f"{stem}.compare.csv", rows)
        plot(f"{stem}.compare.png", rows, meta.get("deadline_ms"))
        print_table(summary, f"{log.name}: measured vs simulated, frame by frame ({scenario.name})")
        print(f"wrote {stem}.compare.csv and {stem}.compare.png")
        loop_rows.append(
            closed_loop_log(log, scenario, args.trace, trace_scale=args.trace_scale, keys=args.keys)
        )
    print_closed_loop(loop_rows, f"closed loop: measured (m) vs simulated (s), {scenario.name}")
    if args.summary is not None:
        write_csv(args.summary, loop_rows)
        print(f"wrote {args.summary}")
    return 0
