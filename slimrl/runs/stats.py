"""VecNormalize statistics on disk, in a format that cannot run code: ``vecnormalize.npz``.

The archive holds plain numeric arrays (read back with :func:`slimrl.validate.read_npz`: bounded,
no pickle): ``obs_mean``, ``obs_var``, ``obs_count`` (observation statistics), ``ret_mean``,
``ret_var``, ``ret_count`` (discounted-return statistics), ``clip_obs``, ``clip_reward``,
``epsilon``, ``gamma``, ``norm_obs``, ``norm_reward`` and ``slimrl_vecnormalize`` (the format
version). Everything sits in one file so that one atomic rename publishes all of it.

Runs written before this format hold ``vecnormalize.pkl`` (a pickle: opening one runs whatever
code it names). Those are read only when the caller trusts pickles: ``trust_pickle=True``, or
the process-wide switch :func:`set_trust_pickle` that ``--trust-pickle`` turns on for one command
(``slimrl evaluate``, ``slimrl export``, ``slimrl train --resume``); else they are refused with
a :class:`RunError` that says how to convert the run once (``slimrl runs convert RUN_DIR``).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from slimrl.errors import RunError
from slimrl.runs.files import write_file
from slimrl.runs.layout import CHECKPOINTS_DIR, PARAMS_DIR
from slimrl.validate import read_npz, short

#: format version written in ``slimrl_vecnormalize``
STATS_FORMAT = 1
#: largest statistics file read (bytes); an observation has a few dozen values
MAX_STATS_BYTES = 16 << 20
_SCALARS = ("obs_count", "ret_mean", "ret_var", "ret_count", "clip_obs", "clip_reward")
_SCALARS += ("epsilon", "gamma")

_trust_pickle = False


class PickleRefusedError(RunError):
    """Pickled statistics of an older run, refused because pickles are not trusted."""


def set_trust_pickle(enabled: bool) -> None:
    """Let this process read pickled statistics of old runs (``--trust-pickle``)."""
    global _trust_pickle
    _trust_pickle = bool(enabled)


def trust_pickle_default() -> bool:
    """Whether pickled statistics are read when a caller does not say (default False)."""
    return _trust_pickle


@contextlib.contextmanager
def trusting_pickle(enabled: bool = True) -> Iterator[None]:
    """Within the block, pickled statistics are read (``enabled``) or refused; then as before."""
    before = _trust_pickle
    set_trust_pickle(enabled)
    try:
        yield
    finally:
        set_trust_pickle(before)


# -- writing ------------------------------------------------------------------------------------
def stats_arrays(vec: Any) -> dict[str, np.ndarray]:
    """The arrays of ``vecnormalize.npz`` for a VecNormalize (live or loaded)."""
    rms = vec.obs_rms
    if isinstance(rms, dict):
        raise RunError("dict observation statistics are not supported (slimrl has Box spaces)")
    ret = vec.ret_rms
    return {
        "slimrl_vecnormalize": np.int64(STATS_FORMAT),
        "obs_mean": np.asarray(rms.mean, dtype=np.float64),
        "obs_var": np.asarray(rms.var, dtype=np.float64),
        "obs_count": np.float64(rms.count),
        "ret_mean": np.float64(np.asarray(ret.mean).reshape(())),
        "ret_var": np.float64(np.asarray(ret.var).reshape(())),
        "ret_count": np.float64(ret.count),
        "clip_obs": np.float64(vec.clip_obs),
        "clip_reward": np.float64(vec.clip_reward),
        "epsilon": np.float64(vec.epsilon),
        "gamma": np.float64(vec.gamma),
        "norm_obs": np.bool_(vec.norm_obs),
        "norm_reward": np.bool_(vec.norm_reward),
    }


def save_vecnormalize(vec: Any, path: str | os.PathLike) -> Path:
    """Write ``vec``'s statistics to ``path`` (``.npz``) atomically and durably."""
    path = Path(path)
    if path.suffix != ".npz":
        raise RunError(f"{path}: VecNormalize statistics are written as .npz")
    arrays = stats_arrays(vec)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_file(path, lambda f: np.savez(f, **arrays))


# -- reading ------------------------------------------------------------------------------------
def read_stats(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The validated arrays of a ``vecnormalize.npz`` (bounded read, no pickle)."""
    path = Path(path)
    return check_stats(read_npz(path, RunError, str(path), max_file_bytes=MAX_STATS_BYTES), path)


def check_stats(arrays: dict[str, np.ndarray], where: str | os.PathLike) -> dict[str, np.ndarray]:
    """Raise :class:`RunError` unless ``arrays`` are complete, well shaped, finite statistics."""
    need = ("slimrl_vecnormalize", "obs_mean", "obs_var", *_SCALARS, "norm_obs", "norm_reward")
    missing = [k for k in need if k not in arrays]
    if missing:
        raise RunError(f"{where}: not VecNormalize statistics (missing {', '.join(missing)})")
    version = arrays["slimrl_vecnormalize"]
    if version.shape != () or version.dtype.kind not in "iu" or int(version) != STATS_FORMAT:
        raise RunError(
            f"{where}: statistics format {short(version.tolist())}, this slimrl reads "
            f"{STATS_FORMAT}"
        )
    mean, var = arrays["obs_mean"], arrays["obs_var"]
    if mean.ndim != 1 or var.shape != mean.shape:
        raise RunError(
            f"{where}: obs_mean {mean.shape} and obs_var {var.shape}: expected two (D,) arrays"
        )
    for key in ("obs_mean", "obs_var", *_SCALARS):
        a = arrays[key]
        if a.dtype.kind not in "biuf" or (key in _SCALARS and a.shape != ()):
            raise RunError(f"{where}: {key}: expected a number, got dtype {a.dtype.str} {a.shape}")
        if not np.all(np.isfinite(a)):
            raise RunError(f"{where}: {key}: not finite")
    for key in ("obs_var", "obs_count", "ret_var", "ret_count"):
        if np.any(arrays[key] < 0):
            raise RunError(f"{where}: {key}: negative")
    for key in ("clip_obs", "clip_reward", "epsilon"):
        if not float(arrays[key]) > 0:
            raise RunError(f"{where}: {key}: expected > 0, got {float(arrays[key])}")
    if not 0.0 <= float(arrays["gamma"]) <= 1.0:
        raise RunError(f"{where}: gamma: expected in [0, 1], got {float(arrays['gamma'])}")
    for key in ("norm_obs", "norm_reward"):
        if arrays[key].shape != () or arrays[key].dtype.kind != "b":
            raise RunError(f"{where}: {key}: expected true or false")
    return arrays


def vecnormalize_from_arrays(arrays: dict[str, np.ndarray]) -> Any:
    """A VecNormalize (no venv, not training) holding these statistics, as SB3 unpickles one."""
    from gymnasium import spaces
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.vec_env import VecNormalize

    mean = np.asarray(arrays["obs_mean"], dtype=np.float64)
    obs_rms = RunningMeanStd(shape=mean.shape)
    obs_rms.mean = mean.copy()
    obs_rms.var = np.asarray(arrays["obs_var"], dtype=np.float64).copy()
    obs_rms.count = float(arrays["obs_count"])
    ret_rms = RunningMeanStd(shape=())
    ret_rms.mean = np.float64(arrays["ret_mean"])
    ret_rms.var = np.float64(arrays["ret_var"])
    ret_rms.count = float(arrays["ret_count"])
    vec = VecNormalize.__new__(VecNormalize)
    vec.__setstate__(
        {
            "obs_rms": obs_rms,
            "ret_rms": ret_rms,
            "clip_obs": float(arrays["clip_obs"]),
            "clip_reward": float(arrays["clip_reward"]),
            "gamma": float(arrays["gamma"]),
            "epsilon": float(arrays["epsilon"]),
            "training": False,
            "norm_obs": bool(arrays["norm_obs"]),
            "norm_reward": bool(arrays["norm_reward"]),
            "norm_obs_keys": None,
            "old_reward": np.array([]),
            "observation_space": spaces.Box(-np.inf, np.inf, mean.shape, np.float32),
            "action_space": None,
            "num_envs": 1,
            "render_mode": None,
        }
    )
    vec.class_attributes = dict(inspect.getmembers(VecNormalize))
    vec.returns = np.zeros(1)  # set_venv sizes it to the envs
    return vec


def load_vecnormalize(path: str | os.PathLike, trust_pickle: bool | None = None) -> Any:
    """The VecNormalize saved at ``path`` (no venv): ``.npz``, or an old run's trusted ``.pkl``.

    ``trust_pickle`` None follows :func:`set_trust_pickle` (off unless ``--trust-pickle``).
    """
    path = Path(path)
    if path.suffix != ".pkl":
        return vecnormalize_from_arrays(read_stats(path))
    if not (trust_pickle_default() if trust_pickle is None else trust_pickle):
        raise PickleRefusedError(pickle_refusal(path))
    try:
        with open(path, "rb") as f:
            vec = pickle.load(f)  # noqa: S301 (the user said they trust this run)
    except Exception as exc:
        raise RunError(f"{path}: cannot read VecNormalize statistics ({exc})") from exc
    if not hasattr(vec, "obs_rms"):
        raise RunError(f"{path}: not a VecNormalize pickle (no obs_rms)")
    return vec


def pickle_refusal(path: Path) -> str:
    """The error message for a pickle read without trust."""
    run = _run_dir_of(path)
    return (
        f"{path}: VecNormalize statistics of an older run, stored as a pickle (opening it can "
        f"run code); refusing to read it. If you trust this run, convert it once with "
        f"`slimrl runs convert {run}` or pass --trust-pickle"
    )


def _run_dir_of(path: Path) -> Path:
    parent = path.parent
    return parent.parent if parent.name in (CHECKPOINTS_DIR, PARAMS_DIR) else parent


def restore_vecnormalize(wrapper: Any, source: Any) -> None:
    """Copy the statistics and settings of ``source`` (a loaded VecNormalize) into ``wrapper``.

    ``wrapper`` keeps its venv and its ``training`` flag.
    """
    d = wrapper.obs_rms.mean.shape if hasattr(wrapper.obs_rms, "mean") else None
    s = np.asarray(source.obs_rms.mean).shape
    if d is not None and d != s:
        raise RunError(
            f"VecNormalize statistics for observations of shape {s}, the env gives {d}; they "
            "belong to another run or observation layout"
        )
    for name in ("obs_rms", "ret_rms"):
        setattr(wrapper, name, _copy_rms(getattr(source, name)))
    for name in ("clip_obs", "clip_reward", "gamma", "epsilon", "norm_obs", "norm_reward"):
        setattr(wrapper, name, getattr(source, name))


def _copy_rms(rms: Any) -> Any:
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    out = RunningMeanStd(shape=np.shape(rms.mean))
    out.mean = np.array(rms.mean, dtype=np.float64)
    out.var = np.array(rms.var, dtype=np.float64)
    out.count = float(rms.count)
    if not math.isfinite(out.count):
        raise RunError("VecNormalize statistics: count is not finite")
    return out
