"""Convert an older run's pickled VecNormalize statistics to ``vecnormalize.npz``, once.

Opening a pickle runs whatever code it names, so slimrl reads run folders' statistics only as
``.npz`` (:mod:`slimrl.runs.stats`). A run written before that holds ``vecnormalize.pkl``
(and ``checkpoints/rl_model_vecnormalize_<n>_steps.pkl``): converting it unpickles each file
one last time, so do it only for runs you trust (your own)::

    slimrl runs convert logs/ppo/SlimSplit-v0_3
    python -m slimrl.runs.convert logs/ppo/SlimSplit-v0_3 --remove-pickle

The RL Baselines3 Zoo's ``enjoy`` reads only ``vecnormalize.pkl``: :func:`zoo_pickle` writes
that file from the ``.npz`` (``slimrl runs zoo RUN_DIR``); writing a pickle is harmless, and the
one the Zoo then opens is the one you made.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import sys
from pathlib import Path

from slimrl.errors import RunError, SlimrlError
from slimrl.runs.files import write_file
from slimrl.runs.layout import (
    CHECKPOINT_PREFIX,
    CHECKPOINTS_DIR,
    LEGACY_VECNORMALIZE_FILE,
    PARAMS_DIR,
    VECNORMALIZE_FILE,
    checkpoint_stats,
)
from slimrl.runs.stats import (
    load_vecnormalize,
    read_stats,
    save_vecnormalize,
    stats_arrays,
    vecnormalize_from_arrays,
)


def legacy_files(run_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(pickle, npz to write) for every pickled statistics file of the run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder")
    pairs = []
    for folder in sorted(
        {run_dir, *(p.parent for p in run_dir.glob(f"*/{LEGACY_VECNORMALIZE_FILE}"))}
    ):
        pkl = folder / LEGACY_VECNORMALIZE_FILE
        if pkl.is_file():
            pairs.append((pkl, folder / VECNORMALIZE_FILE))
    pattern = re.compile(rf"{CHECKPOINT_PREFIX}_vecnormalize_(\d+)_steps\.pkl")
    ck = run_dir / CHECKPOINTS_DIR
    if ck.is_dir():
        for pkl in sorted(ck.iterdir()):
            m = pattern.fullmatch(pkl.name)
            if m and pkl.is_file():
                pairs.append((pkl, ck / checkpoint_stats(int(m.group(1)))))
    return pairs


def convert_run(run_dir: str | os.PathLike, remove_pickle: bool = False) -> list[Path]:
    """Write ``.npz`` statistics beside every pickled one of ``run_dir`` (which you trust).

    Each ``.npz`` is read back and compared with the pickle before the pickle is removed
    (``remove_pickle``). Returns the files written; an existing ``.npz`` is left as it is.
    """
    written = []
    for pkl, npz in legacy_files(run_dir):
        if not npz.is_file():
            vec = load_vecnormalize(pkl, trust_pickle=True)
            save_vecnormalize(vec, npz)
            back, want = read_stats(npz), stats_arrays(vec)
            if any(not (back[k] == want[k]).all() for k in want):
                npz.unlink()
                raise RunError(f"{npz}: read back differently from {pkl.name}; not converted")
            written.append(npz)
        if remove_pickle:
            read_stats(npz)  # only once its replacement reads
            pkl.unlink()
    return written


def zoo_pickle(run_dir: str | os.PathLike) -> Path | None:
    """Write ``<run>/SlimSplit-v0/vecnormalize.pkl`` (the Zoo's file) from its ``.npz``.

    Returns the file written, or None for a run without normalisation statistics.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder")
    npz = run_dir / PARAMS_DIR / VECNORMALIZE_FILE
    if not npz.is_file():
        return None
    vec = vecnormalize_from_arrays(read_stats(npz))
    pkl = npz.with_name(LEGACY_VECNORMALIZE_FILE)
    return write_file(pkl, lambda f: pickle.dump(vec, f))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except SlimrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders you trust")
    parser.add_argument(
        "--remove-pickle",
        action="store_true",
        help="delete each .pkl once its .npz is written and reads back",
    )


def run(args: argparse.Namespace) -> int:
    for run_dir in args.run_dirs:
        written = convert_run(run_dir, remove_pickle=args.remove_pickle)
        what = ", ".join(str(p) for p in written) if written else "nothing to convert"
        print(f"{run_dir}: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
