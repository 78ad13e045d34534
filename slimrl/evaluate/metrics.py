"""Summary statistics of an evaluation: per policy, per (policy, trace), and the normalised score.

Every policy replays the same episodes (same traces, start offsets and common random numbers), so
comparisons are paired. Per episode ``e`` and policy ``p``: its return ``G[p, e]`` over the span
``T[e]`` of trace time the episode covers.

- ``reward_per_s``: ``sum_e G / sum_e T`` (R in DESIGN.md); ``reward_per_s_iqm``: the interquartile
  mean of the per-episode rates ``G / T`` (rliable's aggregate, robust to a few odd episodes).
- ``score``: ``S = (R - R_static*) / (R_optimal - R_static*)`` with static* the best static mode on
  these episodes and optimal the offline optimum (1 = the optimum, 0 = the best fixed mode); it is
  never above 1 because the optimum is an upper bound on every episode.
- ``reward_ci_low/high``, ``score_ci_low/high``: 95 % bootstrap intervals resampling episodes.
- ``diff_per_s`` with ``diff_ci_low/high``: the paired difference to the ``baseline`` policy,
  ``sum_e (G[p, e] - G[b, e]) / sum_e T``, with a paired bootstrap interval.
- ``on_time_per_s``: on-time answers per second; ``miss_rate``: the share of arrivals not answered
  on time (late frames, plus dropped arrivals under periodic arrival).
Bootstraps use ``scipy.stats.bootstrap`` (percentile, 2000 resamples, seeded).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

#: the leading columns of summary.csv, in order
SUMMARY_COLUMNS = (
    "policy",
    "reward_per_s",
    "score",
    "reward_mean",
    "accuracy_mean",
    "on_time_rate",
    "e2e_p50_ms",
    "e2e_p95_ms",
    "energy_j_mean",
    "frames",
)
EXTRA_COLUMNS = (
    "reward_ci_low",
    "reward_ci_high",
    "reward_per_s_iqm",
    "score_ci_low",
    "score_ci_high",
    "baseline",
    "diff_per_s",
    "diff_ci_low",
    "diff_ci_high",
    "on_time_per_s",
    "miss_rate",
    "drop_rate",
    "episodes",
    "reference",
)

N_BOOT = 2000
LEVEL = 0.95


def _ci(data: tuple[np.ndarray, ...], statistic, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over paired episodes."""
    n = len(data[0])
    if n < 2:
        point = float(statistic(*data, axis=-1))
        return point, point
    res = stats.bootstrap(
        data,
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=N_BOOT,
        confidence_level=LEVEL,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    return float(lo), float(hi)


def _rate(g: np.ndarray, t: np.ndarray, axis: int = -1) -> np.ndarray:
    return g.sum(axis=axis) / t.sum(axis=axis)


def _score_stat(g: np.ndarray, gs: np.ndarray, go: np.ndarray, axis: int = -1) -> np.ndarray:
    den = (go - gs).sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(den) > 1e-12, (g - gs).sum(axis=axis) / den, np.nan)


def score(r: np.ndarray | float, r_static: float, r_optimal: float) -> np.ndarray | float:
    """Normalised score ``(R - R_static*) / (R_optimal - R_static*)`` (NaN if they tie)."""
    den = r_optimal - r_static
    if not np.isfinite(den) or abs(den) < 1e-12:
        return np.full_like(np.asarray(r, dtype=np.float64), np.nan) if np.ndim(r) else np.nan
    return (np.asarray(r, dtype=np.float64) - r_static) / den


def episode_table(
    totals: dict[str, np.ndarray], names: Sequence[str], trace_of_episode: Sequence[str]
) -> pd.DataFrame:
    """One row per (policy, episode) from a rollout's totals."""
    P, E = totals["frames"].shape
    df = pd.DataFrame(
        {
            "policy": np.repeat(np.asarray(names, dtype=object), E),
            "episode": np.tile(np.arange(E), P),
            "trace": np.tile(np.asarray(trace_of_episode, dtype=object), P),
        }
    )
    for key, arr in totals.items():
        df[key] = np.asarray(arr).reshape(-1)
    return df


def best_static(episodes: pd.DataFrame, statics: Sequence[str]) -> str:
    """The static mode with the highest reward per second on these episodes."""
    g = episodes[episodes["policy"].isin(statics)].groupby("policy")
    rate = g["reward"].sum() / g["span_s"].sum()
    return str(rate.idxmax())


def _matrix(episodes: pd.DataFrame, name: str, key: str) -> np.ndarray:
    rows = episodes[episodes["policy"] == name].sort_values("episode")
    return rows[key].to_numpy(dtype=np.float64)


def summary_table(
    episodes: pd.DataFrame,
    steps: pd.DataFrame | None,
    order: Sequence[str],
    static: str,
    optimal: str = "optimal",
    references: Sequence[str] = (),
    baseline: str | None = None,
    seed: int = 0,
    e2e: Callable[[str], pd.Series] | None = None,
) -> pd.DataFrame:
    """The summary table (rows in ``order``), scored against ``static`` and ``optimal``.

    The latency percentiles come from ``steps`` (every frame), else from ``e2e(name)`` (one
    policy's ``e2e_ms`` at a time), else are left out."""
    span = _matrix(episodes, optimal, "span_s")
    g_static = _matrix(episodes, static, "reward")
    g_opt = _matrix(episodes, optimal, "reward")
    r_static, r_opt = float(_rate(g_static, span)), float(_rate(g_opt, span))
    g_base = _matrix(episodes, baseline, "reward") if baseline else None
    rows = []
    for name in order:
        e = episodes[episodes["policy"] == name].sort_values("episode")
        g = e["reward"].to_numpy(dtype=np.float64)
        frames = int(e["frames"].sum())
        arrivals = frames + float(e["dropped"].sum())
        late = frames - float(e["on_time"].sum())
        r = float(_rate(g, span))
        row = {
            "policy": name,
            "reward_per_s": r,
            "score": float(score(r, r_static, r_opt)),
            "reward_mean": float(g.sum() / max(frames, 1)),
            "accuracy_mean": float(e["accuracy"].sum() / max(frames, 1)),
            "on_time_rate": float(e["on_time"].sum() / max(frames, 1)),
            "energy_j_mean": float(e["energy_j"].sum() / max(frames, 1)),
            "frames": frames,
            "reward_per_s_iqm": float(stats.trim_mean(g / span, 0.25)),
            "on_time_per_s": float(e["on_time"].sum() / span.sum()),
            "miss_rate": float((late + e["dropped"].sum()) / max(arrivals, 1)),
            "drop_rate": float(e["dropped"].sum() / max(arrivals, 1)),
            "episodes": len(e),
            "reference": name in references,
        }
        row["reward_ci_low"], row["reward_ci_high"] = _ci((g, span), _rate, seed)
        row["score_ci_low"], row["score_ci_high"] = _ci((g, g_static, g_opt), _score_stat, seed)
        if g_base is not None:
            row["baseline"] = baseline
            row["diff_per_s"] = float(_rate(g - g_base, span))
            row["diff_ci_low"], row["diff_ci_high"] = _ci((g - g_base, span), _rate, seed)
        lat = None
        if steps is not None:
            lat = steps.loc[steps["policy"] == name, "e2e_ms"]
        elif e2e is not None:
            lat = e2e(name)
        if lat is not None:
            row["e2e_p50_ms"] = float(lat.quantile(0.5)) if len(lat) else np.nan
            row["e2e_p95_ms"] = float(lat.quantile(0.95)) if len(lat) else np.nan
        rows.append(row)
    df = pd.DataFrame(rows, columns=[*SUMMARY_COLUMNS, *EXTRA_COLUMNS])
    df["frames"] = df["frames"].astype(np.int64)
    df["episodes"] = df["episodes"].astype(np.int64)
    return df


def per_trace(episodes: pd.DataFrame, static: str, optimal: str = "optimal") -> pd.DataFrame:
    """Per (policy, trace): reward per second, score against the split's best static mode and
    the optimum on that trace's episodes, on-time rate, frames."""
    g = episodes.groupby(["policy", "trace"], sort=False)
    out = pd.DataFrame(
        {
            "episodes": g["episode"].nunique(),
            "frames": g["frames"].sum(),
            "span_s": g["span_s"].sum(),
            "reward_per_s": g["reward"].sum() / g["span_s"].sum(),
            "on_time_rate": g["on_time"].sum() / g["frames"].sum(),
            "accuracy_mean": g["accuracy"].sum() / g["frames"].sum(),
            "energy_j_mean": g["energy_j"].sum() / g["frames"].sum(),
        }
    ).reset_index()
    ref = out.set_index(["policy", "trace"])["reward_per_s"]
    r_s = out["trace"].map(ref.xs(static, level="policy"))
    r_o = out["trace"].map(ref.xs(optimal, level="policy"))
    den = (r_o - r_s).where((r_o - r_s).abs() > 1e-12)
    out["score"] = (out["reward_per_s"] - r_s) / den
    return out
