"""Hyperparameters in the RL Baselines3 Zoo format: read, validate, turn into model arguments.

A file (``agents/<algo>.yml``) maps an env id to its hyperparameters::

    SlimSplit-v0:
      n_timesteps: !!float 3e5
      policy: MlpPolicy
      n_envs: 8
      normalize: true                 # or "dict(norm_obs=True, norm_reward=False)"
      learning_rate: lin_3e-4         # linear schedule from 3e-4 to 0
      policy_kwargs: "dict(net_arch=[64, 64], activation_fn=nn.Tanh)"
      env_kwargs: {action_space: flat}

Python-valued strings (``policy_kwargs``, ``normalize``) are read with a small safe evaluator
(``dict(...)``, literals and ``nn.<Class>``), never with ``eval``. Every numeric value is checked
against :data:`BOUNDS` (finite, in range) before anything is built, each error naming the file
and the key.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import importlib
import inspect
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slimrl.errors import HyperparamsError
from slimrl.paths import AGENTS_DIR, display
from slimrl.runs import ENV_ID, algo_class, canonical_algo
from slimrl.validate import read_yaml, short

#: Zoo keys that are not constructor arguments of the algorithm
ZOO_KEYS = {"n_timesteps", "n_envs", "normalize", "env_kwargs", "monitor_kwargs"}
#: Zoo keys slimrl does not support (they wrap single envs; slimrl trains on a native vector env)
UNSUPPORTED = {"frame_stack", "env_wrapper", "vec_env_wrapper", "callback", "noise_type"}
#: constructor arguments slimrl sets itself
RESERVED = {"env", "seed", "verbose", "device", "tensorboard_log", "_init_setup_model"}
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")
ENV_KWARGS = {"scenario", "trace_dir", "overrides", "action_space", "rate_baseline"}


@dataclass(frozen=True)
class Bound:
    """The values a numeric hyperparameter may take (ends inclusive unless ``gt``)."""

    lo: float | None = None
    hi: float | None = None
    gt: bool = False  # lo excluded
    integer: bool = False
    none_ok: bool = False
    extra: tuple[float, ...] = ()  # values allowed besides the range (gradient_steps: -1)

    def text(self) -> str:
        kind = "an integer" if self.integer else "a number"
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.gt else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"<= {self.hi:g}")
        out = f"{kind} {' and '.join(parts)}".strip()
        if self.extra:
            out += " (or " + ", ".join(f"{x:g}" for x in self.extra) + ")"
        return out + (" or null" if self.none_ok else "")

    def ok(self, value: Any) -> bool:
        if value is None:
            return self.none_ok
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value) or (self.integer and not float(value).is_integer()):
            return False
        if value in self.extra:
            return True
        if self.lo is not None and (value <= self.lo if self.gt else value < self.lo):
            return False
        return self.hi is None or value <= self.hi


#: most environment steps held in memory at once (rollout buffer, replay buffer)
MAX_BUFFER_STEPS = 10_000_000
#: numeric hyperparameters: their allowed values (schedules: the initial value)
BOUNDS: dict[str, Bound] = {
    "n_timesteps": Bound(1, 1e12, integer=True),
    "n_envs": Bound(1, 1024, integer=True),
    "gamma": Bound(0, 1),
    "gae_lambda": Bound(0, 1),
    "learning_rate": Bound(0, 10, gt=True),
    "clip_range": Bound(0, 10, gt=True),
    "clip_range_vf": Bound(0, 10, gt=True, none_ok=True),
    "n_steps": Bound(1, MAX_BUFFER_STEPS, integer=True),
    "batch_size": Bound(1, MAX_BUFFER_STEPS, integer=True),
    "n_epochs": Bound(1, 10_000, integer=True),
    "ent_coef": Bound(0, 1e3),
    "vf_coef": Bound(0, 1e3),
    "max_grad_norm": Bound(0, 1e6, gt=True),
    "target_kl": Bound(0, 1e3, gt=True, none_ok=True),
    "rms_prop_eps": Bound(0, 1, gt=True),
    "buffer_size": Bound(1, MAX_BUFFER_STEPS, integer=True),
    "learning_starts": Bound(0, 1e12, integer=True),
    "tau": Bound(0, 1),
    "train_freq": Bound(1, 1e9, integer=True),
    "gradient_steps": Bound(1, 1e6, integer=True, extra=(-1,)),
    "target_update_interval": Bound(1, 1e12, integer=True),
    "exploration_fraction": Bound(0, 1),
    "exploration_initial_eps": Bound(0, 1),
    "exploration_final_eps": Bound(0, 1),
    "sde_sample_freq": Bound(-1, 1e9, integer=True),
    "stats_window_size": Bound(1, 1e6, integer=True),
}
#: widest hidden layer and most hidden layers of ``policy_kwargs: net_arch``
MAX_LAYER_WIDTH = 8192
MAX_LAYERS = 32
#: most weights between hidden layers of one network (pi, vf or qf)
MAX_HIDDEN_WEIGHTS = 20_000_000
#: VecNormalize arguments (``normalize: dict(...)``)
NORMALIZE_BOUNDS: dict[str, Bound] = {
    "clip_obs": Bound(0, 1e6, gt=True),
    "clip_reward": Bound(0, 1e6, gt=True),
    "gamma": Bound(0, 1),
    "epsilon": Bound(0, 1, gt=True),
}


@dataclass
class Hyperparams:
    """Validated hyperparameters of one run.

    ``raw`` is the mapping as written (what ``config.yml`` stores); ``model_kwargs`` go to the
    algorithm's constructor (``policy`` included).
    """

    algo: str
    raw: dict[str, Any]
    n_timesteps: int
    n_envs: int
    normalize: dict[str, Any] | None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    source: str = "hyperparameters"


def default_conf_file(algo: str) -> Path:
    """``agents/<algo>.yml``."""
    return AGENTS_DIR / f"{canonical_algo(algo)}.yml"


def read_hyperparams(
    algo: str, conf_file: str | os.PathLike | None = None, env_id: str = ENV_ID
) -> tuple[dict[str, Any], str]:
    """The raw hyperparameters of ``env_id`` in ``conf_file`` (default ``agents/<algo>.yml``).

    Returns the mapping and a label naming the file for error messages.
    """
    path = Path(conf_file) if conf_file is not None else default_conf_file(algo)
    where = display(path)
    if not path.is_file():
        raise HyperparamsError(f"{where}: no such hyperparameter file")
    data = read_yaml(path, HyperparamsError, where)
    if not isinstance(data, dict) or not data:
        raise HyperparamsError(f"{where}: expected a mapping of env id -> hyperparameters")
    if env_id not in data:
        have = ", ".join(map(str, data)) or "none"
        raise HyperparamsError(f"{where}: no hyperparameters for {env_id} (keys: {have})")
    hp = data[env_id]
    if not isinstance(hp, dict):
        raise HyperparamsError(f"{where}: {env_id}: expected a mapping, got {short(hp)}")
    return copy.deepcopy(hp), f"{where}: {env_id}"


def load_hyperparams(
    algo: str,
    conf_file: str | os.PathLike | Mapping[str, Any] | None = None,
    updates: dict[str, Any] | None = None,
) -> Hyperparams:
    """Read and validate the hyperparameters of ``algo`` (``updates`` override file values).

    ``conf_file``: a Zoo file (default ``agents/<algo>.yml``), or one env's hyperparameters as
    a mapping (a run's saved ``config.yml``).
    """
    if isinstance(conf_file, Mapping):
        raw, where = copy.deepcopy(dict(conf_file)), "saved config.yml"
    else:
        raw, where = read_hyperparams(algo, conf_file)
    raw.update(updates or {})
    return preprocess(raw, algo, where, overridden=set(updates or ()))


def preprocess(
    raw: dict[str, Any],
    algo: str,
    where: str = "hyperparameters",
    overridden: set[str] | frozenset[str] = frozenset(),
) -> Hyperparams:
    """Validate ``raw`` for ``algo`` and build the constructor arguments (Zoo semantics).

    ``overridden``: keys that came from ``-params`` (their errors say so).
    """
    algo = canonical_algo(algo)
    cls = algo_class(algo)
    if not isinstance(raw, Mapping):
        raise HyperparamsError(f"{where}: expected a mapping of hyperparameters, got {short(raw)}")
    hp = copy.deepcopy(dict(raw))
    params = _constructor_params(cls)
    for key in hp:
        if not isinstance(key, str):
            raise HyperparamsError(f"{where}: {short(key)}: expected a hyperparameter name")
    check_bounds(hp, where, overridden)

    for key in hp:
        if key in UNSUPPORTED or key == "noise_std":
            raise HyperparamsError(
                f"{where}: {key}: not supported by slimrl train (it trains on the native "
                "vector env; there are no per-env wrappers)"
            )
        if key in RESERVED:
            raise HyperparamsError(f"{where}: {key}: set by slimrl train, remove it from the file")
        if key not in ZOO_KEYS and key not in params:
            known = ", ".join(sorted(set(params) - RESERVED | ZOO_KEYS))
            raise HyperparamsError(
                f"{where}: {key}: unknown hyperparameter for {cls.__name__} (known: {known})"
            )

    if "n_timesteps" not in hp:
        raise HyperparamsError(f"{where}: n_timesteps: missing (required)")
    n_timesteps = _positive_int(hp.pop("n_timesteps"), f"{where}: n_timesteps")
    n_envs = _positive_int(hp.pop("n_envs", 1), f"{where}: n_envs")
    hp.pop("monitor_kwargs", None)

    normalize = _normalize(hp.pop("normalize", False), f"{where}: normalize")
    for key, value in (normalize or {}).items():
        _check_bound(NORMALIZE_BOUNDS.get(key), value, f"{where}: normalize.{key}")
    if normalize is not None and "gamma" in hp:
        normalize.setdefault("gamma", hp["gamma"])

    env_kwargs = hp.pop("env_kwargs", None) or {}
    if isinstance(env_kwargs, str):
        env_kwargs = parse_python_kwargs(env_kwargs, f"{where}: env_kwargs")
    if not isinstance(env_kwargs, dict):
        raise HyperparamsError(f"{where}: env_kwargs: expected a mapping, got {short(env_kwargs)}")
    for key in env_kwargs:
        if key not in ENV_KWARGS:
            raise HyperparamsError(
                f"{where}: env_kwargs.{key}: unknown SlimSplit-v0 argument "
                f"(known: {', '.join(sorted(ENV_KWARGS))})"
            )
    space = env_kwargs.get("action_space", "multidiscrete")
    if space not in ("multidiscrete", "flat"):
        raise HyperparamsError(
            f"{where}: env_kwargs.action_space: expected multidiscrete or flat, got {short(space)}"
        )
    if algo == "dqn" and space != "flat":
        raise HyperparamsError(
            f"{where}: DQN needs a Discrete action space: add env_kwargs: {{action_space: flat}}"
        )

    if "policy" not in hp:
        raise HyperparamsError(f"{where}: policy: missing (e.g. MlpPolicy)")
    if not isinstance(hp["policy"], str):
        raise HyperparamsError(
            f"{where}: policy: expected a policy name, got {short(hp['policy'])}"
        )
    if isinstance(hp.get("policy_kwargs"), str):
        hp["policy_kwargs"] = parse_python_kwargs(hp["policy_kwargs"], f"{where}: policy_kwargs")
    if "policy_kwargs" in hp and not isinstance(hp["policy_kwargs"], dict):
        raise HyperparamsError(f"{where}: policy_kwargs: expected a mapping or a dict(...) string")
    if "net_arch" in hp.get("policy_kwargs", {}):
        _check_net_arch(hp["policy_kwargs"]["net_arch"], f"{where}: policy_kwargs.net_arch")
    if isinstance(hp.get("train_freq"), list):
        hp["train_freq"] = tuple(hp["train_freq"])
    for key in SCHEDULE_KEYS:
        if key in hp:
            hp[key] = _schedule(hp[key], f"{where}: {key}")
    for key, value in list(hp.items()):
        hp[key] = _coerce(key, value, params.get(key), where)

    return Hyperparams(
        algo=algo,
        raw=dict(raw),
        n_timesteps=n_timesteps,
        n_envs=n_envs,
        normalize=normalize,
        env_kwargs=env_kwargs,
        model_kwargs=hp,
        source=where,
    )


def check_bounds(hp: Mapping[str, Any], where: str, overridden: set[str] | frozenset = ()) -> None:
    """Raise :class:`HyperparamsError` (naming ``where`` and the key) for a value outside
    :data:`BOUNDS`; strings that are numbers (``1e-5``) and ``lin_<x>`` schedules included."""
    for key, value in hp.items():
        bound = BOUNDS.get(key)
        if bound is None:
            continue
        label = f"{where}: {key}" + (" (-params)" if key in overridden else "")
        if key in SCHEDULE_KEYS and isinstance(value, str):
            if not value.startswith("lin_") and isinstance(_number(value), str):
                continue  # not a schedule at all: _schedule says what is expected
            value = value.removeprefix("lin_")
        if key == "train_freq" and isinstance(value, list | tuple) and len(value) == 2:
            if value[1] not in ("step", "episode"):
                raise HyperparamsError(
                    f"{label}: expected N or [N, step|episode], got {short(value)}"
                )
            value = value[0]
        _check_bound(bound, value, label)
    n_steps, n_envs = hp.get("n_steps"), hp.get("n_envs", 1)
    if (
        BOUNDS["n_steps"].ok(_number(n_steps))
        and BOUNDS["n_envs"].ok(_number(n_envs))
        and _number(n_steps) * _number(n_envs) > MAX_BUFFER_STEPS
    ):
        raise HyperparamsError(
            f"{where}: n_steps x n_envs = {_number(n_steps) * _number(n_envs):g}: a rollout "
            f"of more than {MAX_BUFFER_STEPS:,} steps does not fit in memory"
        )


def check_run_size(hp: Hyperparams, n_envs: int, n_timesteps: int) -> None:
    """Raise :class:`HyperparamsError` when the run's env count, step count or rollout (with
    ``--n-envs`` / ``-n`` applied) is outside :data:`BOUNDS`."""
    _check_bound(BOUNDS["n_envs"], n_envs, f"{hp.source}: n_envs (or --n-envs)")
    _check_bound(BOUNDS["n_timesteps"], n_timesteps, f"{hp.source}: n_timesteps (or -n)")
    n_steps = hp.model_kwargs.get("n_steps", 0)
    if isinstance(n_steps, int) and n_steps * n_envs > MAX_BUFFER_STEPS:
        raise HyperparamsError(
            f"{hp.source}: n_steps x n_envs = {n_steps} x {n_envs}: a rollout of more than "
            f"{MAX_BUFFER_STEPS:,} steps does not fit in memory"
        )


def _check_bound(bound: Bound | None, value: Any, label: str) -> None:
    if bound is None:
        return
    number = _number(value)
    if not bound.ok(number):
        raise HyperparamsError(f"{label}: expected {bound.text()}, got {short(value)}")


def _number(value: Any) -> Any:
    """A number written as a string (``"1e-5"``: PyYAML reads it as a string) as a float."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_python_kwargs(text: str, where: str = "value") -> Any:
    """Safely evaluate a Zoo Python-valued string: literals, ``dict(...)``, ``nn.ReLU`` etc."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise HyperparamsError(f"{where}: longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
        return _eval_node(tree, where, text)
    except SyntaxError as exc:
        raise HyperparamsError(f"{where}: cannot parse {short(text)} ({exc.msg})") from None
    except (RecursionError, MemoryError):
        raise HyperparamsError(f"{where}: nested too deeply in {short(text)}") from None


def _check_net_arch(arch: Any, where: str) -> None:
    """``[64, 64]`` or ``dict(pi=[...], vf=[...])`` (``qf`` for DQN) of bounded widths."""
    layers = arch if isinstance(arch, list | tuple) else None
    if isinstance(arch, dict):
        if not arch or any(k not in ("pi", "vf", "qf") for k in arch):
            raise HyperparamsError(f"{where}: expected a list or dict(pi=[...], vf=[...])")
        for key, value in arch.items():
            _check_net_arch(value, f"{where}.{key}")
        return
    if layers is None or len(layers) > MAX_LAYERS:
        raise HyperparamsError(
            f"{where}: expected a list of at most {MAX_LAYERS} layer widths, got {short(arch)}"
        )
    weights = sum(
        a * b
        for a, b in zip(layers[:-1], layers[1:], strict=False)
        if isinstance(a, int) and isinstance(b, int)
    )
    if weights > MAX_HIDDEN_WEIGHTS:
        raise HyperparamsError(
            f"{where}: {weights:,} weights between hidden layers; at most {MAX_HIDDEN_WEIGHTS:,}"
        )
    for i, width in enumerate(layers):
        if (
            isinstance(width, bool)
            or not isinstance(width, int)
            or not 1 <= width <= MAX_LAYER_WIDTH
        ):
            raise HyperparamsError(
                f"{where}[{i}]: expected an integer from 1 to {MAX_LAYER_WIDTH}, got {short(width)}"
            )


def linear_schedule(initial_value: float):
    """The Zoo's ``lin_<x>``: ``x * progress_remaining`` (from ``x`` down to 0)."""
    from stable_baselines3.common.utils import LinearSchedule

    return LinearSchedule(float(initial_value), 0.0, 1.0)


def dump_zoo_yaml(hyperparams: dict[str, Any], env_id: str = ENV_ID) -> str:
    """A Zoo hyperparameter file text for ``{env_id: hyperparams}`` (keys sorted)."""
    body = {k: _plain(hyperparams[k]) for k in sorted(hyperparams)}
    return yaml.safe_dump({env_id: body}, sort_keys=False, default_flow_style=False)


# -- internals ------------------------------------------------------------------------------------


def _constructor_params(cls: type) -> dict[str, Any]:
    sig = inspect.signature(cls.__init__)
    return {
        name: p.default
        for name, p in sig.parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _positive_int(value: Any, where: str) -> int:
    try:
        f = float(value) if isinstance(value, str) else value
        if isinstance(f, bool) or not isinstance(f, int | float) or f < 1 or f != int(f):
            raise ValueError
        return int(f)
    except (TypeError, ValueError):
        raise HyperparamsError(
            f"{where}: expected a positive integer, got {short(value)}"
        ) from None


def _normalize(value: Any, where: str) -> dict[str, Any] | None:
    if isinstance(value, str):
        value = parse_python_kwargs(value, where)
    if value is False or value is None:
        return None
    if value is True:
        return {}
    if isinstance(value, dict):
        allowed = {"norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon"}
        for key in value:
            if key not in allowed:
                raise HyperparamsError(
                    f"{where}: {key}: unknown VecNormalize argument "
                    f"(known: {', '.join(sorted(allowed))})"
                )
        return dict(value)
    raise HyperparamsError(f"{where}: expected true, false or dict(...), got {short(value)}")


def _schedule(value: Any, where: str) -> Any:
    if isinstance(value, str):
        kind, sep, initial = value.partition("_")
        try:
            if kind != "lin" or not sep:
                raise ValueError
            x = float(initial)
        except ValueError:
            raise HyperparamsError(
                f"{where}: expected a number or lin_<initial value>, got {short(value)}"
            ) from None
        return linear_schedule(x)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HyperparamsError(
            f"{where}: expected a number or lin_<initial value>, got {short(value)}"
        )
    return float(value)


def _coerce(key: str, value: Any, default: Any, where: str) -> Any:
    """Numbers where the constructor's default is a number, bools where it is a bool.

    A number YAML read as a string (``1e-5``: PyYAML wants ``1.0e-5``) is turned into a float.
    """
    if (
        key in SCHEDULE_KEYS
        or key == "train_freq"
        or default is None
        or default is inspect.Parameter.empty
    ):
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise HyperparamsError(f"{where}: {key}: expected true or false, got {short(value)}")
        return value
    if isinstance(default, int | float):
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise HyperparamsError(f"{where}: {key}: expected a number, got {short(value)}")
        if isinstance(default, int):
            if not float(value).is_integer():
                raise HyperparamsError(f"{where}: {key}: expected an integer, got {short(value)}")
            return int(value)
    return value


_MODULES = {"nn": "torch.nn", "th": "torch", "torch": "torch"}
#: longest Python-valued string read (``policy_kwargs``, ``normalize``)
MAX_EXPRESSION_CHARS = 10_000


def _eval_node(node: ast.AST, where: str, text: str) -> Any:
    def bad(what: str) -> HyperparamsError:
        return HyperparamsError(f"{where}: {what} not allowed in {short(text)}")

    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _eval_node(node.operand, where, text)
        if not isinstance(v, int | float):
            raise bad("a sign on a non-number")
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.List | ast.Tuple):
        items = [_eval_node(e, where, text) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {
            _eval_node(k, where, text): _eval_node(v, where, text)
            for k, v in zip(node.keys, node.values, strict=True)
        }
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        if node.args or any(kw.arg is None for kw in node.keywords):
            raise bad("positional or ** arguments to dict()")
        return {kw.arg: _eval_node(kw.value, where, text) for kw in node.keywords}
    if isinstance(node, ast.Attribute):
        parts = []
        cur: ast.AST = node
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        if not isinstance(cur, ast.Name) or cur.id not in _MODULES:
            raise bad(f"the name {ast.unparse(node)!r}")
        obj: Any = importlib.import_module(_MODULES[cur.id])
        for part in reversed(parts):
            if part.startswith("_") or not hasattr(obj, part):
                raise HyperparamsError(f"{where}: {ast.unparse(node)} does not exist")
            obj = getattr(obj, part)
        if not _allowed_class(obj):
            raise bad(
                f"{ast.unparse(node)!r} (only torch.nn modules such as nn.ReLU and "
                "torch.optim optimizers)"
            )
        return obj
    raise bad(f"the expression {ast.unparse(node)!r}")


def _allowed_class(obj: Any) -> bool:
    """A torch.nn module class (activations, layers) or a torch.optim optimizer class."""
    import torch

    if not inspect.isclass(obj):
        return False
    return issubclass(obj, torch.nn.Module | torch.optim.Optimizer) and obj.__module__.startswith(
        ("torch.nn", "torch.optim")
    )


def _plain(value: Any) -> Any:
    """YAML-safe form of a hyperparameter value (classes as ``nn.Name``)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if inspect.isclass(value):
        return f"nn.{value.__name__}"
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value
