"""An SB3 ``VecEnv`` over a Gymnasium ``VectorEnv`` (``SlimSplitVectorEnv``), and the env factory.

Gymnasium vector envs return infos as one dict of arrays (with ``_key`` validity masks) and, in
``SAME_STEP`` autoreset mode, the last observation and info of an episode that just ended in
``infos["final_obs"]`` / ``infos["final_info"]``. SB3 wants a list of per-env dicts, the last
observation under ``terminal_observation`` and ``TimeLimit.truncated`` on truncation:
:class:`GymVectorToSB3` converts one into the other without copying the env's dynamics. The
per-env info of a step is a :class:`RowInfo`, a mapping that reads its row of the arrays only
when something looks into it (SB3 itself reads the infos of ended episodes alone); callbacks
that want every frame read :attr:`GymVectorToSB3.last_infos`, the arrays themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

#: SB3's monitor file suffix (``stable_baselines3.common.monitor.Monitor.EXT``): ``0.monitor.csv``
MONITOR_SUFFIX = ".monitor.csv"
#: keys of a Gymnasium vector info that are bookkeeping, not per-env values
_FINAL_KEYS = ("final_obs", "final_info", "_final_obs", "_final_info")


class RowInfo(MutableMapping):
    """The info of sub-env ``i`` of a vector step: its valid entries of the step's dict of
    arrays (``_key`` masks), as a dict built on first access. Creating one costs a few attribute
    stores, so a step makes N of them for what SB3 needs of most: nothing."""

    __slots__ = ("_infos", "_i", "_n", "_d")

    def __init__(self, infos: Mapping[str, Any], i: int, n: int) -> None:
        self._infos, self._i, self._n, self._d = infos, i, n, None

    def _dict(self) -> dict[str, Any]:
        d = self._d
        if d is None:
            d = self._d = _row(self._infos, self._i, self._n)
        return d

    def __getitem__(self, key: str) -> Any:
        return self._dict()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._dict()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __contains__(self, key: object) -> bool:
        if self._d is None and key not in self._infos:  # SB3 asks for "episode" every step
            return False
        return key in self._dict()

    def get(self, key: str, default: Any = None) -> Any:
        if self._d is None and key not in self._infos:  # without building the row
            return default
        return self._dict().get(key, default)

    def copy(self) -> dict[str, Any]:
        return dict(self._dict())

    def __eq__(self, other: object) -> bool:
        return self._dict() == (other._dict() if isinstance(other, RowInfo) else other)

    def __repr__(self) -> str:
        return repr(self._dict())


def _row(infos: Mapping[str, Any], i: int, n: int) -> dict[str, Any]:
    """Row ``i`` of a Gymnasium dict of arrays: its valid entries (what ``_split`` gives)."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_") or key in _FINAL_KEYS:
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and mask is not True and not bool(np.asarray(mask)[i]):
            continue
        if isinstance(value, dict):
            out[key] = _row(value, i, n)
            continue
        arr = np.asarray(value)
        if arr.ndim == 0 or len(arr) != n:
            out[key] = value
        elif arr.ndim == 1:
            out[key] = arr[i].item() if isinstance(arr[i], np.generic) else arr[i]
        else:
            out[key] = arr[i]
    return out


class GymVectorToSB3(VecEnv):
    """Expose a Gymnasium ``VectorEnv`` (``SAME_STEP`` autoreset) as an SB3 ``VecEnv``.

    * ``step_wait`` returns ``dones = terminated | truncated`` and one info dict per env; for an
      env whose episode ended in this step the dict is the episode's last info (from
      ``final_info``) plus ``terminal_observation`` and ``TimeLimit.truncated``.
    * ``seed(s)`` takes effect at the next ``reset()``: sub-env ``i`` gets ``s + i``.
    * ``env_method`` / ``get_attr`` / ``has_attr`` reach the vector env: a method that returns
      one row per sub-env (``action_masks``) is split per env, other values are repeated.
    """

    def __init__(self, venv: gym.vector.VectorEnv) -> None:
        mode = venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"GymVectorToSB3 needs a SAME_STEP autoreset vector env, got {mode}")
        self.venv = venv
        self._actions: np.ndarray | None = None
        #: the last step's infos as the vector env returned them (a dict of arrays)
        self.last_infos: Mapping[str, Any] = {}
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    # -- VecEnv API ------------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        seeds = self._seeds
        seed: Sequence[int | None] | None = None if all(s is None for s in seeds) else seeds
        options = None
        if any(self._options):
            keys = sorted({k for opts in self._options for k in opts})
            options = {k: [opts.get(k) for opts in self._options] for k in keys}
        obs, infos = self.venv.reset(seed=seed, options=options)
        self.reset_infos = self._split(infos)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        self.last_infos = infos
        dones = np.logical_or(terminated, truncated)
        n = self.num_envs
        out: list[Any] = [RowInfo(infos, i, n) for i in range(n)]
        if dones.any():
            final_obs = infos.get("final_obs")
            final_info = infos.get("final_info") or {}
            for i in np.flatnonzero(dones).tolist():
                self.reset_infos[i] = _row(infos, i, n)
                info = _row(final_info, i, n)
                info["terminal_observation"] = final_obs[i] if final_obs is not None else obs[i]
                info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                out[i] = info
        return obs, np.asarray(rewards, dtype=np.float32), dones, out

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.venv, attr_name)  # AttributeError when absent, as SB3 expects
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        idx = self._indices(indices)
        if isinstance(result, np.ndarray) and result.ndim >= 1 and len(result) == self.num_envs:
            return [result[i] for i in idx]
        return [result for _ in idx]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False for _ in self._indices(indices)]

    # -- extras ----------------------------------------------------------------------------------
    def action_masks(self) -> np.ndarray:
        """Allowed actions per env (MaskablePPO format), shape (N, mask size)."""
        return np.asarray(self.venv.action_masks())

    @property
    def unwrapped(self) -> gym.vector.VectorEnv:
        return self.venv

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int | np.integer):
            return [int(indices)]
        return [int(i) for i in indices]

    def _split(self, infos: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A Gymnasium dict of arrays (``_key`` masks) -> one dict per env of its valid entries."""
        n = self.num_envs
        out: list[dict[str, Any]] = [{} for _ in range(n)]
        for key, value in infos.items():
            if key.startswith("_") or key in _FINAL_KEYS:
                continue
            mask = infos.get(f"_{key}")
            if isinstance(value, dict):
                parts = self._split(value)
                rows = range(n) if mask is None else np.flatnonzero(mask).tolist()
                for i in rows:
                    out[i][key] = parts[i]
                continue
            arr = np.asarray(value)
            if arr.ndim == 0 or len(arr) != n:
                for i in range(n):
                    out[i][key] = value
                continue
            vals = arr.tolist() if arr.ndim == 1 else list(arr)
            if mask is None or mask is True or np.all(mask):
                for i in range(n):
                    out[i][key] = vals[i]
            else:
                for i in np.flatnonzero(mask).tolist():
                    out[i][key] = vals[i]
        return out


def validation_kwargs(env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The env arguments of validation: training's without ``rate_baseline`` (validation scores
    the true reward; the baseline only shapes what the agent learns from)."""
    return {k: v for k, v in env_kwargs.items() if k != "rate_baseline"}


def make_vec_env(
    scenario: Any,
    split: str | None = "train",
    n_envs: int = 8,
    seed: int | None = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    monitor_file: str | os.PathLike | None = None,
) -> VecEnv:
    """``n_envs`` SlimSplit envs on one split: the native vector env, adapted and monitored.

    ``env_kwargs`` are ``SlimSplit-v0`` arguments (``overrides``, ``action_space``, ``trace_dir``,
    ``rate_baseline``);
    ``scenario`` is a name, a path or a loaded :class:`~slimrl.scenario.Scenario`.
    """
    from slimrl.env.vector import SlimSplitVectorEnv

    kwargs = dict(env_kwargs or {})
    kwargs.pop("scenario", None)
    kwargs.pop("split", None)
    venv = SlimSplitVectorEnv(num_envs=n_envs, scenario=scenario, split=split, **kwargs)
    env: VecEnv = GymVectorToSB3(venv)
    if seed is not None:
        env.seed(seed)
    return VecMonitor(env, filename=None if monitor_file is None else str(monitor_file))


def find_monitor(env: VecEnv) -> VecMonitor | None:
    """The ``VecMonitor`` in ``env``'s wrapper chain (``VecNormalize`` sits on top of it)."""
    while env is not None:
        if isinstance(env, VecMonitor):
            return env
        env = getattr(env, "venv", None)
    return None


def next_monitor_file(folder: str | os.PathLike) -> Path:
    """``<folder>/<i>.monitor.csv`` with the first unused ``i`` (one file per training session:
    a resumed run adds one, and SB3's ``load_results`` reads them all, ordered by time)."""
    folder = Path(folder)
    i = 0
    while (folder / f"{i}{MONITOR_SUFFIX}").exists():
        i += 1
    return folder / f"{i}{MONITOR_SUFFIX}"


def attach_monitor_file(env: VecEnv, path: str | os.PathLike, env_id: str) -> Path:
    """Make the ``VecMonitor`` in ``env`` write its episodes to ``path`` (SB3 ``Monitor`` CSV:
    a ``#{"t_start": ..., "env_id": ...}`` line, then ``r,l,t`` per episode, as the Zoo's
    ``plot_train`` / ``all_plots`` read). Done after the run folder exists, not when the env is
    built, so that bad inputs fail before any folder is made."""
    from stable_baselines3.common.monitor import ResultsWriter

    monitor = find_monitor(env)
    if monitor is None:
        raise ValueError("attach_monitor_file: no VecMonitor in the env's wrappers")
    if monitor.results_writer is not None:
        monitor.results_writer.close()
    path = Path(path)
    monitor.results_writer = ResultsWriter(
        str(path),
        header={"t_start": monitor.t_start, "env_id": env_id},
        extra_keys=monitor.info_keywords,
    )
    return path


def wrap_normalize(
    env: VecEnv,
    normalize: Mapping[str, Any] | None,
    eval_env: bool = False,
) -> VecEnv:
    """Wrap in ``VecNormalize`` (``normalize``: its kwargs, None for none), as the Zoo does.

    An evaluation env neither updates the statistics nor scales rewards. Saved statistics are
    restored by :func:`slimrl.runs.stats.restore_vecnormalize` (never unpickled here).
    """
    if normalize is None:
        return env
    kwargs = dict(normalize)
    if eval_env:
        kwargs["training"] = False
        kwargs["norm_reward"] = False
    return VecNormalize(env, **kwargs)
