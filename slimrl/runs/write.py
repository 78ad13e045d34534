"""Writing a training run folder: its files, models, checkpoints and wall-time log."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from slimrl.errors import RunError
from slimrl.io import write_text
from slimrl.runs.layout import (
    ARGS_FILE,
    CHECKPOINT_PREFIX,
    CHECKPOINTS_DIR,
    COMMAND_FILE,
    CONFIG_FILE,
    ENV_ID,
    MODEL_FILE,
    PARAMS_DIR,
    SCENARIO_FILE,
    TRAIN_TIME_FILE,
    VECNORMALIZE_FILE,
)
from slimrl.runs.zoo_yaml import dump_yaml
from slimrl.scenario import Scenario


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
    write_text(run_dir / SCENARIO_FILE, dump_yaml(scenario.to_dict()))


def save_model(model: Any, run_dir: Path, checkpoint: bool = False) -> None:
    """The final model and VecNormalize statistics; also a checkpoint (after an interruption)."""
    model.save(str(run_dir / ENV_ID))
    vec = model.get_vec_normalize_env()
    if vec is not None:
        vec.save(str(run_dir / PARAMS_DIR / VECNORMALIZE_FILE))
    if checkpoint:
        ck = run_dir / CHECKPOINTS_DIR
        ck.mkdir(exist_ok=True)
        model.save(str(ck / f"{CHECKPOINT_PREFIX}_{model.num_timesteps}_steps"))
        if vec is not None:
            vec.save(str(ck / f"{CHECKPOINT_PREFIX}_vecnormalize_{model.num_timesteps}_steps.pkl"))


def latest_checkpoint(run_dir: str | os.PathLike) -> tuple[Path, Path | None]:
    """The checkpoint with the most steps (else the final model) and its VecNormalize stats."""
    run_dir = Path(run_dir)
    best: tuple[int, Path] | None = None
    pattern = re.compile(rf"{CHECKPOINT_PREFIX}_(\d+)_steps\.zip")
    for path in (run_dir / CHECKPOINTS_DIR).glob(f"{CHECKPOINT_PREFIX}_*_steps.zip"):
        m = pattern.fullmatch(path.name)
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), path)
    if best is not None:
        stats = best[1].parent / f"{CHECKPOINT_PREFIX}_vecnormalize_{best[0]}_steps.pkl"
        return best[1], stats if stats.is_file() else None
    final = run_dir / MODEL_FILE
    if final.is_file():
        stats = run_dir / PARAMS_DIR / VECNORMALIZE_FILE
        return final, stats if stats.is_file() else None
    raise RunError(
        f"--resume {run_dir}: no checkpoint ({CHECKPOINTS_DIR}/{CHECKPOINT_PREFIX}_*_steps.zip) "
        f"and no final model ({MODEL_FILE})"
    )


def append_wall_time(run_dir: Path, wall_s: float, steps: int) -> None:
    """Add a training session's wall time to ``train_time.yml``."""
    path = run_dir / TRAIN_TIME_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        data = yaml.safe_load(path.read_text()) or {}
    sessions = list(data.get("sessions", []))
    sessions.append({"wall_s": round(wall_s, 2), "num_timesteps": int(steps)})
    data = {"wall_s": round(sum(s["wall_s"] for s in sessions), 2), "sessions": sessions}
    write_text(path, yaml.safe_dump(data, sort_keys=False))
