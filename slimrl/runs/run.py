"""Reading a training run folder back: its model, normalisation, arguments and scenario.

``Run.open(path, which)`` accepts a run folder (the final model, or ``which="best"``) or one of
its model files (``SlimSplit-v0.zip``, ``best_model.zip``, a checkpoint), and finds the run's
``config.yml``, ``args.yml`` and VecNormalize statistics that belong to that model.

The statistics are read from ``vecnormalize.npz`` (plain arrays, see :mod:`slimrl.runs.stats`);
an older run's ``vecnormalize.pkl`` only when pickles are trusted (``Run.open(...,
trust_pickle=True)`` or ``--trust-pickle``), else it is refused with a clear error.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slimrl.errors import RunError, ScenarioDriftWarning, SlimrlError
from slimrl.runs.algos import algo_class, canonical_algo, check_model_zip, guess_algo
from slimrl.runs.layout import (
    ARGS_FILE,
    BEST_MODEL_FILE,
    CHECKPOINT_PREFIX,
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    ENV_ID,
    LEGACY_VECNORMALIZE_FILE,
    SCENARIO_FILE,
    VECNORMALIZE_FILE,
    checkpoint_stats,
    checkpoint_steps,
)
from slimrl.runs.stats import load_vecnormalize, trust_pickle_default
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
    #: read a pickled ``vecnormalize.pkl`` of an older run (None: the process-wide switch)
    trust_pickle: bool | None = None

    # -- finding ---------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, path: str | os.PathLike, which: str = "final", trust_pickle: bool | None = None
    ) -> Run:
        """The run at ``path`` (a folder or one of its model ``.zip`` files).

        ``which`` picks the model of a folder: ``"final"`` (``SlimSplit-v0.zip``, else
        ``best_model.zip``) or ``"best"``. ``trust_pickle``: read an older run's pickled
        statistics (None: as :func:`slimrl.runs.stats.set_trust_pickle` says, off by default).
        """
        run = cls._open(Path(path), which)
        run.trust_pickle = trust_pickle
        return run

    @classmethod
    def _open(cls, path: Path, which: str) -> Run:
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
        """The VecNormalize statistics saved with ``model`` (``.npz``, else an old ``.pkl``)."""
        if checkpoint:  # rl_model_<n>_steps.zip -> rl_model_vecnormalize_<n>_steps.npz
            steps = checkpoint_steps(model.name)
            if steps is None:
                return None
            cands = [model.parent / checkpoint_stats(steps, legacy) for legacy in (False, True)]
        else:
            folder = self.params_dir if self.params_dir is not None else model.parent
            cands = [folder / VECNORMALIZE_FILE, folder / LEGACY_VECNORMALIZE_FILE]
        return next((c for c in cands if c.is_file()), None)

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
        check_model_zip(self.model)
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
        trust = trust_pickle_default() if self.trust_pickle is None else self.trust_pickle
        vec = load_vecnormalize(self.vecnormalize, trust_pickle=trust)
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
