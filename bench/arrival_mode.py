"""Closed loop or a camera at a fixed frame rate: which makes the scenario's control problem?

Run: ``python bench/arrival_mode.py [--env default] [--episodes 32]``

Evaluates the best static mode, ``tuned-threshold``, the greedy clairvoyant ``oracle`` and the
offline ``optimal`` on the validation and test splits, once in the closed loop and once with
periodic arrivals at one frame per deadline, and prints reward per second and the share of the
headroom (optimal minus best static) that the greedy oracle already takes: the smaller that
share and the larger the headroom, the more a sequential controller can earn.
"""

from __future__ import annotations

import argparse
import sys

from slimrl.evaluate.api import rollout_policies
from slimrl.scenario import load_scenario


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="default")
    p.add_argument("--episodes", type=int, default=32)
    args = p.parse_args(argv)
    sc = load_scenario(args.env)
    fps = 1000.0 / sc.deadline_ms
    print(f"{'arrival':<22} {'split':<6} {'static*':>8} {'tuned-thr':>9} {'oracle':>8} "
          f"{'optimal':>8} {'headroom':>9} {'greedy share':>12}")  # fmt: skip
    modes = (
        ("closed", {"arrival": {"mode": "closed"}}),
        (f"periodic {fps:.2f} fps", {"arrival": {"mode": "periodic", "fps": fps}}),
    )
    for label, over in modes:
        for split in ("val", "test"):
            ev = rollout_policies(args.env, split, ["tuned-threshold"], episodes=args.episodes,
                                  overrides=over, progress=False, keep_steps=False)  # fmt: skip
            g = ev.episodes.groupby("policy")
            r = g["reward"].sum() / g["span_s"].sum()
            s, o, opt = r[ev.best_static], r["oracle"], r["optimal"]
            share = (o - s) / (opt - s) if opt > s else float("nan")
            print(f"{label:<22} {split:<6} {s:+8.3f} {r['tuned-threshold']:+9.3f} {o:+8.3f} "
                  f"{opt:+8.3f} {opt - s:9.3f} {share:12.2f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
