"""Find and read the pieces of a training run in the RL Baselines3 Zoo layout.

::

    RUN_DIR/<env id>.zip            final model
    RUN_DIR/best_model.zip          best model of the evaluation callback (optional)
    RUN_DIR/<env id>/config.yml     hyperparameters (normalize, policy, policy_kwargs, ...)
    RUN_DIR/<env id>/args.yml       command-line arguments (algo, env, env_kwargs, seed, ...)
    RUN_DIR/<env id>/vecnormalize.pkl  VecNormalize statistics (when normalize is on)
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slimrl.errors import BundleError


def algo_class_name(name: str) -> str:
    """``"ppo_mask"`` / ``"maskable_ppo"`` / ``"PPO"`` ... -> the class name (``"MaskablePPO"``);
    names the training room does not know are returned as given."""
    from slimrl.train.hyperparams import ALGOS, HyperparamsError, canonical_algo

    try:
        return ALGOS[canonical_algo(name)][1]
    except HyperparamsError:
        return name


class _ZooLoader(yaml.SafeLoader):
    """Safe YAML loader that reads the python tags rl-zoo writes (OrderedDict, tuple) as data."""


def _ordered_dict(loader: yaml.Loader, node: yaml.Node) -> dict:
    (pairs,) = loader.construct_sequence(node, deep=True) or ([],)
    return {k: v for k, v in pairs}


def _python_object(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
    if suffix.endswith("collections.OrderedDict"):
        return _ordered_dict(loader, node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)


_ZooLoader.add_multi_constructor("tag:yaml.org,2002:python/", _python_object)


def read_zoo_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """An rl-zoo ``config.yml`` / ``args.yml`` as a plain dict ({} if the file is empty)."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_ZooLoader)  # noqa: S506 (safe subclass)
    except (OSError, yaml.YAMLError) as exc:
        raise BundleError(f"{path}: cannot read ({exc})") from exc
    if data is None:
        return {}
    if isinstance(data, list):  # an OrderedDict dumped without its tag
        data = dict(data)
    if not isinstance(data, dict):
        raise BundleError(f"{path}: expected a mapping")
    return data


def parse_maybe_literal(value: Any) -> Any:
    """rl-zoo stores some values as Python source strings (``"dict(norm_obs=True)"``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("dict(") and text.endswith(")"):
        tree = ast.parse(text, mode="eval").body
        return {kw.arg: ast.literal_eval(kw.value) for kw in tree.keywords}
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return value


@dataclass
class RunFiles:
    """The files of one run; ``config`` and ``args`` are the parsed YAML (empty when absent)."""

    run_dir: Path
    model: Path
    vecnormalize: Path | None
    config: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)
    params_dir: Path | None = None

    @property
    def algo(self) -> str | None:
        """The SB3 class name of the run's algorithm (``args.yml``), None if not recorded."""
        name = self.args.get("algo")
        return None if not name else algo_class_name(str(name))

    @property
    def env_kwargs(self) -> dict[str, Any]:
        kwargs = parse_maybe_literal(self.args.get("env_kwargs")) or {}
        extra = parse_maybe_literal(self.config.get("env_kwargs")) or {}
        return {**extra, **kwargs}

    @property
    def normalize(self) -> dict[str, Any] | None:
        """VecNormalize kwargs the run used (None when it did not normalise)."""
        norm = parse_maybe_literal(self.config.get("normalize", False))
        if norm is True:
            return {}
        if isinstance(norm, dict):
            return norm
        return None


def find_run(run_dir: str | os.PathLike, which: str = "final") -> RunFiles:
    """Locate the model (``which``: ``"final"`` or ``"best"``) and its side files in ``run_dir``.

    ``run_dir`` may also be a model ``.zip`` itself (then no config, args or statistics).
    """
    run_dir = Path(run_dir)
    if run_dir.is_file() and run_dir.suffix == ".zip":
        vec = run_dir.parent / "vecnormalize.pkl"
        return RunFiles(run_dir.parent, run_dir, vec if vec.is_file() else None)
    if not run_dir.is_dir():
        raise BundleError(f"{run_dir}: no such run folder or model file")
    zips = sorted(p for p in run_dir.glob("*.zip") if p.is_file())
    # the Zoo's CheckpointCallback saves rl_model_<steps>_steps.zip next to the final model
    finals = [p for p in zips if p.name != "best_model.zip" and not p.name.startswith("rl_model_")]
    best = run_dir / "best_model.zip"
    if which == "best":
        if not best.is_file():
            raise BundleError(f"{run_dir}: no best_model.zip (trained without evaluation?)")
        model = best
    elif which == "final":
        if len(finals) > 1:
            names = ", ".join(p.name for p in finals)
            raise BundleError(f"{run_dir}: several final models ({names}); pass one .zip instead")
        if finals:
            model = finals[0]
        elif best.is_file():
            model = best
        else:
            raise BundleError(f"{run_dir}: no model .zip (expected <env id>.zip or best_model.zip)")
    else:
        raise BundleError(f"unknown model choice {which!r}; expected 'final' or 'best'")

    params = [d for d in run_dir.iterdir() if d.is_dir() and (d / "config.yml").is_file()]
    stem_dir = run_dir / finals[0].stem if finals else None
    params_dir = (
        stem_dir
        if stem_dir is not None and stem_dir in params
        else (params[0] if len(params) == 1 else None)
    )
    files = RunFiles(run_dir, model, None, params_dir=params_dir)
    if params_dir is not None:
        files.config = read_zoo_yaml(params_dir / "config.yml")
        if (params_dir / "args.yml").is_file():
            files.args = read_zoo_yaml(params_dir / "args.yml")
        vec = params_dir / "vecnormalize.pkl"
        files.vecnormalize = vec if vec.is_file() else None
    return files
