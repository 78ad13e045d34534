"""The layout of a training run folder (the RL Baselines3 Zoo's, plus slimrl's own files).

::

    logs/<algo>/SlimSplit-v0_<N>/         (the Zoo's name; the scenario is in args.yml)
        SlimSplit-v0.zip                final model
        best_model.zip                  best model on the validation split
        evaluations.npz                 validation rewards (SB3 EvalCallback format)
        checkpoints/rl_model_<n>_steps.zip          checkpoint (taken between rollouts)
        checkpoints/rl_model_vecnormalize_<n>_steps.npz   its VecNormalize statistics
        checkpoints/rl_model_state_<n>_steps.npz    its training state (exact --resume)
        SlimSplit-v0/config.yml         hyperparameters as read (Zoo format)
        SlimSplit-v0/args.yml           run arguments (algo, env, env_kwargs, seed, ...)
        SlimSplit-v0/vecnormalize.npz   VecNormalize statistics (when normalize is on)
        SlimSplit-v0/train_state.npz    training state of the final model (exact --resume)
        command.txt                     the command line
        scenario.yml                    the scenario as trained (resolved)
        train_time.yml                  wall time per training session
        0.monitor.csv                   training episodes (SB3 Monitor format; 1.monitor.csv...)
        progress.csv, tb/               training log and TensorBoard events
        eval_val/                       final comparison with the heuristics and the oracle
        .slimrl-train.lock              held (flock) by the ``slimrl train`` writing the folder

Runs written by older versions of slimrl hold ``vecnormalize.pkl`` (a pickle) instead of the
``.npz`` files and no training state: their statistics are read only when trusted
(``--trust-pickle``) or once converted (``slimrl runs convert RUN_DIR``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ENV_ID = "SlimSplit-v0"
MODEL_FILE = f"{ENV_ID}.zip"
BEST_MODEL_FILE = "best_model.zip"
PARAMS_DIR = ENV_ID
CONFIG_FILE = "config.yml"
ARGS_FILE = "args.yml"
VECNORMALIZE_FILE = "vecnormalize.npz"
#: the pickle older runs hold instead (read only when trusted, or converted)
LEGACY_VECNORMALIZE_FILE = "vecnormalize.pkl"
TRAIN_STATE_FILE = "train_state.npz"
LOCK_FILE = ".slimrl-train.lock"
SCENARIO_FILE = "scenario.yml"
COMMAND_FILE = "command.txt"
TRAIN_TIME_FILE = "train_time.yml"
#: the model card of a run, reference or bundle folder
CARD_FILE = "README.md"
EVALUATIONS_FILE = "evaluations.npz"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_PREFIX = "rl_model"


def checkpoint_model(steps: int) -> str:
    """``rl_model_<steps>_steps.zip``."""
    return f"{CHECKPOINT_PREFIX}_{int(steps)}_steps.zip"


def checkpoint_stats(steps: int, legacy: bool = False) -> str:
    """``rl_model_vecnormalize_<steps>_steps.npz`` (``legacy``: the old ``.pkl``)."""
    return f"{CHECKPOINT_PREFIX}_vecnormalize_{int(steps)}_steps.{'pkl' if legacy else 'npz'}"


def checkpoint_state(steps: int) -> str:
    """``rl_model_state_<steps>_steps.npz``."""
    return f"{CHECKPOINT_PREFIX}_state_{int(steps)}_steps.npz"


def checkpoint_steps(name: str) -> int | None:
    """The step count of a checkpoint model file name (None for other names)."""
    m = re.fullmatch(rf"{CHECKPOINT_PREFIX}_(\d+)_steps\.zip", name)
    return int(m.group(1)) if m else None


def next_run_dir(log_folder: str | os.PathLike, algo: str, name: str) -> Path:
    """``<log_folder>/<algo>/<name>_<N>`` with N one more than the highest existing (the Zoo's)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "scenario"
    base = Path(log_folder) / algo
    ids = [0]
    if base.is_dir():
        pat = re.compile(rf"^{re.escape(safe)}_(\d+)$")
        ids += [int(m.group(1)) for d in base.iterdir() if (m := pat.match(d.name))]
    return base / f"{safe}_{max(ids) + 1}"
