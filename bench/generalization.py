"""Does PPO work on links it never saw? The generalisation benchmark.

Run: ``python bench/generalization.py [--env default] [--seeds 0 1 2] [--lodo]``
(``--runs DIR...`` evaluates existing runs instead of training).

Trains PPO (one run per seed) on the scenario's training corpus, then replays the runs (as one
policy: per episode the mean of the seeds), ``mpc`` and ``tuned-mpc``, ``tuned-threshold``,
every static mode and ``optimal`` on the same episodes of:

(a) the unseen test files of each training dataset (``test:<dataset>``);
(b) each held-out dataset, never seen in training (``test:<dataset>``); with ``--lodo`` also
    every dataset left out in turn: a group of runs trained without it, tested on it;
(c) the whole test split with every capacity scaled x0.1, x1, x10 and x100.

Per row: reward per second of trace, the score against ``optimal`` (and the clairvoyant greedy
``oracle``'s score, for scale), and the paired difference
to the best static mode and to ``mpc`` / ``tuned-mpc`` with 95 % bootstrap intervals (episodes
and seeds together). Goal: PPO ahead of the best static mode and of mpc in every row with the
interval above zero, and a score of at least 0.6. The tuned heuristics keep the parameters
tuned on the unscaled scenario in every row. Writes ``generalization.csv`` and
``reward_vs_scale.{png,pdf}`` into the log folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from common import fmt_ci, paired_diff, returns, score, train_runs  # noqa: E402

SCALES = (0.1, 1.0, 10.0, 100.0)
GOAL_SCORE = 0.6


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="default", help="scenario with a trace corpus")
    p.add_argument("-n", "--n-timesteps", type=int, default=-1, help="steps per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--episodes", type=int, default=32, help="episodes per row")
    p.add_argument("--runs", nargs="+", default=None, help="existing runs (skip training)")
    p.add_argument("--lodo", action="store_true", help="also leave each dataset out in turn")
    p.add_argument("-f", "--log-folder", default="logs/bench-generalization")
    return p.parse_args(argv)


def tuned_names(scenario: str) -> dict[str, str]:
    """The tuned heuristics as explicit parameter strings (so a scaled row keeps them)."""
    from slimrl.policies.tuned import TUNABLES, tuned_params
    from slimrl.scenario import load_scenario

    sc = load_scenario(scenario)
    out = {}
    for heuristic, t in TUNABLES.items():
        p = tuned_params(sc, heuristic)
        args = ",".join(f"{k}={p[k]}" for k in t.grid)
        out[t.policy] = f"{heuristic}:{args}"
    return out


def row(label: str, scenario: str, runs: list[Path], traces: str, overrides: dict | None,
        episodes: int, tuned: dict[str, str]) -> dict:  # fmt: skip
    from slimrl.evaluate.api import rollout_policies

    names = [str(r) for r in runs]
    pols = [*names, "mpc", tuned["tuned-mpc"], tuned["tuned-threshold"]]
    ev = rollout_policies(scenario, traces, pols, episodes=episodes, overrides=overrides,
                          progress=False, keep_steps=False)  # fmt: skip
    e = ev.episodes
    g_ppo, span = returns(e, names)
    g = {k: returns(e, [n])[0] for k, n in (
        ("mpc", "mpc"), ("tuned-mpc", tuned["tuned-mpc"]),
        ("tuned-threshold", tuned["tuned-threshold"]), ("static", ev.best_static),
        ("oracle", "oracle"), ("optimal", "optimal"))}  # fmt: skip

    def rate(x):
        return float(x.sum() / span.sum())

    r = {k: rate(v) for k, v in g.items()}
    out = {
        "row": label,
        "traces": traces,
        "episodes": len(span),
        "best_static": ev.best_static,
        "ppo": rate(g_ppo),
        **r,
        "score": score(rate(g_ppo), r["static"], r["optimal"]),
        # the clairvoyant greedy oracle's score: what knowing every frame's outcome buys
        "oracle_score": score(r["oracle"], r["static"], r["optimal"]),
    }
    for ref in ("static", "mpc", "tuned-mpc"):
        d, lo, hi = paired_diff(g_ppo, g[ref], span)
        out[f"vs_{ref}"], out[f"vs_{ref}_lo"], out[f"vs_{ref}_hi"] = d, lo, hi
    return out


def main(argv: list[str] | None = None) -> int:
    from slimrl.scenario import load_scenario

    args = parse_args(argv)
    sc = load_scenario(args.env)
    datasets = [d.name for d in sc.traces.datasets]
    held = list(sc.traces.holdout)
    log = Path(args.log_folder)
    runs = [Path(r) for r in args.runs] if args.runs else [
        r for r, _ in train_runs(args.env, args.seeds, args.n_timesteps, log / "corpus")
    ]  # fmt: skip
    tuned = tuned_names(args.env)
    rows = []

    def add(label, traces, overrides=None, group=runs):
        res = row(label, args.env, group, traces, overrides, args.episodes, tuned)
        rows.append(res)
        ok = res["vs_static_lo"] > 0 and res["vs_mpc_lo"] > 0 and res["score"] >= GOAL_SCORE
        diffs = "  ".join(
            f"vs {k} {fmt_ci(res[f'vs_{k}'], res[f'vs_{k}_lo'], res[f'vs_{k}_hi'])}"
            for k in ("static", "mpc", "tuned-mpc")
        )
        print(
            f"{label:<26} ppo {res['ppo']:+.3f}/s  score {res['score']:+.3f} "
            f"(oracle {res['oracle_score']:+.3f})  {diffs}  "
            f"{'GOAL' if ok else 'miss'}",
            flush=True,
        )

    for d in datasets:
        kind = "held-out" if d in held else "unseen files"
        add(f"{kind}: {d}", f"test:{d}")
    for s in SCALES:
        add(f"test split x{s:g}", "test", {"traces.scale": s * sc.traces.scale})
    if args.lodo:
        for d in datasets:
            over = {"traces.holdout": [d]}
            group = [r for r, _ in train_runs(
                args.env, args.seeds, args.n_timesteps, log / f"lodo-{d}",
                sets=[f"traces.holdout={json.dumps([d])}"])]  # fmt: skip
            add(f"left out: {d}", f"test:{d}", over, group)
    df = pd.DataFrame(rows)
    log.mkdir(parents=True, exist_ok=True)
    df.to_csv(log / "generalization.csv", index=False)
    plot_scales(df[df["row"].str.startswith("test split x")], log)
    print(f"wrote {log / 'generalization.csv'}")
    return 0


def plot_scales(df: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = [float(r.split("x")[-1]) for r in df["row"]]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for key, style in (("optimal", "k-s"), ("ppo", "C0-o"), ("mpc", "C1--^"),
                       ("tuned-mpc", "C2-.v"), ("static", "C3:D")):  # fmt: skip
        label = "best static" if key == "static" else ("PPO (3 seeds)" if key == "ppo" else key)
        ax.plot(scales, df[key], style, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("capacity scale of the test traces")
    ax.set_ylabel("reward per second of trace")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(out / f"reward_vs_scale.{ext}", dpi=300)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
