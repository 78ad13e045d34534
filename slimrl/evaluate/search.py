"""The tuned-threshold search: rate-threshold's window and margin on a scenario's training split.

Every (window, margin) pair of the grid runs as one batched rate-threshold policy on the same
episodes of the training split; the pair with the highest mean reward per frame wins. The result
is a JSON record keyed by the scenario's digest, found again by
:func:`slimrl.policies.tuned.tuned_params` (``slimrl search-threshold`` saves it).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

import slimrl
from slimrl.env.vector import SlimSplitVectorEnv
from slimrl.evaluate.rollout import EpisodePlan, plan_episodes, simulate
from slimrl.policies.base import ModeTable
from slimrl.policies.heuristics import RateThreshold
from slimrl.policies.tuned import (
    DEFAULT_MARGINS,
    DEFAULT_SEARCH_EPISODES,
    DEFAULT_WINDOWS,
    FORMAT,
)
from slimrl.scenario import load_scenario, scenario_digest


def search_threshold(
    scenario: Any,
    *,
    overrides: Mapping[str, Any] | None = None,
    episodes: int = DEFAULT_SEARCH_EPISODES,
    seed: int = 0,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    margins: Sequence[float] = DEFAULT_MARGINS,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Grid-search rate-threshold's window and margin on the scenario's training split.

    Returns the result record (JSON-ready): hash, grid, scores (mean reward per frame, one row
    per window, one column per margin), on-time rates and the chosen parameters.
    """
    sc = load_scenario(scenario, overrides)
    windows = [int(w) for w in windows]
    margins = [float(m) for m in margins]
    if not windows or not margins or min(windows) < 1 or min(margins) <= 0:
        raise ValueError("search grid: windows must be >= 1 and margins > 0 (non-empty)")

    def make_env(n: int) -> SlimSplitVectorEnv:
        return SlimSplitVectorEnv(n, sc, split="train", action_space="flat")

    probe = make_env(1)
    world = probe.world
    plan = plan_episodes(world, episodes, seed)
    W, Mg, E = len(windows), len(margins), len(plan)
    C = W * Mg
    grid_w = np.repeat(np.repeat(windows, Mg), E)
    grid_m = np.repeat(np.tile(margins, W), E)
    policy = RateThreshold(ModeTable.from_world(world), grid_w, grid_m)
    big = EpisodePlan(
        seeds=plan.seeds * C,
        trace_index=plan.trace_index * C,
        start_s=plan.start_s * C,
        full_trace=False,
        episode_length=plan.episode_length,
    )
    # one policy whose rows are (candidate, episode): simulate resets it with len(big) rows
    out = simulate(make_env, [policy], big, keep_steps=False, progress=progress)
    frames = out.totals["frames"].reshape(C, E).sum(axis=1)
    reward = out.totals["reward"].reshape(C, E).sum(axis=1) / frames
    on_time = out.totals["on_time"].reshape(C, E).sum(axis=1) / frames
    best = int(np.argmax(reward))
    return {
        "format": FORMAT,
        "version": 1,
        "scenario": sc.name,
        "scenario_hash": scenario_digest(sc),
        "split": "train",
        "traces": list(world.trace_names),
        "episodes": E,
        "episode_length": plan.episode_length,
        "seed": int(seed),
        "objective": "mean reward per frame on the training split",
        "grid": {"window": windows, "margin": margins},
        "scores": np.round(reward.reshape(W, Mg), 6).tolist(),
        "on_time_rate": np.round(on_time.reshape(W, Mg), 6).tolist(),
        "chosen": {
            "window": windows[best // Mg],
            "margin": margins[best % Mg],
            "reward_mean": round(float(reward[best]), 6),
            "on_time_rate": round(float(on_time[best]), 6),
        },
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "slimrl_version": slimrl.__version__,
    }
