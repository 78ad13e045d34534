"""How good is PPO, per scenario, against every heuristic and the offline optimum?

Run: ``python bench/policy_quality.py [--envs default edge-heavy ...] [--seeds 0 1 2]``
(``--runs DIR...`` evaluates existing runs of one scenario instead of training).

Per scenario: trains one PPO run per seed (``slimrl train`` with the shipped hyperparameters),
then replays every run, every heuristic (``paper-ewma``, ``rate-threshold``, ``tuned-threshold``,
``mpc``, ``tuned-mpc``), ``oracle``, every static mode and ``optimal`` on the same episodes of
the test split. Prints reward per second of trace and the score ``(R - R_static*) /
(R_optimal - R_static*)`` of each policy (PPO per seed and for the seeds together), and the
paired difference of PPO (seeds together) to the best heuristic with its 95 % bootstrap
interval. Writes ``quality.csv`` into the log folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from common import fmt_ci, paired_diff, returns, score, train_runs  # noqa: E402

HEURISTICS = ("paper-ewma", "rate-threshold", "tuned-threshold", "mpc", "tuned-mpc")
SCENARIOS = ("default", "edge-heavy", "energy-bound", "5g-driving", "fmnist-iot")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=list(SCENARIOS), help="scenarios")
    p.add_argument("-n", "--n-timesteps", type=int, default=None, help="steps per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--episodes", type=int, default=32, help="test episodes")
    p.add_argument("--runs", nargs="+", default=None, help="existing runs (one scenario)")
    p.add_argument("-f", "--log-folder", default="logs/bench-quality")
    return p.parse_args(argv)


def evaluate(scenario: str, runs: list[Path], episodes: int) -> tuple[list[dict], str]:
    from slimrl.evaluate.api import rollout_policies

    names = [str(r) for r in runs]
    ev = rollout_policies(
        scenario, "test", [*names, *HEURISTICS], episodes=episodes, progress=False,
        keep_steps=False,
    )  # fmt: skip
    e = ev.episodes
    g_opt, span = returns(e, ["optimal"])
    g_static, _ = returns(e, [ev.best_static])

    def rate(g):
        return float(g.sum() / span.sum())

    r_opt, r_static = rate(g_opt), rate(g_static)
    rows = []
    heur = {h: rate(returns(e, [h])[0]) for h in HEURISTICS}
    best_h = max(heur, key=heur.get)
    g_ppo, _ = returns(e, names)
    for label, g in [
        *((f"ppo seed {i}", returns(e, [n])[0]) for i, n in enumerate(names)),
        ("ppo (seeds together)", g_ppo),
        *((h, returns(e, [h])[0]) for h in (*HEURISTICS, "oracle", ev.best_static, "optimal")),
    ]:
        r = rate(g)
        rows.append({"scenario": scenario, "policy": label, "reward_per_s": r,
                     "score": score(r, r_static, r_opt)})  # fmt: skip
    d = paired_diff(g_ppo, returns(e, [best_h])[0], span)
    rows.append({"scenario": scenario, "policy": f"ppo - {best_h}", "reward_per_s": d[0],
                 "ci_low": d[1], "ci_high": d[2]})  # fmt: skip
    return rows, best_h


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    all_rows = []
    for scenario in args.envs:
        print(f"== {scenario}", flush=True)
        if args.runs:
            runs = [Path(r) for r in args.runs]
        else:
            n = args.n_timesteps or -1
            runs = [r for r, _ in train_runs(scenario, args.seeds, n, args.log_folder)]
        rows, best_h = evaluate(scenario, runs, args.episodes)
        for r in rows:
            if "ci_low" in r:
                print(f"  {r['policy']:<28} {fmt_ci(r['reward_per_s'], r['ci_low'], r['ci_high'])}")
            else:
                print(f"  {r['policy']:<28} reward/s {r['reward_per_s']:+.4f}  "
                      f"score {r['score']:+.3f}")  # fmt: skip
        all_rows += rows
    out = Path(args.log_folder)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(all_rows).to_csv(out / "quality.csv", index=False)
    print(f"wrote {out / 'quality.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
