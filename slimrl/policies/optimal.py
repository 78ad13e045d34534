"""``optimal``: the offline optimum of each episode, played back (the score's ceiling).

At the first decision of an episode it solves the episode's dynamic program on the realised
world (:func:`slimrl.env.optimum.solve_episode`: the trace, the edge backlog and the common
random numbers of that episode) from the current time unit to the horizon, then plays the plan:
in unit ``n`` the mode that is optimal from ``n`` on. No causal policy can do better on any
episode; it exists only in simulation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from slimrl.env.dynamics import Episode
from slimrl.env.optimum import EpisodePlan, solve_episode
from slimrl.policies.base import BatchPolicy, ModeTable, PolicyContext, register_policy, world_of


class Optimal(BatchPolicy):
    """Reads ``infos["episode"]`` (the env's ``episode_state()``), or asks ``env`` for it."""

    name = "optimal"
    needs_episode = True

    def __init__(self, table: ModeTable, world: Any, env: Any = None) -> None:
        self.world = world
        self.env = env
        super().__init__(table)

    def _alloc(self, n: int) -> None:
        self.plans: list[tuple[tuple, EpisodePlan] | None] = [None] * n

    def _reset_rows(self, rows: np.ndarray) -> None:
        for i in np.flatnonzero(rows).tolist():
            self.plans[i] = None

    def act_batch(self, observations: np.ndarray, infos: Mapping[str, Any]) -> np.ndarray:
        n = len(observations)
        ep = infos.get("episode")
        if ep is None:
            if self.env is None:
                raise RuntimeError("optimal: no infos['episode'] and no env to ask")
            state = getattr(self.env, "unwrapped", self.env).episode_state()
            ep = {k: np.asarray(v).reshape(-1) for k, v in state.items()}
        out = np.empty(n, dtype=np.int64)
        cols = {k: np.asarray(ep[k]).reshape(n) for k in (*Episode._fields, "unit", "horizon")}
        for i in range(n):
            episode = Episode(*(cols[k][i].item() for k in Episode._fields))
            ident = (episode, int(cols["horizon"][i]))
            unit = int(cols["unit"][i])
            held = self.plans[i]
            if held is None or held[0] != ident or unit < held[1].start:
                plan = solve_episode(self.world, episode, ident[1], start=unit)
                self.plans[i] = held = (ident, plan)
            out[i] = held[1].mode(unit)
        return out


@register_policy("optimal", help="offline optimum of each episode (dynamic programming)")
def _optimal(arg: str, ctx: PolicyContext) -> Optimal:
    return Optimal(ctx.table, world_of(ctx.env), env=ctx.env)
