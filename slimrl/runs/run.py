"""Reading a training run folder back: its model, normalisation, arguments and scenario.

``Run.open(path, which)`` accepts a run folder (the final model, or ``which="best"``) or one of
its model files (``SlimSplit-v0.zip``, ``best_model.zip``, a checkpoint), and finds the run's
``config.yml``, ``args.yml`` and VecNormalize statistics that belong to that model.
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slimrl.errors import RunError, ScenarioDriftWarning, SlimrlError
from slimrl.runs.algos import algo_class, canonical_algo, guess_algo
from slimrl.runs.layout import (
    ARGS_FILE,
    BEST_MODEL_FILE,
    CHECKPOINT_PREFIX,
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    ENV_ID,
    SCENARIO_FILE,
    VECNORMALIZE_FILE,
)
from slimrl.runs.zoo_yaml import parse_maybe_literal, read_zoo_yaml
from slimrl.scenario import Scenario, changed_fields, load_scenario, scenario_digest


@dataclass(frozen=True)
class NormStats:
    """VecNormalize observation statistics as used at prediction time."""

    mean: np.ndarray  # float64
    std: np.ndarray  # float64: sqrt(var + epsilon), as VecNormalize computes it
    clip_obs: float
    epsilon: float


@dataclass
class Run:
    """The files of one run; ``config`` and ``args`` are the parsed YAML (empty when absent)."""

    run_dir: Path
    model: Path
    vecnormalize: Path | None
    config: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)
    params_dir: Path | None = None

    # -- finding ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, which: str = "final") -> Run:
        """The run at ``path`` (a folder or one of its model ``.zip`` files).

        ``which`` picks the model of a folder: ``"final"`` (``SlimSplit-v0.zip``, else
        ``best_model.zip``) or ``"best"``.
        """
        path = Path(path)
        if path.is_file() and path.suffix == ".zip":
            return cls._of_model(path)
        if not path.is_dir():
            raise RunError(f"{path}: no such run folder or model file")
        zips = sorted(p for p in path.glob("*.zip") if p.is_file())
        finals = [
            p
            for p in zips
            if p.name != BEST_MODEL_FILE and not p.name.startswith(f"{CHECKPOINT_PREFIX}_")
        ]
        best = path / BEST_MODEL_FILE
        if which == "best":
            if not best.is_file():
                raise RunError(f"{path}: no {BEST_MODEL_FILE} (trained without evaluation?)")
            model = best
        elif which == "final":
            if len(finals) > 1:
                names = ", ".join(p.name for p in finals)
                raise RunError(f"{path}: several final models ({names}); pass one .zip instead")
            if finals:
                model = finals[0]
            elif best.is_file():
                model = best
            else:
                raise RunError(f"{path}: no model .zip (expected {ENV_ID}.zip or best_model.zip)")
        else:
            raise RunError(f"unknown model choice {which!r}; expected 'final' or 'best'")
        return cls._of_model(model)

    @classmethod
    def _of_model(cls, model: Path) -> Run:
        """The run a model file belongs to: its folder (checkpoints: the folder above)."""
        run_dir = model.parent
        checkpoint = run_dir.name == CHECKPOINTS_DIR
        if checkpoint:
            run_dir = run_dir.parent
        params = [d for d in run_dir.iterdir() if d.is_dir() and (d / CONFIG_FILE).is_file()]
        named = run_dir / ENV_ID
        params_dir = named if named in params else (params[0] if len(params) == 1 else None)
        run = cls(run_dir, model, None, params_dir=params_dir)
        if params_dir is not None:
            run.config = read_zoo_yaml(params_dir / CONFIG_FILE)
            if (params_dir / ARGS_FILE).is_file():
                run.args = read_zoo_yaml(params_dir / ARGS_FILE)
        run.vecnormalize = run._stats_for(model, checkpoint)
        return run

    def _stats_for(self, model: Path, checkpoint: bool) -> Path | None:
        """The VecNormalize statistics saved with ``model``."""
        if checkpoint:  # rl_model_<n>_steps.zip -> rl_model_vecnormalize_<n>_steps.pkl
            steps = model.stem.removeprefix(f"{CHECKPOINT_PREFIX}_")
            cand = model.parent / f"{CHECKPOINT_PREFIX}_vecnormalize_{steps}.pkl"
        elif self.params_dir is not None:
            cand = self.params_dir / VECNORMALIZE_FILE
        else:
            cand = model.parent / VECNORMALIZE_FILE
        return cand if cand.is_file() else None

    # -- what it says ----------------------------------------------------------------------------
    @property
    def algo(self) -> str:
        """The run's algorithm (``args.yml``; else read off the model file)."""
        name = self.args.get("algo")
        return canonical_algo(str(name)) if name else guess_algo(self.model)

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

    @property
    def normalizes_obs(self) -> bool:
        norm = self.normalize
        return norm is not None and norm.get("norm_obs", True) is not False

    # -- loading ---------------------------------------------------------------------------------
    def load_agent(self, algo: str | None = None, env: Any = None) -> Any:
        """The SB3 model on CPU (schedules replaced: not needed to predict)."""
        name = canonical_algo(algo) if algo else self.algo
        custom = {
            "learning_rate": 0.0,
            "lr_schedule": lambda _: 0.0,
            "clip_range": lambda _: 0.0,
            "exploration_schedule": lambda _: 0.0,
        }
        try:
            return algo_class(name).load(self.model, env=env, device="cpu", custom_objects=custom)
        except Exception as exc:
            raise RunError(f"{self.model}: cannot load as {name} ({exc})") from exc

    def load_vecnormalize(self) -> Any:
        """The run's VecNormalize (not training), or None when it did not normalise observations.

        Raises :class:`RunError` when the run normalised but its statistics are missing.
        """
        if not self.normalizes_obs:
            return None
        if self.vecnormalize is None:
            raise RunError(
                f"{self.run_dir}: the run normalised observations (normalize in "
                f"{CONFIG_FILE}) but has no VecNormalize statistics ({VECNORMALIZE_FILE}) for "
                f"{self.model.name}; cannot reproduce its inputs"
            )
        vec = load_vecnormalize(self.vecnormalize)
        vec.training = False
        return vec

    def norm_stats(self, obs_dim: int) -> NormStats | None:
        """The observation statistics the model saw (None when it saw raw observations)."""
        return norm_stats(self.load_vecnormalize(), obs_dim, str(self.vecnormalize))

    def scenario(self) -> Scenario:
        """The scenario as the run was trained (``scenario.yml``), checked for drift.

        Warns (:class:`ScenarioDriftWarning`) when the scenario file the run was named after
        now differs from the saved one, or when the profile or trace files behind it changed
        since training. Runs without ``scenario.yml`` (older ones) use the named scenario.
        """
        named = self.args.get("scenario") or self.env_kwargs.get("scenario")
        overrides = self.env_kwargs.get("overrides")
        saved = self.run_dir / SCENARIO_FILE
        if not saved.is_file():
            if named is None:
                raise RunError(f"{self.run_dir}: no {SCENARIO_FILE} and no scenario in args.yml")
            return load_scenario(str(named), overrides)
        sc = load_scenario(saved)
        digest = self.args.get("scenario_digest")
        if digest and digest != scenario_digest(sc):
            _warn(
                f"{self.run_dir}: the profile or trace files of its scenario changed since "
                "training; results may differ from the run's"
            )
        if named is not None:
            try:
                current = load_scenario(str(named), overrides)
            except SlimrlError:
                return sc
            a, b = sc.to_dict(), current.to_dict()
            diff = [d for d in changed_fields(a, b) if d not in ("name", "description")]
            if diff:
                where = current.path or named
                _warn(
                    f"{self.run_dir}: trained on scenario {named!r} as saved in {saved}; "
                    f"{where} differs now ({', '.join(diff[:8])}); using the saved one"
                )
        return sc


def _warn(msg: str) -> None:
    warnings.warn(msg, ScenarioDriftWarning, stacklevel=3)


def load_vecnormalize(path: str | os.PathLike) -> Any:
    """Unpickle a ``vecnormalize.pkl`` (VecNormalize without its venv)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            vec = pickle.load(f)  # noqa: S301 (a file of the user's own training run)
    except Exception as exc:
        raise RunError(f"{path}: cannot read VecNormalize statistics ({exc})") from exc
    if not hasattr(vec, "obs_rms"):
        raise RunError(f"{path}: not a VecNormalize pickle (no obs_rms)")
    return vec


def norm_stats(vec: Any, obs_dim: int, where: str = VECNORMALIZE_FILE) -> NormStats | None:
    """The statistics a VecNormalize applies, or None when it did not normalise observations."""
    if vec is None or not getattr(vec, "norm_obs", True):
        return None
    rms = vec.obs_rms
    if isinstance(rms, dict):
        raise RunError(f"{where}: dict observation statistics are not supported")
    mean = np.asarray(rms.mean, dtype=np.float64)
    var = np.asarray(rms.var, dtype=np.float64)
    if mean.shape != (obs_dim,) or var.shape != (obs_dim,):
        raise RunError(
            f"{where}: statistics for observations of shape {mean.shape}, the model takes "
            f"({obs_dim},); the statistics belong to another run or observation layout"
        )
    eps = float(vec.epsilon)
    return NormStats(mean, np.sqrt(var + eps), float(vec.clip_obs), eps)


def looks_like_run(path: Path) -> bool:
    """A model ``.zip`` or a folder holding one (an rl-zoo run)."""
    if path.is_file():
        return path.suffix == ".zip"
    return path.is_dir() and any(p.is_file() for p in path.glob("*.zip"))
