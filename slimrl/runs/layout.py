"""The layout of a training run folder (the RL Baselines3 Zoo's, plus slimrl's own files).

::

    logs/<algo>/SlimSplit-v0_<N>/         (the Zoo's name; the scenario is in args.yml)
        SlimSplit-v0.zip                final model
        best_model.zip                  best model on the validation split
        evaluations.npz                 validation rewards (SB3 EvalCallback format)
        checkpoints/rl_model_<n>_steps.zip (+ rl_model_vecnormalize_<n>_steps.pkl)
        SlimSplit-v0/config.yml         hyperparameters as read (Zoo format)
        SlimSplit-v0/args.yml           run arguments (algo, env, env_kwargs, seed, ...)
        SlimSplit-v0/vecnormalize.pkl   VecNormalize statistics (when normalize is on)
        command.txt                     the command line
        scenario.yml                    the scenario as trained (resolved)
        train_time.yml                  wall time per training session
        0.monitor.csv                   training episodes (SB3 Monitor format; 1.monitor.csv...)
        progress.csv, tb/               training log and TensorBoard events
        eval_val/                       final comparison with the heuristics and the oracle
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
VECNORMALIZE_FILE = "vecnormalize.pkl"
SCENARIO_FILE = "scenario.yml"
COMMAND_FILE = "command.txt"
TRAIN_TIME_FILE = "train_time.yml"
EVALUATIONS_FILE = "evaluations.npz"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_PREFIX = "rl_model"


def next_run_dir(log_folder: str | os.PathLike, algo: str, name: str) -> Path:
    """``<log_folder>/<algo>/<name>_<N>`` with N one more than the highest existing (the Zoo's)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "scenario"
    base = Path(log_folder) / algo
    ids = [0]
    if base.is_dir():
        pat = re.compile(rf"^{re.escape(safe)}_(\d+)$")
        ids += [int(m.group(1)) for d in base.iterdir() if (m := pat.match(d.name))]
    return base / f"{safe}_{max(ids) + 1}"
