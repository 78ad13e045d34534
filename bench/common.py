"""Shared pieces of the quality benchmarks: training seeds, paired statistics over seeds.

A group of runs (one per seed) is scored as one policy: per episode, its return is the mean of
the seeds' returns on that episode (every policy replays the same episodes), so the paired
difference to a reference and its bootstrap interval account for both the seeds and the
episodes. Reward is per second of trace; the score is against the offline optimum.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

N_BOOT = 2000


def train_runs(
    scenario: str,
    seeds: Sequence[int],
    n_timesteps: int,
    log_folder: str | Path,
    sets: Sequence[str] = (),
    hyperparams: dict | None = None,
    algo: str = "ppo",
) -> list[tuple[Path, float]]:
    """One training run per seed (no final evaluation); returns (run folder, wall s)."""
    from slimrl.train.config import TrainConfig
    from slimrl.train.trainer import train

    out = []
    for seed in seeds:
        cfg = TrainConfig(
            algo=algo,
            env=scenario,
            n_timesteps=n_timesteps,
            seed=seed,
            set=list(sets),
            hyperparams=dict(hyperparams or {}),
            log_folder=str(log_folder),
            save_freq=-1,
            progress=False,
            verbose=0,
            final_eval=False,
        )
        t0 = time.perf_counter()
        run = train(cfg, echo=lambda s: None)
        wall = time.perf_counter() - t0
        print(f"  trained seed {seed}: {run} ({wall:.0f} s)", flush=True)
        out.append((run, wall))
    return out


def returns(episodes: pd.DataFrame, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(per-episode return averaged over ``names``, episode spans)."""
    g = episodes[episodes["policy"].isin(names)].pivot(
        index="episode", columns="policy", values="reward"
    )
    span = episodes.drop_duplicates("episode").sort_values("episode")["span_s"].to_numpy()
    return g[list(names)].to_numpy().mean(axis=1), span


def _rate(g: np.ndarray, t: np.ndarray, axis: int = -1) -> np.ndarray:
    return g.sum(axis=axis) / t.sum(axis=axis)


def paired_diff(a: np.ndarray, b: np.ndarray, span: np.ndarray, seed: int = 0) -> tuple:
    """Reward per second of ``a`` minus ``b`` (per-episode returns) and its 95 % CI."""
    d = a - b
    point = float(_rate(d, span))
    if len(d) < 2:
        return point, point, point
    res = stats.bootstrap(
        (d, span), _rate, paired=True, vectorized=True, n_resamples=N_BOOT,
        method="percentile", random_state=np.random.default_rng(seed),
    )  # fmt: skip
    lo, hi = res.confidence_interval
    return point, float(lo), float(hi)


def score(r: float, r_static: float, r_opt: float) -> float:
    den = r_opt - r_static
    return float("nan") if abs(den) < 1e-12 else (r - r_static) / den


def fmt_ci(point: float, lo: float, hi: float) -> str:
    mark = "+" if lo > 0 else ("-" if hi < 0 else "~")
    return f"{point:+.3f} [{lo:+.3f}, {hi:+.3f}] {mark}"
