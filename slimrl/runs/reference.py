"""Slim copies of training runs, shipped as reference policies (``agents/reference/<name>/``).

A reference keeps what ``slimrl evaluate`` / ``slimrl export`` need and nothing else: the final
model, ``SlimSplit-v0/{config.yml,args.yml,vecnormalize.npz}``, the command line, the training
time and the validation summary. No checkpoints, training state, TensorBoard events or best
model.

    python -m slimrl.runs.reference logs/ppo/SlimSplit-v0_3 ppo-default

The copy is a slimrl output of kind ``reference`` (:func:`slimrl.io.atomic_dir`): it replaces a
folder only if slimrl wrote it as a reference. A folder without that marker (the references
shipped in ``agents/reference/`` and copies made by older versions) is replaced only when it
holds nothing but a reference's files (:data:`REPLACEABLE`: the kept files, the pickled
statistics of older runs and an exported ``bundle/``); anything else there is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import yaml

from slimrl.errors import RunError, SlimrlError
from slimrl.io import (
    DEFAULT_KIND,
    MARKER_FORMAT,
    MARKER_SUFFIX,
    atomic_dir,
    marker_path,
    output_kind,
    write_text,
)
from slimrl.paths import AGENTS_DIR
from slimrl.runs.layout import (
    CARD_FILE,
    ENV_ID,
    LEGACY_VECNORMALIZE_FILE,
    PARAMS_DIR,
    SCENARIO_FILE,
    VECNORMALIZE_FILE,
)
from slimrl.validate import read_yaml

REFERENCE_DIR = AGENTS_DIR / "reference"
#: files copied (relative to the run folder) when present
KEEP = (
    f"{ENV_ID}.zip",
    f"{ENV_ID}/config.yml",
    f"{ENV_ID}/args.yml",
    f"{PARAMS_DIR}/{VECNORMALIZE_FILE}",
    "command.txt",
    "train_time.yml",
    SCENARIO_FILE,
    "eval_val/summary.csv",
)
#: the output kind of a reference copy
KIND = "reference"
#: files an unmarked folder may hold and still be replaced by a reference copy
REPLACEABLE = frozenset(
    {
        *KEEP,
        f"{PARAMS_DIR}/{LEGACY_VECNORMALIZE_FILE}",
        "bundle/manifest.json",
        "bundle/policy.npz",
        "bundle/policy.onnx",
        CARD_FILE,
        f"bundle/{CARD_FILE}",
    }
)
#: args.yml entries that only make sense on the machine that trained
_LOCAL_ARGS = ("log_folder", "tensorboard_log", "conf_file", "trained_agent")


def reference_dir(name: str | os.PathLike) -> Path:
    """``agents/reference/<name>`` for a bare name, else the path as given."""
    p = Path(name)
    return REFERENCE_DIR / p if len(p.parts) == 1 and not p.is_absolute() else p


def save_reference(run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Copy the slim form of ``run_dir`` into ``out_dir`` (replaced atomically, see above)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not (run_dir / f"{ENV_ID}.zip").is_file():
        raise RunError(f"{run_dir}: no final model {ENV_ID}.zip (did the run finish?)")
    params = run_dir / PARAMS_DIR
    if (params / LEGACY_VECNORMALIZE_FILE).is_file() and not (params / VECNORMALIZE_FILE).is_file():
        raise RunError(
            f"{run_dir}: its statistics are a pickle ({LEGACY_VECNORMALIZE_FILE}); convert the run "
            f"once with `slimrl runs convert {run_dir}` before copying it"
        )
    adopt_reference(out_dir)
    with atomic_dir(out_dir, kind=KIND, protect=[run_dir]) as tmp:
        for rel in KEEP:
            src = run_dir / rel
            if src.is_file():
                dst = tmp / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        args = tmp / ENV_ID / "args.yml"
        if args.is_file():
            data = read_yaml(args, RunError) or {}
            if not isinstance(data, dict):
                raise RunError(f"{run_dir / ENV_ID / 'args.yml'}: expected a mapping")
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


def adopt_reference(out_dir: str | os.PathLike) -> bool:
    """Mark an unmarked folder holding only a reference's files as a reference output.

    Returns True when it did; any other folder is left alone (the copy then refuses it).
    """
    out_dir = Path(out_dir)
    try:
        st = os.lstat(out_dir)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or output_kind(out_dir) not in (None, DEFAULT_KIND):
        return False
    files = _relative_files(out_dir)
    if not files or not set(files) <= REPLACEABLE:
        return False
    entry = {"inode": st.st_ino, "entries": sorted(os.listdir(out_dir))}
    marker = {"format": MARKER_FORMAT, "kind": KIND, "folders": [entry]}
    write_text(marker_path(out_dir), json.dumps(marker) + "\n")
    return True


def _relative_files(folder: Path, limit: int = 64) -> list[str] | None:
    """Relative paths of the regular files under ``folder`` (output markers of nested slimrl
    outputs aside); None if it holds anything else (a link, a special file, another hidden
    name) or more than ``limit`` entries."""
    out: list[str] = []
    stack = [folder]
    while stack:
        d = stack.pop()
        for name in os.listdir(d):
            p = d / name
            st = os.lstat(p)
            if name.startswith(".") and name.endswith(MARKER_SUFFIX) and stat.S_ISREG(st.st_mode):
                continue
            if len(out) >= limit or name.startswith("."):
                return None
            if stat.S_ISDIR(st.st_mode):
                stack.append(p)
            elif stat.S_ISREG(st.st_mode):
                out.append(p.relative_to(folder).as_posix())
            else:
                return None
    return out


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
