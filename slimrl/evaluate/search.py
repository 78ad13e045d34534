"""The tuned-heuristic search: a heuristic's parameter grid on a scenario's training split.

Every candidate of the grid runs as one batched policy on the same episodes of the training
split; the candidate with the highest reward per second of trace wins. The result is a JSON
record keyed by the scenario's digest and the heuristic, found again by
:func:`slimrl.policies.tuned.tuned_params` (``slimrl search-heuristic`` saves it).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

import slimrl
from slimrl.env.vector import SlimSplitVectorEnv
from slimrl.evaluate.rollout import EpisodePlan, plan_episodes, simulate
from slimrl.policies.base import ModeTable
from slimrl.policies.tuned import DEFAULT_SEARCH_EPISODES, FORMAT, TUNABLES, Tunable, grid_policy
from slimrl.scenario import Scenario, load_scenario, scenario_digest


def search_heuristic(
    scenario: Scenario | str,
    heuristic: str = "rate-threshold",
    *,
    overrides: Mapping[str, Any] | None = None,
    episodes: int = DEFAULT_SEARCH_EPISODES,
    seed: int = 0,
    grid: Mapping[str, tuple] | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Grid-search ``heuristic``'s parameters on the scenario's training split.

    Returns the result record (JSON-ready): digest, grid, every candidate's reward per second
    and on-time rate, and the chosen parameters.
    """
    sc = load_scenario(scenario, overrides)
    base = TUNABLES[heuristic]
    tunable = Tunable(base.heuristic, base.policy, base.make, dict(grid or base.grid))
    if any(not v for v in tunable.grid.values()):
        raise ValueError(f"search grid of {heuristic}: every parameter needs values")

    def make_env(n: int) -> SlimSplitVectorEnv:
        return SlimSplitVectorEnv(n, sc, split="train", action_space="flat")

    world = make_env(1).world
    plan = plan_episodes(world, episodes, seed)
    E = len(plan)
    policy, cands = grid_policy(ModeTable.from_world(world), tunable, E)
    C = len(cands)
    big = EpisodePlan(
        seeds=plan.seeds * C,
        trace_index=plan.trace_index * C,
        start_s=plan.start_s * C,
        full_trace=False,
        span_s=plan.span_s * C,
    )
    # one policy whose rows are (candidate, episode): simulate resets it with len(big) rows
    out = simulate(make_env, [policy], big, keep_steps=False, progress=progress)
    span = out.totals["span_s"].reshape(C, E).sum(axis=1)
    frames = out.totals["frames"].reshape(C, E).sum(axis=1)
    reward = out.totals["reward"].reshape(C, E).sum(axis=1) / span
    on_time = out.totals["on_time"].reshape(C, E).sum(axis=1) / frames
    best = int(np.argmax(reward))
    return {
        "format": FORMAT,
        "version": 2,
        "heuristic": heuristic,
        "scenario": sc.name,
        "scenario_digest": scenario_digest(sc),
        "split": "train",
        "traces": list(world.trace_names),
        "episodes": E,
        "episode_s": world.episode_s,
        "seed": int(seed),
        "objective": "reward per second of trace on the training split",
        "grid": {k: list(v) for k, v in tunable.grid.items()},
        "candidates": [
            {**c, "reward_per_s": round(float(r), 6), "on_time_rate": round(float(o), 6)}
            for c, r, o in zip(cands, reward, on_time, strict=True)
        ],
        "chosen": {
            "params": cands[best],
            "reward_per_s": round(float(reward[best]), 6),
            "on_time_rate": round(float(on_time[best]), 6),
        },
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "slimrl_version": slimrl.__version__,
    }
