"""Aggregate statistics across seeds or runs, rliable-style (Agarwal et al., NeurIPS 2021).

Input: several evaluation folders written by :func:`slimrl.evaluate.run_evaluation` (for example
one per training seed), all on the same episodes. Each (policy, folder) pair is one *run*; runs of
the same *group* (by default: the same policy name, or the same algorithm for trained runs, see
:func:`default_group`) are pooled. Per run and episode ``e`` the score is

* ``score`` (default): ``(G_e / T_e - R_static*) / (R_optimal - R_static*)``, the episode's reward
  per second of trace normalised with the folder's split-level best static mode and offline
  optimum (as the summary's ``score``; its mean over episodes of equal span is that score);
* ``reward_per_s``: ``G_e / T_e`` as is.

Per group, over its (runs x episodes) score matrix: ``iqm`` (interquartile mean), ``mean``,
``median``, ``optimality_gap`` (mean shortfall below 1, the optimum; ``score`` only) and
``prob_improvement`` (P(a random run of the group beats a random run of the baseline on the same
episode)), each with a percentile interval from a stratified bootstrap: episodes are resampled
(``resample_episodes``) and, within each episode, runs with replacement (rliable's stratified
bootstrap, tasks = episodes). The performance profile is the fraction of (run, episode) scores
above each threshold tau, with bands from the same bootstrap. Only ``scipy.stats`` and numpy.

Outputs (``out_dir``, atomic): ``aggregate.csv``, ``performance_profile.csv``, the figures
``aggregate_intervals`` and ``performance_profile`` (PNG 300 dpi, PDF, SVG) and
``aggregate.json`` (inputs and settings).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from slimrl.errors import PolicyError
from slimrl.io import atomic_dir
from slimrl.validate import read_yaml

METRICS = ("score", "reward_per_s")
AGGREGATES = ("iqm", "mean", "median", "optimality_gap")
N_BOOT = 2000
LEVEL = 0.95
OPTIMAL = "optimal"
#: the columns of aggregate.csv, in order (``_ci_low`` / ``_ci_high`` after each aggregate)
COLUMNS = (
    "group",
    "runs",
    "episodes",
    "metric",
    *(f"{a}{s}" for a in (*AGGREGATES, "prob_improvement") for s in ("", "_ci_low", "_ci_high")),
    "baseline",
    "policies",
)


@dataclass
class EvalFolder:
    """One evaluation output folder, read back: per-episode rates of every reported policy."""

    path: Path
    rates: pd.DataFrame  # index: policy, columns: episode -> reward per second of trace
    best_static: str
    plan: dict[str, Any]
    summary: pd.DataFrame

    @classmethod
    def read(cls, path: str | os.PathLike) -> EvalFolder:
        path = Path(path)
        meta_file, steps_file = path / "evaluation.json", path / "per_step.parquet"
        for f in (meta_file, steps_file, path / "summary.csv"):
            if not f.is_file():
                raise PolicyError(f"{f}: missing; expected an evaluation folder (slimrl evaluate)")
        try:
            meta = json.loads(meta_file.read_text())
            steps = pd.read_parquet(steps_file, columns=["policy", "episode", "reward"])
            summary = pd.read_csv(path / "summary.csv")
        except (OSError, ValueError, KeyError) as exc:
            raise PolicyError(f"{path}: unreadable evaluation output ({exc})") from None
        span = np.asarray(meta.get("span_s") or [], dtype=float)
        if span.size == 0 or "best_static" not in meta:
            raise PolicyError(f"{meta_file}: no span_s/best_static; re-run slimrl evaluate")
        g = steps.groupby(["policy", "episode"], sort=False)["reward"].sum().unstack("episode")
        g = g.reindex(columns=range(span.size))
        if g.isna().to_numpy().any():
            raise PolicyError(f"{steps_file}: some policies lack some of the {span.size} episodes")
        rates = g / span[None, :]
        for name in (OPTIMAL, meta["best_static"]):
            if name not in rates.index:
                raise PolicyError(f"{steps_file}: no frames of {name!r}, needed for the score")
        return cls(path, rates, str(meta["best_static"]), meta.get("plan") or {}, summary)

    def scores(self, metric: str) -> pd.DataFrame:
        """Per policy and episode: the metric (see the module docstring)."""
        if metric == "reward_per_s":
            return self.rates
        r_static = float(self.summary_rate(self.best_static))
        r_opt = float(self.summary_rate(OPTIMAL))
        den = r_opt - r_static
        if not np.isfinite(den) or abs(den) < 1e-12:
            raise PolicyError(
                f"{self.path}: the optimum and the best static mode tie; the score is undefined "
                "(use metric='reward_per_s')"
            )
        return (self.rates - r_static) / den

    def summary_rate(self, name: str) -> float:
        row = self.summary[self.summary["policy"] == name]
        if len(row) and "reward_per_s" in row.columns:
            return float(row["reward_per_s"].iloc[0])
        return float(self.rates.loc[name].mean())


def default_group(policy: str) -> str:
    """A trained run or bundle (a path) by its algorithm and scenario (``args.yml``), else the
    folder name without a trailing ``_<N>`` / ``-seed<N>``; any other policy by its name."""
    p = Path(policy)
    if not (os.sep in policy or "/" in policy) or not p.exists():
        return policy
    for args in (p / "SlimSplit-v0" / "args.yml", p.parent / "SlimSplit-v0" / "args.yml"):
        if args.is_file():
            data = read_yaml(args, PolicyError) or {}
            if not isinstance(data, dict):
                continue
            algo, scenario = data.get("algo"), data.get("scenario")
            if algo:
                return f"{algo}-{Path(str(scenario)).stem}" if scenario else str(algo)
    return re.sub(r"([_-](seed)?\d+)$", "", p.name) or p.name


def _iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return stats.trim_mean(x, 0.25, axis=axis)


def _aggregate(x: np.ndarray, name: str, axis: int = -1) -> np.ndarray:
    """One aggregate over the last axis of pooled (run, episode) scores."""
    if name == "iqm":
        return _iqm(x, axis)
    if name == "mean":
        return np.mean(x, axis=axis)
    if name == "median":
        return np.median(x, axis=axis)
    if name == "optimality_gap":
        return np.mean(np.clip(1.0 - x, 0.0, None), axis=axis)
    raise ValueError(name)


def _prob_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 per episode, averaged over episodes; x (..., R, E), y (..., Q, E)."""
    gt = (x[..., :, None, :] > y[..., None, :, :]).mean(axis=(-3, -2))
    eq = (x[..., :, None, :] == y[..., None, :, :]).mean(axis=(-3, -2))
    return (gt + 0.5 * eq).mean(axis=-1)


def aggregate_evaluations(
    eval_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    *,
    groups: Mapping[str, str] | Callable[[str], str | None] | None = None,
    metric: str = "score",
    baseline: str | None = None,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    resample_episodes: bool = True,
    taus: Sequence[float] | None = None,
    seed: int = 0,
    plots: bool = True,
    include_references: bool = False,
) -> pd.DataFrame:
    """Aggregate statistics of every group over several evaluation folders; write ``out_dir``.

    ``groups``: policy name -> group label (a mapping, or a function returning None to leave a
    policy out); default :func:`default_group`. ``baseline``: the group ``prob_improvement`` is
    measured against (default: the folders' paired baseline, grouped). ``include_references``:
    also report ``optimal``, ``oracle`` and the best static mode. Returns ``aggregate.csv``'s
    table (one row per group, in order of first appearance).
    """
    if metric not in METRICS:
        raise PolicyError(f"metric: expected one of {list(METRICS)}, got {metric!r}")
    if not eval_dirs:
        raise PolicyError("no evaluation folders to aggregate")
    if not 0 < level < 1:
        raise PolicyError(f"level: expected a confidence level in (0, 1), got {level!r}")
    folders = [EvalFolder.read(d) for d in eval_dirs]
    _check_same_episodes(folders)
    n_ep = folders[0].rates.shape[1]
    group_of = _grouper(groups)

    # group -> list of runs (each an episode vector); remember which policies fed each group
    runs: dict[str, list[np.ndarray]] = {}
    members: dict[str, list[str]] = {}
    for f in folders:
        scores = f.scores(metric)
        refs = (
            set(f.summary.loc[f.summary["reference"].astype(bool), "policy"].astype(str))
            if "reference" in f.summary.columns
            else set()
        )
        for policy, row in scores.iterrows():
            policy = str(policy)
            if not include_references and (policy in refs or policy == OPTIMAL):
                continue
            label = group_of(policy)
            if label is None:
                continue
            runs.setdefault(label, []).append(row.to_numpy(dtype=float))
            if policy not in members.setdefault(label, []):
                members[label].append(policy)
    if not runs:
        raise PolicyError("no policy left to aggregate (check groups=)")
    if baseline is None:
        named = [str(b) for f in folders for b in f.summary.get("baseline", pd.Series()).dropna()]
        baseline = next((group_of(b) for b in named if group_of(b) in runs), None)
    elif baseline not in runs:
        raise PolicyError(f"baseline {baseline!r}: not among the groups {sorted(runs)}")

    rng = np.random.default_rng(seed)
    boot_ep = (
        rng.integers(0, n_ep, size=(n_boot, n_ep))
        if resample_episodes
        else np.broadcast_to(np.arange(n_ep), (n_boot, n_ep))
    )
    mats = {g: np.vstack(v) for g, v in runs.items()}
    pooled = np.concatenate([m.ravel() for m in mats.values()])
    tau = np.asarray(taus if taus is not None else _default_taus(pooled, metric), dtype=float)
    alpha = (1 - level) / 2
    rows, profile = [], []
    base_boot = _boot_samples(mats[baseline], boot_ep, rng) if baseline else None
    for g, m in mats.items():
        boot = _boot_samples(m, boot_ep, rng)  # (B, R, E)
        flat = boot.reshape(n_boot, -1)
        row: dict[str, Any] = {"group": g, "runs": m.shape[0], "episodes": n_ep, "metric": metric}
        for a in AGGREGATES:
            if a == "optimality_gap" and metric != "score":
                row[a] = row[f"{a}_ci_low"] = row[f"{a}_ci_high"] = np.nan
                continue
            row[a] = float(_aggregate(m.ravel(), a))
            lo, hi = np.quantile(_aggregate(flat, a, axis=1), [alpha, 1 - alpha])
            row[f"{a}_ci_low"], row[f"{a}_ci_high"] = float(lo), float(hi)
        if baseline is not None and base_boot is not None:
            row["prob_improvement"] = float(_prob_improvement(m, mats[baseline]))
            pi = _prob_improvement(boot, base_boot)
            lo, hi = np.quantile(pi, [alpha, 1 - alpha])
            row["prob_improvement_ci_low"], row["prob_improvement_ci_high"] = float(lo), float(hi)
        row["baseline"] = baseline
        row["policies"] = " ".join(members[g])
        rows.append(row)
        frac = (m.ravel()[None, :] > tau[:, None]).mean(axis=1)
        bfrac = (flat[:, None, :] > tau[None, :, None]).mean(axis=2)  # (B, T)
        lo, hi = np.quantile(bfrac, [alpha, 1 - alpha], axis=0)
        profile += [
            {
                "group": g,
                "tau": float(t),
                "fraction": float(f),
                "ci_low": float(a),
                "ci_high": float(b),
            }
            for t, f, a, b in zip(tau, frac, lo, hi, strict=True)
        ]
    table = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
    profile_df = pd.DataFrame(profile, columns=["group", "tau", "fraction", "ci_low", "ci_high"])
    if out_dir is not None:
        meta = {
            "eval_dirs": [str(f.path) for f in folders],
            "metric": metric,
            "baseline": baseline,
            "n_boot": n_boot,
            "level": level,
            "resample_episodes": resample_episodes,
            "seed": seed,
            "episodes": n_ep,
            "groups": members,
        }
        protect = [f.path for f in folders]
        with atomic_dir(Path(out_dir), kind="aggregate", protect=protect) as tmp:
            table.to_csv(tmp / "aggregate.csv", index=False)
            profile_df.to_csv(tmp / "performance_profile.csv", index=False)
            (tmp / "aggregate.json").write_text(json.dumps(meta, indent=2) + "\n")
            if plots:
                from slimrl.evaluate import plots as P

                P.aggregate_intervals(table, tmp / "aggregate_intervals.png", level=level)
                P.performance_profile(profile_df, tmp / "performance_profile.png", metric=metric)
    return table


def _boot_samples(m: np.ndarray, boot_ep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B, R, E) bootstrap samples of a (R, E) matrix: episodes ``boot_ep`` (B, E), runs
    resampled with replacement within each episode (stratified)."""
    n_runs = m.shape[0]
    b, e = boot_ep.shape
    run_idx = rng.integers(0, n_runs, size=(b, n_runs, e))
    return m[run_idx, boot_ep[:, None, :]]


def _default_taus(pooled: np.ndarray, metric: str) -> np.ndarray:
    lo, hi = np.quantile(pooled, [0.01, 0.99]) if pooled.size else (0.0, 1.0)
    if metric == "score":
        lo, hi = min(lo, 0.0), max(hi, 1.0)
    return np.linspace(lo, hi, 101)


def _grouper(groups: Any) -> Callable[[str], str | None]:
    if groups is None:
        return default_group
    if callable(groups):
        return groups
    mapping = dict(groups)
    return lambda p: mapping.get(p, default_group(p))


def _check_same_episodes(folders: Sequence[EvalFolder]) -> None:
    """Every folder must replay the same episodes (pairing by episode needs it)."""
    ref = folders[0]
    for f in folders[1:]:
        if f.rates.shape[1] != ref.rates.shape[1] or (
            ref.plan and f.plan and any(ref.plan.get(k) != f.plan.get(k) for k in ref.plan)
        ):
            raise PolicyError(
                f"{f.path}: its episodes differ from {ref.path}'s (same --traces, --episodes, "
                "--seed and scenario needed to aggregate)"
            )


def main(argv: list[str] | None = None) -> int:
    """``python -m slimrl.evaluate.aggregate EVAL_DIR... --out DIR``."""
    import argparse
    import sys

    from slimrl.errors import SlimrlError

    parser = argparse.ArgumentParser(
        prog="python -m slimrl.evaluate.aggregate",
        description="rliable-style aggregates across evaluation folders (one per seed or run)",
    )
    parser.add_argument("eval_dirs", nargs="+", metavar="EVAL_DIR")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--metric", choices=METRICS, default="score")
    parser.add_argument("--baseline", default=None, help="group P(improvement) is against")
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="POLICY=LABEL",
        help="put a policy in a group (repeatable; default: trained runs by algorithm)",
    )
    parser.add_argument("--n-boot", type=int, default=N_BOOT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    groups = dict(g.split("=", 1) for g in args.group if "=" in g) or None
    try:
        table = aggregate_evaluations(
            args.eval_dirs,
            args.out,
            groups=groups,
            metric=args.metric,
            baseline=args.baseline,
            n_boot=args.n_boot,
            seed=args.seed,
            plots=not args.no_plots,
        )
    except SlimrlError as exc:
        print(f"aggregate: error: {exc}", file=sys.stderr)
        return 2
    cols = ["group", "runs", "iqm", "iqm_ci_low", "iqm_ci_high", "prob_improvement"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {args.out}/aggregate.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
