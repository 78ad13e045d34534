"""The reward-rate baseline: train for reward per second with a per-frame reward.

The objective is reward per second of trace, but an agent sums per-frame rewards, and with a short
horizon (``gamma`` 0.5) it prefers a slower mode whose frame earns a little more even when the
faster mode earns more per second. Subtracting ``rate x busy time`` from each frame's reward
(the average-reward form of a semi-Markov decision problem) charges every frame for the time it
holds the device: with ``rate`` at the best achievable reward per second, maximising the shaped
frame reward is maximising reward per second. ``rate_baseline="best-static"`` uses the best static
mode's reward per second on the env's own episodes (a lower bound of the optimum's, and cheap),
or 0 where that is negative: a baseline below zero would pay a frame for holding the device, when
the optimum of such a scenario still earns a positive rate.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from slimrl.scenario import Scenario, scenario_digest

#: the rate baseline computed from the scenario
BEST_STATIC = "best-static"
_EPISODES = 16
_SEED = 0


def resolve_rate_baseline(
    value: float | str | None,
    scenario: Scenario,
    trace_dir: str | os.PathLike | None,
    split: str | None,
    randomize: bool,
) -> float:
    """The reward-rate baseline (reward per second) for ``value``: a number, ``"best-static"``
    or None / 0 (no baseline)."""
    if value is None:
        return 0.0
    if isinstance(value, str):
        if value != BEST_STATIC:
            raise ValueError(
                f"rate_baseline: expected a number (reward per second) or {BEST_STATIC!r}, "
                f"got {value!r}"
            )
        key = (scenario_digest(scenario), str(trace_dir), split, bool(randomize))
        if key not in _BEST_STATIC:
            _BEST_STATIC[key] = best_static_rate(scenario, trace_dir, split, randomize)
        return _BEST_STATIC[key]
    rate = float(value)
    if not np.isfinite(rate):
        raise ValueError(f"rate_baseline: expected a finite number, got {value!r}")
    return rate


#: best-static rates computed in this process, by scenario digest, traces, split, randomisation
_BEST_STATIC: dict[tuple[Any, ...], float] = {}


def best_static_rate(
    scenario: Scenario, trace_dir: str | os.PathLike | None, split: str | None, randomize: bool
) -> float:
    """The best static mode's reward per second over the same ``_EPISODES`` episodes (at least
    0): every allowed mode plays them side by side in one vector env."""
    from slimrl.env.vector import SlimSplitVectorEnv
    from slimrl.env.world_cache import build_world

    modes = np.flatnonzero(build_world(scenario, trace_dir, split).mode_mask)
    E, M = _EPISODES, modes.size
    env = SlimSplitVectorEnv(
        E * M, scenario, trace_dir, split, action_space="flat", randomize=randomize
    )
    env.reset(seed=[_SEED + e for _ in range(M) for e in range(E)])  # same episodes per mode
    actions = np.repeat(modes, E)
    reward, busy_ms = np.zeros(E * M), np.zeros(E * M)
    done = np.zeros(E * M, dtype=bool)
    while not done.all():
        _, r, _, truncated, info = env.step(actions)
        live = ~done
        reward[live] += r[live]
        busy_ms[live] += info["busy_ms"][live]
        done |= truncated
    rate = reward.reshape(M, E).sum(axis=1) / busy_ms.reshape(M, E).sum(axis=1) * 1000.0
    return max(float(rate.max()), 0.0)
