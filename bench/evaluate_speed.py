"""``slimrl evaluate`` at scale: wall time, peak memory and frames/s against raw vector stepping.

Run: ``python bench/evaluate_speed.py [--traces-dir traces/oboe] [--sizes 10 25 50 100]
[--repeats 3] [--jobs 1]``

Each size T is a folder of the first T traces of ``--traces-dir`` replayed start to end (one
episode per trace) with 4 policies, a trained one among them (``agents/reference/ppo-default``
as its run folder, which loads torch and SB3, or as its exported bundle, numpy only;
``paper-ewma``, ``tuned-threshold``, ``tuned-mpc``; plus, as always, the 16 static modes,
``oracle`` and ``optimal``). Every run is ``slimrl evaluate`` in a fresh process (its defaults:
one torch thread, frames streamed to ``per_step.parquet``), repeated ``--repeats`` times; the
figures are medians (min..max). Peak RSS is the child's ``VmHWM`` (with ``--jobs``: the
largest worker's too). The reference, measured
between the runs: the raw ``SlimSplitVectorEnv`` stepping random actions with as many sub-envs
as the evaluation has episodes x policies. Goals: 100 traces x 4 policies under 600 MB peak RSS;
time per (trace x policy) flat across sizes (linear).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HEURISTICS = ["paper-ewma", "tuned-threshold", "tuned-mpc"]
#: the trained policy: its run folder (SB3 + torch) or its exported bundle (numpy only)
TRAINED = {"run": "agents/reference/ppo-default", "bundle": "agents/reference/ppo-default/bundle"}
ROOT = Path(__file__).resolve().parents[1]


def raw_rate(scenario: str, trace_dir: Path, n: int, steps: int) -> float:
    """Frames/s of the vector env alone (random flat actions drawn beforehand)."""
    from slimrl.env.vector import SlimSplitVectorEnv

    venv = SlimSplitVectorEnv(n, scenario, trace_dir=trace_dir, split=None, action_space="flat")
    venv.reset(seed=0)
    acts = np.random.default_rng(0).integers(0, venv.single_action_space.n, (steps, n))
    t0 = time.perf_counter()
    for a in acts:
        venv.step(a)
    return n * steps / (time.perf_counter() - t0)


def vm_hwm() -> int:
    """Peak resident set size of this process since it started (Linux ``VmHWM``), bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def child(args: argparse.Namespace) -> None:
    """One ``slimrl evaluate`` in this (fresh) process; prints wall, frames and peak RSS."""
    from slimrl.cli import main

    argv = ["evaluate", "--env", args.scenario, "--traces", args.child_traces, "--out",
            args.child_out, "--no-plots", "--no-progress", "--jobs", str(args.jobs),
            "--policies", TRAINED[args.trained], *HEURISTICS]  # fmt: skip
    t0 = time.perf_counter()
    with open(os.devnull, "w") as null:
        stdout, sys.stdout = sys.stdout, null
        try:
            code = main(argv)
        finally:
            sys.stdout = stdout
    wall = time.perf_counter() - t0
    meta = json.loads((Path(args.child_out) / "evaluation.json").read_text())
    peak = vm_hwm()  # not ru_maxrss: it keeps the parent's high-water mark across fork + exec
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 if args.jobs > 1 \
        else 0  # fmt: skip
    print(json.dumps({"code": code, "wall_s": wall, "frames": meta["frames_all_policies"],
                      "policies": len(meta["policies"]) + len(meta["references"]),
                      "peak_rss": peak, "peak_rss_workers": peak_children}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--traces-dir", default=str(ROOT / "traces" / "oboe"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 25, 50, 100])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument(
        "--trained",
        choices=list(TRAINED),
        nargs="+",
        default=["run", "bundle"],
        help="the trained policy as its run folder (torch) or its bundle (numpy)",
    )
    ap.add_argument("--raw-steps", type=int, default=200)
    ap.add_argument("--child-traces", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_traces:
        args.trained = args.trained[0]
        child(args)
        return

    files = sorted(
        p
        for p in Path(args.traces_dir).rglob("*")
        if p.is_file() and p.suffix not in (".md",) and "LICENSE" not in p.name
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    print(f"scenario {args.scenario}; 4 policies (the trained one, {', '.join(HEURISTICS)}) + 16 "
          f"static modes, oracle, optimal; traces from {args.traces_dir}; --jobs {args.jobs}; "
          f"medians of {args.repeats} (min..max)")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for T, trained in [(T, t) for t in args.trained for T in args.sizes]:
            folder = Path(tmp) / f"traces{T}"
            folder.mkdir(exist_ok=True)
            for f in files[:T]:
                if not (folder / f.name).exists():
                    (folder / f.name).symlink_to(f)
            runs, raws = [], []
            for r in range(args.repeats):
                out = Path(tmp) / f"ev{T}_{trained}_{r}"
                cmd = [
                    sys.executable,
                    __file__,
                    "--scenario",
                    args.scenario,
                    "--jobs",
                    str(args.jobs),
                    "--child-traces",
                    str(folder),
                    "--child-out",
                    str(out),
                    "--trained",
                    trained,
                ]
                res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
                width = T * runs[-1]["policies"]
                raws.append(raw_rate(args.scenario, folder, width, args.raw_steps))
            wall = [x["wall_s"] for x in runs]
            rate = [x["frames"] / x["wall_s"] for x in runs]
            rss = max(max(x["peak_rss"], x["peak_rss_workers"]) for x in runs)
            ratio = [a / b for a, b in zip(rate, raws, strict=True)]
            per = [w / (T * runs[0]["policies"]) * 1e3 for w in wall]
            rows.append((trained, T, statistics.median(per)))
            print(f"{trained:6s} {T:4d} traces: wall {statistics.median(wall):7.1f} s "
                  f"({min(wall):.1f}..{max(wall):.1f}), {statistics.median(per):6.1f} ms per "
                  "trace x policy, "
                  f"{runs[0]['frames']:,} frames, {statistics.median(rate):9,.0f} frames/s "
                  f"= {statistics.median(ratio):.2f} x raw vector stepping "
                  f"({statistics.median(raws):,.0f} frames/s at width {T * runs[0]['policies']}),"
                  f" peak RSS {rss / 2**20:6.0f} MiB")  # fmt: skip
    for trained in args.trained:
        mine = [r for r in rows if r[0] == trained]
        if len(mine) > 1:
            print(
                f"{trained}: time per trace x policy, largest / smallest size: "
                f"{mine[-1][2] / mine[0][2]:.2f} (1.0 = linear in traces x policies)"
            )


if __name__ == "__main__":
    main()
