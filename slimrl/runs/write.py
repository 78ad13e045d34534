"""Writing a training run folder: its files, models, checkpoints and wall-time log.

Every model, statistics and training-state file is written atomically and durably (a temporary
name, ``fsync``, rename: see :mod:`slimrl.runs.files`), the training state last: it names the
sha256 of the model zip it belongs to, so a crash between the files is detected on resume.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from slimrl.errors import RunError
from slimrl.io import write_text
from slimrl.runs.files import save_model_file
from slimrl.runs.layout import (
    ARGS_FILE,
    CHECKPOINTS_DIR,
    COMMAND_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    PARAMS_DIR,
    SCENARIO_FILE,
    TRAIN_STATE_FILE,
    TRAIN_TIME_FILE,
    VECNORMALIZE_FILE,
    checkpoint_model,
    checkpoint_state,
    checkpoint_stats,
)
from slimrl.runs.state import TrainState, capture, write_state
from slimrl.runs.stats import save_vecnormalize
from slimrl.runs.zoo_yaml import dump_yaml
from slimrl.scenario import Scenario
from slimrl.validate import read_yaml

__all__ = [
    "append_wall_time",
    "save_checkpoint",
    "save_model",
    "save_vecnormalize",
    "write_run_files",
]


def write_run_files(
    run_dir: Path,
    config: Mapping[str, Any],
    args: Mapping[str, Any],
    command: str,
    scenario: Scenario,
    append_command: bool = False,
) -> None:
    """``config.yml``, ``args.yml``, ``command.txt`` and ``scenario.yml`` (the Zoo's plus ours).

    ``append_command`` keeps the earlier lines of ``command.txt`` (a resumed run).
    """
    params_dir = run_dir / PARAMS_DIR
    params_dir.mkdir(parents=True, exist_ok=True)
    write_text(params_dir / CONFIG_FILE, dump_yaml(config))
    write_text(params_dir / ARGS_FILE, dump_yaml(args))
    line = command
    if append_command and (run_dir / COMMAND_FILE).is_file():
        line = (run_dir / COMMAND_FILE).read_text().rstrip("\n") + "\n" + line
    write_text(run_dir / COMMAND_FILE, line + "\n")
    # in the scenario's own order: the order of edge-load states shapes the simulated load
    write_text(run_dir / SCENARIO_FILE, dump_yaml(scenario.to_dict(), sort_keys=False))


def save_model(
    model: Any, run_dir: Path, checkpoint: bool = False, state: TrainState | None = None
) -> None:
    """The final model, its VecNormalize statistics and its training state (``state``, else
    captured now: call it between rollouts); ``checkpoint`` also writes them as a checkpoint."""
    state = state if state is not None else capture(model)
    params_dir = run_dir / PARAMS_DIR
    params_dir.mkdir(parents=True, exist_ok=True)
    final = save_model_file(model, run_dir / MODEL_FILE)
    vec = model.get_vec_normalize_env()
    if vec is not None:
        save_vecnormalize(vec, params_dir / VECNORMALIZE_FILE)
    write_state(state, params_dir / TRAIN_STATE_FILE, final)
    if checkpoint:
        save_checkpoint(model, run_dir, state)


def save_checkpoint(model: Any, run_dir: Path, state: TrainState) -> Path:
    """``checkpoints/rl_model_<n>_steps.zip`` with its statistics and training state."""
    n = state.num_timesteps
    if int(model.num_timesteps) != n:
        raise RunError(f"checkpoint: the model is at {model.num_timesteps} steps, its state at {n}")
    folder = run_dir / CHECKPOINTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = save_model_file(model, folder / checkpoint_model(n))
    vec = model.get_vec_normalize_env()
    if vec is not None:
        save_vecnormalize(vec, folder / checkpoint_stats(n))
    write_state(state, folder / checkpoint_state(n), path)
    return path


def append_wall_time(run_dir: Path, wall_s: float, steps: int) -> None:
    """Add a training session's wall time to ``train_time.yml``."""
    path = run_dir / TRAIN_TIME_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        data = read_yaml(path, RunError) or {}
    if not isinstance(data, dict) or not isinstance(data.get("sessions", []), list):
        raise RunError(f"{path}: expected a mapping with a list of sessions")
    sessions = list(data.get("sessions", []))
    sessions.append({"wall_s": round(wall_s, 2), "num_timesteps": int(steps)})
    data = {"wall_s": round(sum(s["wall_s"] for s in sessions), 2), "sessions": sessions}
    write_text(path, yaml.safe_dump(data, sort_keys=False))
