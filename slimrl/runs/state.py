"""The training state beside a saved model, so that ``--resume`` continues bit for bit.

A model zip holds the weights, the optimizer and the step counters; continuing a run exactly
also needs what the zip does not hold: the random number generators (Python ``random``, numpy's
global generator, torch's CPU generator, the action space's, every sub-env's), the env's
episode state (the vector env's arrays, the monitor's episode sums, the VecNormalize statistics
and discounted returns) and the last observation. :func:`capture` takes all of it from a live
model **between two rollouts** (an on-policy rollout in progress cannot be resumed exactly), and
:func:`restore` puts it back after the model zip is loaded.

On disk it is one ``.npz`` of plain arrays (read with :func:`slimrl.validate.read_npz`, no
pickle): arrays under their dotted names, and ``meta``, the UTF-8 bytes of a JSON object (format,
step count, generator states, the sha256 of the model zip it belongs to).

Off-policy algorithms (DQN) resume with the same state but without their replay buffer, so not
bit for bit.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slimrl.errors import RunError
from slimrl.io import sha256_file
from slimrl.runs.files import write_file
from slimrl.runs.stats import STATS_FORMAT, check_stats, stats_arrays, vecnormalize_from_arrays
from slimrl.validate import read_npz, short

STATE_FORMAT = "slimrl-train-state"
STATE_VERSION = 1
#: largest training-state file read (bytes): a few arrays per sub-env
MAX_STATE_BYTES = 64 << 20
#: largest ``meta`` JSON (bytes)
MAX_META_BYTES = 4 << 20
#: bit generators a saved generator state may name
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
#: most wrappers walked from the model's env down to the vector env
_MAX_WRAPPERS = 16


@dataclass
class TrainState:
    """``meta`` (JSON-able) and ``arrays``; ``weights`` (policy and optimizer state dicts) only
    in memory, for rolling a model back to the last rollout boundary."""

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    weights: dict[str, Any] | None = None

    @property
    def num_timesteps(self) -> int:
        return int(self.meta["num_timesteps"])


# -- capture and restore --------------------------------------------------------------------------
def capture(model: Any, weights: bool = False) -> TrainState:
    """The training state of ``model`` and its env now (``weights``: also the torch state)."""
    import torch

    meta: dict[str, Any] = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "algo": type(model).__name__,
        "num_timesteps": int(model.num_timesteps),
        "n_updates": int(getattr(model, "_n_updates", 0)),
        "episode_num": int(getattr(model, "_episode_num", 0)),
        "progress_remaining": float(getattr(model, "_current_progress_remaining", 1.0)),
        "python_random": _py_state(random.getstate()),
        "ep_info_buffer": _plain_infos(getattr(model, "ep_info_buffer", None)),
    }
    arrays: dict[str, np.ndarray] = {}
    np_state = np.random.get_state(legacy=False)
    arrays["numpy_random.key"] = np.asarray(np_state["state"]["key"], dtype=np.uint32)
    meta["numpy_random"] = {k: v for k, v in np_state.items() if k != "state"}
    meta["numpy_random"]["pos"] = int(np_state["state"]["pos"])
    arrays["torch_random"] = torch.get_rng_state().numpy().copy()
    meta["action_space_random"] = _space_rng(model.action_space)
    for name in ("_last_obs", "_last_episode_starts", "_last_original_obs"):
        value = getattr(model, name, None)
        if isinstance(value, np.ndarray):
            arrays[f"model.{name}"] = value.copy()
    meta["env"] = _capture_env(model.get_env(), arrays)
    state = TrainState(meta, arrays)
    if weights:
        state.weights = {
            "policy": copy.deepcopy(model.policy.state_dict()),
            "optimizer": copy.deepcopy(model.policy.optimizer.state_dict()),
        }
    return state


def restore(model: Any, state: TrainState, random_state: bool = True) -> None:
    """Put ``state`` back into ``model`` and its env (after loading the model it belongs to).

    ``random_state`` False leaves the global generators (Python, numpy, torch, the action
    space's) for :func:`restore_random`, to be called right before training continues: code
    that runs in between (loggers, callbacks) may draw from them.
    """
    meta, arrays = state.meta, state.arrays
    if state.weights is not None:
        model.policy.load_state_dict(state.weights["policy"])
        model.policy.optimizer.load_state_dict(state.weights["optimizer"])
    model.num_timesteps = int(meta["num_timesteps"])
    model._n_updates = int(meta["n_updates"])
    model._episode_num = int(meta["episode_num"])
    model._current_progress_remaining = float(meta["progress_remaining"])
    if getattr(model, "ep_info_buffer", None) is not None:
        model.ep_info_buffer = deque(meta["ep_info_buffer"], maxlen=model.ep_info_buffer.maxlen)
    for name in ("_last_obs", "_last_episode_starts", "_last_original_obs"):
        if f"model.{name}" in arrays:
            setattr(model, name, arrays[f"model.{name}"].copy())
    _restore_env(model.get_env(), meta["env"], arrays)
    if random_state:
        restore_random(model, state)


def restore_random(model: Any, state: TrainState) -> None:
    """Put back the global generators of ``state`` (Python, numpy, torch, the action space)."""
    import torch

    meta, arrays = state.meta, state.arrays
    random.setstate(_py_tuple(meta["python_random"]))
    np_state = dict(meta["numpy_random"])
    np_state["state"] = {"key": arrays["numpy_random.key"], "pos": np_state.pop("pos")}
    np.random.set_state(np_state)
    torch.set_rng_state(torch.from_numpy(arrays["torch_random"].astype(np.uint8)))
    if meta.get("action_space_random") is not None:
        model.action_space._np_random = _generator(meta["action_space_random"], "action space")


def _capture_env(env: Any, arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One entry per wrapper from ``env`` down to the vector env (arrays go into ``arrays``)."""
    from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

    out: list[dict[str, Any]] = []
    for depth, e in enumerate(_chain(env)):
        key = f"env{depth}"
        if isinstance(e, VecNormalize):
            for name, a in stats_arrays(e).items():
                arrays[f"{key}.stats.{name}"] = np.asarray(a)
            arrays[f"{key}.returns"] = np.asarray(e.returns, dtype=np.float64).copy()
            for name in ("old_obs", "old_reward"):
                value = getattr(e, name, None)
                if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
                    arrays[f"{key}.{name}"] = value.copy()
            out.append({"kind": "VecNormalize"})
        elif isinstance(e, VecMonitor):
            arrays[f"{key}.episode_returns"] = np.asarray(e.episode_returns).copy()
            arrays[f"{key}.episode_lengths"] = np.asarray(e.episode_lengths).copy()
            out.append({"kind": "VecMonitor", "episode_count": int(e.episode_count)})
        elif isinstance(e, VecEnv):  # another SB3 VecEnv (the Gymnasium adapter): no state
            out.append({"kind": type(e).__name__})
        else:
            out.append(_capture_vector_env(e, key, arrays))
    return out


def _capture_vector_env(venv: Any, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """A Gymnasium vector env: its own ``get_state()`` if it has one, else its private fields
    (``SlimSplitVectorEnv``: arrays, the episodes ``_ep`` (a NamedTuple of arrays), per-sub-env
    generators ``_rngs``, ``_np_random``)."""
    if hasattr(venv, "get_state") and hasattr(venv, "set_state"):
        state = venv.get_state()
        for name, a in state.get("arrays", {}).items():
            arrays[f"{key}.{name}"] = np.asarray(a)
        return {"kind": "state", "meta": state.get("meta", {})}
    entry: dict[str, Any] = {"kind": "fields", "arrays": [], "scalars": {}, "rngs": {}}
    for name, value in vars(venv).items():
        if not name.startswith("_"):
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            arrays[f"{key}.{name}"] = np.array(value)
            entry["arrays"].append(name)
        elif isinstance(value, np.random.Generator):
            entry["rngs"][name] = _gen_state(value)
        elif (
            isinstance(value, list)
            and value
            and all(isinstance(g, np.random.Generator) for g in value)
        ):
            entry["rngs"][name] = [_gen_state(g) for g in value]
        elif value is None or isinstance(value, bool | int | float):
            entry["scalars"][name] = value
        elif _is_array_tuple(value):  # a NamedTuple of per-env arrays (the episodes)
            for field, a in value._asdict().items():
                arrays[f"{key}.{name}.{field}"] = np.array(a)
            entry.setdefault("tuples", {})[name] = list(value._fields)
    return entry


def _is_array_tuple(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and hasattr(value, "_asdict")
        and all(isinstance(a, np.ndarray) and a.dtype.kind in "biuf" for a in value)
    )


def _restore_env(env: Any, entries: Any, arrays: dict[str, np.ndarray]) -> None:
    from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

    from slimrl.runs.stats import restore_vecnormalize

    chain = _chain(env)
    kinds = [e.get("kind") if isinstance(e, dict) else None for e in entries]
    if len(chain) != len(entries):
        raise RunError(
            f"the saved training state has {len(entries)} env layers ({', '.join(map(str, kinds))})"
            f", this env has {len(chain)}; was normalisation switched on or off?"
        )
    for depth, (e, entry) in enumerate(zip(chain, entries, strict=True)):
        key = f"env{depth}"
        kind = entry.get("kind")
        if isinstance(e, VecNormalize):
            if kind != "VecNormalize":
                raise RunError(f"the saved training state has no VecNormalize at layer {depth}")
            prefix = f"{key}.stats."
            stats = {k[len(prefix) :]: a for k, a in arrays.items() if k.startswith(prefix)}
            restore_vecnormalize(e, vecnormalize_from_arrays(check_stats(stats, "training state")))
            returns = arrays[f"{key}.returns"]
            if returns.shape != np.shape(e.returns):
                raise RunError(f"the saved state is for {returns.shape} envs, the env has others")
            e.returns = returns.astype(np.float64).copy()
            for name in ("old_obs", "old_reward"):
                if f"{key}.{name}" in arrays:
                    setattr(e, name, arrays[f"{key}.{name}"].copy())
        elif isinstance(e, VecMonitor):
            e.episode_returns = arrays[f"{key}.episode_returns"].copy()
            e.episode_lengths = arrays[f"{key}.episode_lengths"].copy()
            e.episode_count = int(entry["episode_count"])
        elif isinstance(e, VecEnv):
            for name in ("_reset_seeds", "_reset_options"):  # no seed pending: the env is live
                if hasattr(e, name):
                    getattr(e, name)()
        elif kind == "state":
            prefix = f"{key}."
            own = {k[len(prefix) :]: a for k, a in arrays.items() if k.startswith(prefix)}
            e.set_state({"arrays": own, "meta": entry.get("meta", {})})
        else:
            _restore_fields(e, entry, key, arrays)


def _restore_fields(venv: Any, entry: dict[str, Any], key: str, arrays: dict) -> None:
    for name in entry.get("arrays", []):
        saved = arrays[f"{key}.{name}"]
        current = getattr(venv, name, None)
        if (
            isinstance(current, np.ndarray)
            and current.shape == saved.shape
            and current.flags.writeable
        ):
            np.copyto(current, saved.astype(current.dtype))
        elif isinstance(current, np.ndarray) and current.shape != saved.shape:
            raise RunError(
                f"the saved env state {name} has shape {saved.shape}, the env {current.shape}; "
                "was the number of envs changed?"
            )
        else:
            setattr(venv, name, saved.copy())
    for name, value in entry.get("scalars", {}).items():
        setattr(venv, name, value)
    for name, fields in entry.get("tuples", {}).items():
        current = getattr(venv, name, None)
        saved = [arrays.get(f"{key}.{name}.{f}") for f in fields]
        if (
            not _is_array_tuple(current)
            or list(current._fields) != list(fields)
            or any(a is None or a.shape != c.shape for a, c in zip(saved, current, strict=True))
        ):
            raise RunError(
                f"the saved env state {name} does not match this env's; was the number of envs "
                "changed?"
            )
        restored = (a.astype(c.dtype) for a, c in zip(saved, current, strict=True))
        setattr(venv, name, type(current)(*restored))
    for name, value in entry.get("rngs", {}).items():
        if isinstance(value, list):
            setattr(venv, name, [_generator(v, f"env {name}") for v in value])
        else:
            setattr(venv, name, _generator(value, f"env {name}"))


def _chain(env: Any) -> list[Any]:
    out = []
    e = env
    while e is not None and len(out) < _MAX_WRAPPERS:
        out.append(e)
        e = getattr(e, "venv", None)
    return out


# -- generator states as JSON ---------------------------------------------------------------------
def _gen_state(gen: np.random.Generator) -> dict[str, Any]:
    state = gen.bit_generator.state
    return _jsonable(state)


def _generator(state: Any, what: str) -> np.random.Generator:
    if not isinstance(state, dict) or state.get("bit_generator") not in BIT_GENERATORS:
        raise RunError(f"training state: {what}: not a known generator state ({short(state)})")
    bit_gen = getattr(np.random, state["bit_generator"])()
    try:
        bit_gen.state = _arrays_back(state)
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise RunError(f"training state: {what}: bad generator state ({exc})") from None
    return np.random.Generator(bit_gen)


def _space_rng(space: Any) -> dict[str, Any] | None:
    gen = getattr(space, "_np_random", None)
    return _gen_state(gen) if isinstance(gen, np.random.Generator) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"__array__": value.dtype.str, "values": value.tolist()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _arrays_back(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__array__", "values"}:
            dtype = np.dtype(value["__array__"])
            if dtype.kind not in "biuf":
                raise ValueError(f"dtype {dtype.str}")
            return np.asarray(value["values"], dtype=dtype)
        return {k: _arrays_back(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_arrays_back(v) for v in value]
    return value


def _py_state(state: tuple) -> list[Any]:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _py_tuple(state: Any) -> tuple:
    try:
        version, internal, gauss = state
        return (int(version), tuple(int(x) for x in internal), gauss)
    except (TypeError, ValueError):
        raise RunError("training state: python_random: malformed") from None


def _plain_infos(buffer: Any) -> list[dict[str, Any]]:
    """The episode-info buffer (logging only) as JSON: numbers kept, the rest dropped."""
    out = []
    for info in buffer or ():
        if isinstance(info, dict):
            out.append(
                {
                    str(k): float(v)
                    for k, v in info.items()
                    if isinstance(v, int | float | np.number) and math.isfinite(float(v))
                }
            )
    return out


# -- files ----------------------------------------------------------------------------------------
def write_state(state: TrainState, path: str | os.PathLike, model_file: str | os.PathLike) -> Path:
    """Write ``state`` (bound to ``model_file`` by its sha256) atomically and durably."""
    path = Path(path)
    meta = dict(state.meta, model=Path(model_file).name, model_sha256=sha256_file(model_file))
    meta["stats_format"] = STATS_FORMAT
    blob = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    arrays = {**state.arrays, "meta": blob}
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_file(path, lambda f: np.savez(f, **arrays))


def read_state(path: str | os.PathLike) -> TrainState:
    """A training state from disk (bounded, no pickle); :class:`RunError` when malformed."""
    path = Path(path)
    arrays = read_npz(path, RunError, str(path), max_file_bytes=MAX_STATE_BYTES)
    blob = arrays.pop("meta", None)
    if blob is None or blob.dtype != np.uint8 or blob.ndim != 1 or blob.size > MAX_META_BYTES:
        raise RunError(f"{path}: not a slimrl training state (no meta)")
    try:
        meta = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RunError(f"{path}: not a slimrl training state (meta is not JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise RunError(f"{path}: not a slimrl training state")
    if meta.get("version") != STATE_VERSION:
        raise RunError(
            f"{path}: training state version {short(meta.get('version'))}, this slimrl reads "
            f"{STATE_VERSION}"
        )
    need = ("num_timesteps", "n_updates", "episode_num", "progress_remaining", "python_random")
    need += ("numpy_random", "env", "model_sha256")
    missing = [k for k in need if k not in meta]
    if missing or not isinstance(meta["env"], list):
        raise RunError(f"{path}: training state without {', '.join(missing) or 'env'}")
    if "numpy_random.key" not in arrays or "torch_random" not in arrays:
        raise RunError(f"{path}: training state without its random generator states")
    n = meta["num_timesteps"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise RunError(f"{path}: num_timesteps: expected an integer >= 0, got {short(n)}")
    return TrainState(meta, arrays)
