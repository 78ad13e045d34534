"""Summary statistics of an evaluation: per policy, per (policy, trace), and the normalised score.

- ``reward_mean``: mean reward per frame, over every frame of every episode (R in DESIGN.md).
- ``score``: ``S = (R - R_static*) / (R_oracle - R_static*)`` with static* the best static mode
  on the same frames (0 = best fixed mode, 1 = clairvoyant oracle; NaN if they tie).
- ``reward_ci_low/high``: 95 % percentile-bootstrap interval of ``reward_mean`` resampling whole
  episodes (2000 resamples, seeded); ``score_ci_low/high`` map it through the score formula.
- ``on_time_rate`` / ``miss_rate``: fraction of frames within / over the deadline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: the leading columns of summary.csv, in order
SUMMARY_COLUMNS = (
    "policy",
    "reward_mean",
    "score",
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
    "score_ci_low",
    "score_ci_high",
    "miss_rate",
    "episodes",
    "reference",
)

N_BOOT = 2000


def bootstrap_ratio_ci(
    num: np.ndarray, den: np.ndarray, level: float = 0.95, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap CI of ``sum(num) / sum(den)`` resampling the (episode) pairs."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    E = len(num)
    point = float(num.sum() / max(den.sum(), 1e-12))
    if E < 2:
        return point, point
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, E, size=(n_boot, E))
    ratios = num[idx].sum(axis=1) / np.maximum(den[idx].sum(axis=1), 1e-12)
    lo, hi = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def score(r: np.ndarray | float, r_static: float, r_oracle: float) -> np.ndarray | float:
    """Normalised score ``(R - R_static*) / (R_oracle - R_static*)`` (NaN if they tie)."""
    den = r_oracle - r_static
    if not np.isfinite(den) or abs(den) < 1e-12:
        return np.full_like(np.asarray(r, dtype=np.float64), np.nan) if np.ndim(r) else np.nan
    return (np.asarray(r, dtype=np.float64) - r_static) / den


def _frame_aggregates(g) -> dict[str, pd.Series]:
    """Reward, accuracy, on-time, latency and energy aggregates of a frame groupby."""
    return {
        "reward_mean": g["reward"].mean(),
        "accuracy_mean": g["accuracy"].mean(),
        "on_time_rate": g["on_time"].mean(),
        "e2e_p50_ms": g["e2e_ms"].quantile(0.5),
        "e2e_p95_ms": g["e2e_ms"].quantile(0.95),
        "energy_j_mean": g["energy_j"].mean(),
    }


def per_policy(steps: pd.DataFrame) -> pd.DataFrame:
    """Frame-level aggregates per policy (no score), indexed by policy name."""
    g = steps.groupby("policy", sort=False)
    out = pd.DataFrame(
        {**_frame_aggregates(g), "frames": g.size(), "episodes": g["episode"].nunique()}
    )
    out["miss_rate"] = 1.0 - out["on_time_rate"]
    return out


def summary_table(
    steps: pd.DataFrame,
    order: Sequence[str],
    static_names: Sequence[str],
    oracle: str = "oracle",
    references: Sequence[str] = (),
    seed: int = 0,
) -> tuple[pd.DataFrame, str]:
    """The summary table (rows in ``order``) and the name of the best static mode.

    ``steps`` must hold every static mode and the oracle; ``references`` are rows added for
    reference (flagged in the ``reference`` column).
    """
    agg = per_policy(steps)
    statics = [s for s in static_names if s in agg.index]
    best_static = max(statics, key=lambda s: agg.at[s, "reward_mean"])
    r_static = float(agg.at[best_static, "reward_mean"])
    r_oracle = float(agg.at[oracle, "reward_mean"])
    ep = steps.groupby(["policy", "episode"], sort=False)["reward"].agg(["sum", "size"])
    rows = []
    for name in order:
        row = {"policy": name, **agg.loc[name].to_dict()}
        e = ep.loc[name]
        lo, hi = bootstrap_ratio_ci(e["sum"].to_numpy(), e["size"].to_numpy(), seed=seed)
        row.update(reward_ci_low=lo, reward_ci_high=hi)
        row["score"] = float(score(row["reward_mean"], r_static, r_oracle))
        row["score_ci_low"] = float(score(lo, r_static, r_oracle))
        row["score_ci_high"] = float(score(hi, r_static, r_oracle))
        row["reference"] = name in references
        rows.append(row)
    df = pd.DataFrame(rows, columns=[*SUMMARY_COLUMNS, *EXTRA_COLUMNS])
    df["frames"] = df["frames"].astype(np.int64)
    df["episodes"] = df["episodes"].astype(np.int64)
    return df, best_static


def per_trace(steps: pd.DataFrame) -> pd.DataFrame:
    """Aggregates per (policy, trace)."""
    g = steps.groupby(["policy", "trace"], sort=False)
    out = pd.DataFrame(
        {
            "episodes": g["episode"].nunique(),
            "frames": g.size(),
            **_frame_aggregates(g),
            "bandwidth_mbps_mean": g["bandwidth_mbps"].mean(),
        }
    )
    return out.reset_index()
