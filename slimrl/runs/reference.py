"""Slim copies of training runs, shipped as reference policies (``agents/reference/<name>/``).

A reference keeps what ``slimrl evaluate`` / ``slimrl export`` need and nothing else: the final
model, ``SlimSplit-v0/{config.yml,args.yml,vecnormalize.pkl}``, the command line, the training
time and the validation summary. No checkpoints, TensorBoard events or best model.

    python -m slimrl.runs.reference logs/ppo/SlimSplit-v0_3 ppo-default
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import yaml

from slimrl.errors import RunError, SlimrlError
from slimrl.io import atomic_dir
from slimrl.paths import AGENTS_DIR
from slimrl.runs.layout import ENV_ID, SCENARIO_FILE

REFERENCE_DIR = AGENTS_DIR / "reference"
#: files copied (relative to the run folder) when present
KEEP = (
    f"{ENV_ID}.zip",
    f"{ENV_ID}/config.yml",
    f"{ENV_ID}/args.yml",
    f"{ENV_ID}/vecnormalize.pkl",
    "command.txt",
    "train_time.yml",
    SCENARIO_FILE,
    "eval_val/summary.csv",
)
#: args.yml entries that only make sense on the machine that trained
_LOCAL_ARGS = ("log_folder", "tensorboard_log", "conf_file", "trained_agent")


def reference_dir(name: str | os.PathLike) -> Path:
    """``agents/reference/<name>`` for a bare name, else the path as given."""
    p = Path(name)
    return REFERENCE_DIR / p if len(p.parts) == 1 and not p.is_absolute() else p


def save_reference(run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Copy the slim form of ``run_dir`` into ``out_dir`` (replaced atomically)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not (run_dir / f"{ENV_ID}.zip").is_file():
        raise RunError(f"{run_dir}: no final model {ENV_ID}.zip (did the run finish?)")
    with atomic_dir(out_dir) as tmp:
        for rel in KEEP:
            src = run_dir / rel
            if src.is_file():
                dst = tmp / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        args = tmp / ENV_ID / "args.yml"
        if args.is_file():
            data = yaml.safe_load(args.read_text()) or {}
            for key in _LOCAL_ARGS:
                data.pop(key, None)
            data["source_run"] = run_dir.name
            args.write_text(yaml.safe_dump(data, sort_keys=True))
        summary = tmp / "eval_val" / "summary.csv"
        if summary.is_file():  # name the run by its reference folder, not this machine's path
            summary.write_text(
                summary.read_text().replace(str(run_dir), f"agents/reference/{out_dir.name}")
            )
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="copy a training run into its slim reference form")
    parser.add_argument("run_dir", help="training run folder (logs/<algo>/SlimSplit-v0_<N>)")
    parser.add_argument("name", help="reference name (agents/reference/NAME) or a folder path")
    args = parser.parse_args(argv)
    try:
        out = save_reference(args.run_dir, reference_dir(args.name))
    except SlimrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
