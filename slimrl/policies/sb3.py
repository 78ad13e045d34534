"""Stable-Baselines3 models as policies: a training run folder (RL Baselines3 Zoo layout).

The model predicts deterministically on the observation, normalised with the run's
VecNormalize statistics when it trained with them; its action (``[ki, bi]`` or a flat index)
is converted to the flat mode index. MaskablePPO gets the scenario's allowed modes as its mask.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from slimrl.errors import PolicyError, RunError
from slimrl.policies.base import BatchPolicy, ModeTable
from slimrl.runs import Run


class SB3Policy(BatchPolicy):
    """A loaded SB3 model (+ optional VecNormalize) acting on batches of observations."""

    def __init__(
        self,
        table: ModeTable,
        model: Any,
        vecnormalize: Any = None,
        name: str = "sb3",
        obs_dim: int | None = None,
    ) -> None:
        from gymnasium import spaces

        self.model = model
        self.vecnormalize = vecnormalize
        self.name = name
        space = model.action_space
        if isinstance(space, spaces.MultiDiscrete) and list(space.nvec) == [table.K, table.B]:
            self._multi = True
        elif isinstance(space, spaces.Discrete) and int(space.n) == table.M:
            self._multi = False
        else:
            raise PolicyError(
                f"{name}: the model acts in {space}; this scenario has {table.K} k values x "
                f"{table.B} bits values (MultiDiscrete([{table.K}, {table.B}]) or "
                f"Discrete({table.M}))"
            )
        shape = getattr(model.observation_space, "shape", None)
        if obs_dim is not None and shape != (obs_dim,):
            raise PolicyError(
                f"{name}: the model takes observations of shape {shape}, the env gives "
                f"({obs_dim},); was it trained with another observation history?"
            )
        self._mask = table.action_mask(self._multi)
        self._maskable = "maskable" in type(model.policy).__module__
        super().__init__(table)

    def act_batch(self, observations: np.ndarray, infos: Mapping[str, Any]) -> np.ndarray:
        x = np.asarray(observations, dtype=np.float32)
        if self.vecnormalize is not None:
            x = self.vecnormalize.normalize_obs(x)
        kwargs = {}
        if self._maskable:
            kwargs["action_masks"] = np.broadcast_to(self._mask, (len(x), self._mask.size))
        a, _ = self.model.predict(x, deterministic=True, **kwargs)
        a = np.asarray(a, dtype=np.int64)
        if self._multi:
            a = a.reshape(len(x), 2)
            return a[:, 0] * self.table.B + a[:, 1]
        return a.reshape(len(x))


def load_sb3_policy(
    path: str | os.PathLike, table: ModeTable, obs_dim: int | None = None, which: str = "final"
) -> SB3Policy:
    """An :class:`SB3Policy` from a run folder or any model ``.zip`` of a run, with the run's
    VecNormalize statistics (refused when the run normalised and they are missing)."""
    try:
        run = Run.open(path, which)
        model = run.load_agent()
        vec = run.load_vecnormalize()
    except RunError as exc:
        raise PolicyError(str(exc)) from None
    return SB3Policy(table, model, vec, name=str(path), obs_dim=obs_dim)
