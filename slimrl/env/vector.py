"""``SlimSplitVectorEnv``: N SlimSplit envs stepped together with numpy (Gymnasium ``VectorEnv``).

Sub-env ``i`` owns a generator seeded like a single env reset with ``seed + i`` and draws from it
exactly what :class:`~slimrl.env.slimsplit.SlimSplitEnv` draws, and the frame formulas are the
same float64 operations, so the vector env and N single envs agree step for step.

Autoreset mode is ``SAME_STEP``: a sub-env that ends is reset within the same ``step``; the
returned observation is the new episode's first one, ``infos["final_obs"]`` (object array, None
where not done) holds the last observation and ``infos["final_info"]`` the last step's info (dict
of arrays with ``_key`` masks). Top-level info arrays carry ``_key`` masks like Gymnasium's: for
a sub-env that was reset in this step only the reset keys (``t_s``, ``trace``, ``action_mask``)
are valid.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from slimrl.env.dynamics import Episode, World, action_mask
from slimrl.env.frame import FRAME_INFO_KEYS
from slimrl.env.observation import ObservationBuilder
from slimrl.env.rate import resolve_rate_baseline
from slimrl.env.slimsplit import (
    _BUSY,
    _BYTES,
    _C,
    _E2E,
    _EDGE,
    _NEXT,
    _ON,
    _Q,
    _R,
    _TX,
    LOOKAHEAD_KEYS,
    RESET_KEYS,
    _episode_options,
    default_randomize,
    mode_space,
)
from slimrl.env.world_cache import build_world
from slimrl.scenario import Scenario, load_scenario


class SlimSplitVectorEnv(VectorEnv):
    """N ``SlimSplit-v0`` envs in numpy; arguments as :class:`SlimSplitEnv` plus ``num_envs``."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str | os.PathLike | Scenario | Mapping[str, Any] = "default",
        trace_dir: str | os.PathLike | None = None,
        split: str | None = "train",
        overrides: Mapping[str, Any] | None = None,
        action_space: str = "multidiscrete",
        render_mode: str | None = None,
        randomize: bool | None = None,
        rate_baseline: float | str | None = None,
    ) -> None:
        if render_mode is not None:
            raise TypeError(f"render_mode {render_mode!r}: SlimSplit-v0 does not render")
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = N = int(num_envs)
        self.scenario = load_scenario(scenario, overrides)
        self.split = split
        self.randomize = default_randomize(self.scenario, split, randomize)
        self.world: World = build_world(self.scenario, trace_dir, split)
        self.rate_baseline = resolve_rate_baseline(
            rate_baseline, self.scenario, trace_dir, split, self.randomize
        )
        w = self.world
        ob = self.scenario.observation
        self.obs_builder = ObservationBuilder.from_world(w)
        self.single_observation_space = self.obs_builder.space
        self.observation_space = batch_space(self.single_observation_space, N)
        self.single_action_space = mode_space(w, action_space)
        mask = action_mask(w.mode_mask, w.K, w.B, action_space == "multidiscrete")
        self.action_space = batch_space(self.single_action_space, N)
        self._flat = action_space == "flat"
        self.action_table = list(w.action_table)
        self._mask = np.broadcast_to(mask, (N, mask.size))
        self.render_mode = None

        H = ob.history
        self._rows = np.arange(N)
        self._rngs: list[np.random.Generator] | None = None
        self._ep = Episode(
            np.zeros(N, dtype=np.int64),  # trace index
            np.zeros(N),  # start s
            np.zeros(N, dtype=np.int64),  # backlog realisation
            np.zeros(N, dtype=np.int64),  # backlog offset
            np.zeros(N, dtype=np.uint64),  # CRN key
            np.ones(N),  # capacity scale
            np.zeros(N),  # base delay ms
            np.ones(N),  # jitter multiplier
        )
        self._n = np.zeros(N, dtype=np.int64)
        self._horizon = np.ones(N, dtype=np.int64)
        self._inv = np.zeros((N, H))  # ms per byte of the last transfers, newest first
        self._count = np.zeros(N, dtype=np.int64)
        self._all = np.ones(N, dtype=bool)
        self._started = False

    # -- gymnasium API ---------------------------------------------------------------------------
    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env; sub-env ``i`` is seeded with ``seed + i`` (or ``seed[i]``).

        ``options`` as in :meth:`SlimSplitEnv.reset`; each value may be one for all or a
        sequence of N.
        """
        N = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * N
        elif isinstance(seed, int | np.integer):
            seeds = [int(seed) + i for i in range(N)]
        else:
            seeds = list(seed)
            if len(seeds) != N:
                raise ValueError(f"seed: expected {N} seeds, got {len(seeds)}")
        if self._rngs is None:
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        else:
            for i, s in enumerate(seeds):
                if s is not None:
                    self._rngs[i] = seeding.np_random(s)[0]
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seeds[0])
        opts = dict(options or {})
        per_env = []
        for i in range(N):
            o = {k: (v[i] if _is_seq(v) else v) for k, v in opts.items()}
            per_env.append(o)
        for i in range(N):
            self._reset_one(i, per_env[i])
        self._started = True
        obs = self.obs_builder.initial(N)
        infos = self._reset_infos()
        for k in RESET_KEYS:
            infos[f"_{k}"] = self._all
        return obs, infos

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started:
            raise RuntimeError("SlimSplitVectorEnv: call reset() before step()")
        w = self.world
        m = self._modes(actions)
        n = self._n
        f = w.frames(m, n, self._ep)
        k, b = w.k_of[m], w.bits_of[m]
        inv = self._inv
        inv[:, 1:] = inv[:, :-1]
        inv[:, 0] = f[_TX] / f[_BYTES]
        self._count += 1
        obs = self.obs_builder.build(
            inv, self._count, f[_TX], f[_C], f[_EDGE], f[_Q], f[_E2E], f[_ON], k, b
        )
        self._n = f[_NEXT]
        truncated = self._n >= self._horizon
        infos: dict[str, Any] = dict(zip(FRAME_INFO_KEYS, f, strict=False))  # info fields first
        infos["k"] = k
        infos["bits"] = b
        infos["t_s"] = self._ep.start_s + n * w.unit_s
        infos["trace"] = w.trace_names_arr[self._ep.trace_index]
        infos["action_mask"] = self._mask
        reward = f[_R] - self.rate_baseline * 1e-3 * f[_BUSY] if self.rate_baseline else f[_R]
        if truncated.any():
            done = truncated.copy()
            final_info = dict(infos)
            for key in list(final_info):
                final_info[f"_{key}"] = done
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done).tolist():
                final_obs[i] = obs[i].copy()
                self._reset_one(i, {})
            obs[done] = self.obs_builder.initial()
            reset = self._reset_infos()
            infos["trace"] = reset["trace"]
            infos["t_s"] = np.where(done, reset["t_s"], infos["t_s"])
            live = ~done
            for key in list(infos):
                infos[f"_{key}"] = self._all if key in RESET_KEYS else live
            infos["final_obs"] = final_obs
            infos["_final_obs"] = done
            infos["final_info"] = final_info
            infos["_final_info"] = done
        else:
            for key in list(infos):
                infos[f"_{key}"] = self._all
        return obs, reward, np.zeros(self.num_envs, dtype=bool), truncated, infos

    # -- extras ----------------------------------------------------------------------------------
    def action_masks(self) -> np.ndarray:
        """Allowed actions per sub-env, shape (N, K + B) or (N, K * B)."""
        return np.array(self._mask)

    def lookahead(self) -> dict[str, np.ndarray]:
        """:meth:`SlimSplitEnv.lookahead` for every sub-env: (N, K, B) arrays."""
        if not self._started:
            raise RuntimeError("SlimSplitVectorEnv.lookahead: call reset() first")
        w = self.world
        ep = Episode(*(a[:, None] for a in self._ep))
        vals = w.frames(w.clamp_arr[None, :], self._n[:, None], ep, sample=False)
        shape = (self.num_envs, w.K, w.B)
        out = {
            key: np.broadcast_to(v, (self.num_envs, w.M)).reshape(shape).copy()
            for key, v in zip(LOOKAHEAD_KEYS, vals, strict=False)
        }
        for key, arr in (
            ("k", w.k_of[w.clamp_arr]),
            ("bits", w.bits_of[w.clamp_arr]),
            ("allowed", w.mode_mask),
        ):
            out[key] = np.broadcast_to(arr.reshape(w.K, w.B), shape).copy()
        return out

    def episode_state(self) -> dict[str, np.ndarray]:
        """:meth:`SlimSplitEnv.episode_state` for every sub-env (arrays)."""
        if not self._started:
            raise RuntimeError("SlimSplitVectorEnv.episode_state: call reset() first")
        state = {k: v.copy() for k, v in self._ep._asdict().items()}
        return {**state, "unit": self._n.copy(), "horizon": self._horizon.copy()}

    def keep_envs(self, rows: Any) -> None:
        """Keep only sub-envs ``rows`` (indices, in that order) and drop the others: an
        evaluation stops stepping episodes that have ended. Every kept sub-env goes on exactly
        as it would have (its episode, history and generator move with it)."""
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if idx.size < 1 or idx.min() < 0 or idx.max() >= self.num_envs:
            raise ValueError(f"keep_envs: expected 1..{self.num_envs} indices in range")
        N = int(idx.size)
        self._ep = Episode(*(a[idx] for a in self._ep))
        self._n, self._horizon = self._n[idx], self._horizon[idx]
        self._inv, self._count = self._inv[idx], self._count[idx]
        if self._rngs is not None:
            self._rngs = [self._rngs[i] for i in idx.tolist()]
        self.num_envs = N
        self.observation_space = batch_space(self.single_observation_space, N)
        self.action_space = batch_space(self.single_action_space, N)
        self._mask = np.broadcast_to(self._mask[0], (N, self._mask.shape[1]))
        self._rows = np.arange(N)
        self._all = np.ones(N, dtype=bool)

    @property
    def sim_time_s(self) -> np.ndarray:
        """Start time (s) of every sub-env's next frame."""
        return self._ep.start_s + self._n * self.world.unit_s

    # -- internals -------------------------------------------------------------------------------
    def _reset_one(self, i: int, opts: dict[str, Any]) -> None:
        w = self.world
        ep, full = _episode_options(w, opts, w.draw_episode(self._rngs[i], self.randomize))
        for arr, v in zip(self._ep, ep, strict=True):
            arr[i] = v
        self._n[i] = 0
        self._horizon[i] = w.horizon(ep.trace_index, ep.start_s, full)
        self._inv[i] = 0.0
        self._count[i] = 0

    def _reset_infos(self) -> dict[str, Any]:
        return {
            "t_s": self._ep.start_s + self._n * self.world.unit_s,
            "trace": self.world.trace_names_arr[self._ep.trace_index],
            "action_mask": self._mask,
        }

    def _modes(self, actions: Any) -> np.ndarray:
        w = self.world
        a = np.asarray(actions)
        if self._flat:
            a = a.reshape(self.num_envs)
            if a.min() < 0 or a.max() >= w.M:
                raise ValueError(f"actions outside Discrete({w.M})")
            return w.clamp_arr[a]
        a = a.reshape(self.num_envs, 2)
        ki, bi = a[:, 0], a[:, 1]
        if ki.min() < 0 or ki.max() >= w.K or bi.min() < 0 or bi.max() >= w.B:
            raise ValueError(f"actions outside MultiDiscrete([{w.K}, {w.B}])")
        return w.clamp_arr[ki * w.B + bi]


def _is_seq(v: Any) -> bool:
    return isinstance(v, list | tuple | np.ndarray)
