"""Which saved model ``slimrl train --resume`` continues from, and loading it.

The candidates are every checkpoint and the final model, newest first by step count (a tie goes
to the one with a training state). Each is checked before use: the zip is complete (every CRC),
its training state belongs to it (sha256) and its statistics read. A candidate that fails is
skipped with a :class:`ResumeWarning` naming the file and why, and the previous one is tried; a
folder with no usable candidate is a :class:`RunError` listing the reasons.

A candidate with a training state resumes bit for bit (:mod:`slimrl.runs.state`); one without
(a run saved by an older slimrl) resumes with reseeded envs and a warning. Pickled statistics of
older runs are read only when trusted (see :mod:`slimrl.runs.stats`); a refusal stops the resume
rather than falling back.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimrl.errors import RunError
from slimrl.io import sha256_file
from slimrl.runs.algos import check_model_zip
from slimrl.runs.layout import (
    CHECKPOINTS_DIR,
    LEGACY_VECNORMALIZE_FILE,
    MODEL_FILE,
    PARAMS_DIR,
    TRAIN_STATE_FILE,
    VECNORMALIZE_FILE,
    checkpoint_state,
    checkpoint_stats,
    checkpoint_steps,
)
from slimrl.runs.state import TrainState, read_state, restore
from slimrl.runs.stats import PickleRefusedError, load_vecnormalize, restore_vecnormalize


class ResumeWarning(UserWarning):
    """A saved model skipped by ``--resume`` (damaged, or not matching its state), or a resume
    that cannot be exact."""


@dataclass
class ResumePoint:
    """A model zip the run may continue from, with what was saved beside it."""

    model: Path
    steps: int
    state: Path | None
    stats: Path | None
    #: the training state read from ``state`` once loaded (its global generators are restored
    #: by :class:`~slimrl.runs.checkpoint.CheckpointCallback` when training starts)
    train_state: TrainState | None = None

    @property
    def label(self) -> str:
        return (
            f"{self.model.parent.name}/{self.model.name}" if self.is_checkpoint else self.model.name
        )

    @property
    def is_checkpoint(self) -> bool:
        return self.model.parent.name == CHECKPOINTS_DIR


def resume_points(run_dir: str | os.PathLike) -> list[ResumePoint]:
    """Every checkpoint and the final model of ``run_dir``, newest (most steps) first."""
    run_dir = Path(run_dir)
    points = []
    ck = run_dir / CHECKPOINTS_DIR
    if ck.is_dir():
        for path in ck.iterdir():
            n = checkpoint_steps(path.name)
            if n is None or not path.is_file():
                continue
            stats = [ck / checkpoint_stats(n, legacy) for legacy in (False, True)]
            points.append(ResumePoint(path, n, _file(ck / checkpoint_state(n)), _first(stats)))
    final = run_dir / MODEL_FILE
    if final.is_file():
        params = run_dir / PARAMS_DIR
        state = _file(params / TRAIN_STATE_FILE)
        stats = _first([params / VECNORMALIZE_FILE, params / LEGACY_VECNORMALIZE_FILE])
        points.append(ResumePoint(final, _final_steps(final, state), state, stats))
    points.sort(key=lambda p: (p.steps, p.state is not None, not p.is_checkpoint), reverse=True)
    return points


def load_for_resume(
    run_dir: str | os.PathLike,
    load: Callable[[Path], Any],
    eval_env: Any = None,
    *,
    normalize: bool,
    trust_pickle: bool | None = None,
    reseed: Callable[[Any], None] | None = None,
) -> tuple[Any, ResumePoint]:
    """The model to continue ``run_dir`` from, its training state restored.

    The global random generators are not restored here but when training starts (pass
    ``point.train_state`` to :class:`~slimrl.runs.checkpoint.CheckpointCallback`).

    ``load(path)`` loads a model zip onto the training env (``algo.load(path, env=...)``);
    ``eval_env`` (if any) gets the same statistics; ``normalize``: the run normalises (its
    statistics are required); ``reseed(model)`` prepares the envs of a resume without training
    state (an older run's).
    """
    run_dir = Path(run_dir)
    points = resume_points(run_dir)
    if not points:
        raise RunError(
            f"--resume {run_dir}: no checkpoint ({CHECKPOINTS_DIR}/rl_model_*_steps.zip) and no "
            f"final model ({MODEL_FILE})"
        )
    skipped: list[str] = []
    for point in points:
        try:
            model = _load_point(point, load, eval_env, normalize, trust_pickle, reseed)
        except PickleRefusedError:
            raise
        except Exception as exc:  # a damaged file: SB3, torch and zipfile raise their own types
            reason = _reason(exc)
            skipped.append(f"{point.label}: {reason}")
            warnings.warn(
                f"--resume {run_dir}: skipping {point.label} ({point.steps:,} steps): {reason}; "
                "trying the previous checkpoint",
                ResumeWarning,
                stacklevel=2,
            )
            continue
        return model, point
    raise RunError(
        f"--resume {run_dir}: no usable checkpoint or final model ({'; '.join(skipped)})"
    )


def _load_point(
    point: ResumePoint,
    load: Callable[[Path], Any],
    eval_env: Any,
    normalize: bool,
    trust_pickle: bool | None,
    reseed: Callable[[Any], None] | None,
) -> Any:
    check_model_zip(point.model)
    state: TrainState | None = None
    vec = None
    if point.state is not None:
        state = read_state(point.state)
        if state.meta.get("model_sha256") != sha256_file(point.model):
            raise RunError(f"its training state {point.state.name} belongs to another model file")
    elif normalize:
        if point.stats is None:
            raise RunError("no VecNormalize statistics beside it")
        vec = load_vecnormalize(point.stats, trust_pickle=trust_pickle)
    model = load(point.model)
    if state is not None:
        if int(model.num_timesteps) != state.num_timesteps:
            raise RunError(
                f"the model is at {model.num_timesteps} steps, its state at {state.num_timesteps}"
            )
        restore(model, state, random_state=False)
        point.train_state = state
    else:
        warnings.warn(
            f"{point.label} has no training state (saved by an older slimrl): resuming with "
            "reseeded envs; the result will not be identical to an uninterrupted run",
            ResumeWarning,
            stacklevel=3,
        )
        train_vec = model.get_vec_normalize_env()
        if vec is not None and train_vec is not None:
            restore_vecnormalize(train_vec, vec)
        if reseed is not None:
            reseed(model)
    if eval_env is not None:
        source = model.get_vec_normalize_env()
        target = _vecnormalize_of(eval_env)
        if source is not None and target is not None:
            restore_vecnormalize(target, source)
    return model


def _vecnormalize_of(env: Any) -> Any:
    from stable_baselines3.common.vec_env import VecNormalize

    e = env
    for _ in range(16):
        if e is None or isinstance(e, VecNormalize):
            return e
        e = getattr(e, "venv", None)
    return None


def _final_steps(model: Path, state: Path | None) -> int:
    """The step count of the final model: from its state, else from the zip's ``data``."""
    if state is not None:
        try:
            return read_state(state).num_timesteps
        except RunError:
            pass
    try:
        with zipfile.ZipFile(model) as z:
            info = z.getinfo("data")
            if info.file_size > 16 << 20:
                return -1
            n = json.loads(z.read(info)).get("num_timesteps", -1)
        return int(n) if isinstance(n, int) and not isinstance(n, bool) else -1
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, AttributeError):
        return -1


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if not isinstance(exc, RunError) else text[:300]


def _file(path: Path) -> Path | None:
    return path if path.is_file() else None


def _first(paths: list[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)
