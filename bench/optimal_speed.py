"""How fast is the offline optimum? Seconds of dynamic programming per hour of trace.

Run: ``python bench/optimal_speed.py [--envs default ...] [--episodes 6]``

Solves the optimum of test episodes of each scenario (one core: numpy, no threads) and prints
the seconds it takes per hour of trace, with the time units per hour (grid slots or arrival
ticks) and the modes per unit. As a reference measured in the same run, it also times one
replay of those episodes by a static mode through the single env (the same frames, one at a
time), and prints the ratio. Goal: under 10 s per trace-hour.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from slimrl.env.dynamics import Episode  # noqa: E402
from slimrl.env.optimum import solve_episode  # noqa: E402
from slimrl.env.slimsplit import SlimSplitEnv  # noqa: E402

SCENARIOS = ("default", "edge-heavy", "energy-bound", "5g-driving", "fmnist-iot")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=list(SCENARIOS))
    p.add_argument("--episodes", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3, help="best of this many")
    args = p.parse_args(argv)
    print(f"{'scenario':<14} {'s/trace-h':>10} {'units/h':>10} {'modes':>6} "
          f"{'replay s/trace-h':>17} {'DP / replay':>12}")  # fmt: skip
    for name in args.envs:
        env = SlimSplitEnv(name, split="test", action_space="flat")
        eps = []
        for seed in range(args.episodes):
            env.reset(seed=seed)
            st = env.episode_state()
            eps.append((Episode(*(st[k] for k in Episode._fields)), st["horizon"]))
        hours = sum(h for _, h in eps) * env.world.unit_s / 3600
        best_dp = best_rp = np.inf
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for ep, h in eps:
                solve_episode(env.world, ep, h)
            best_dp = min(best_dp, time.perf_counter() - t0)
            t0 = time.perf_counter()
            for seed in range(args.episodes):
                env.reset(seed=seed)
                done = False
                while not done:
                    done = env.step(0)[3]
            best_rp = min(best_rp, time.perf_counter() - t0)
        units = sum(h for _, h in eps) / hours
        modes = int(env.world.mode_mask.sum())
        print(f"{name:<14} {best_dp / hours:10.2f} {units:10.0f} {modes:6d} "
              f"{best_rp / hours:17.2f} {best_dp / best_rp:12.1f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
