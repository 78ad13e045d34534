"""``slimrl runs convert|zoo RUN_DIR...``: move a run's statistics between ``.pkl`` and ``.npz``.

slimrl reads a run's VecNormalize statistics only as ``.npz`` (a pickle can run code when it is
opened). ``convert`` unpickles an older run's files one last time: only for runs you trust.
``zoo`` writes the ``vecnormalize.pkl`` that the RL Baselines3 Zoo's ``enjoy`` reads.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    convert = sub.add_parser(
        "convert",
        help="write vecnormalize.npz beside each vecnormalize.pkl of runs you trust",
        description="Write vecnormalize.npz beside every pickled VecNormalize file of each run "
        "folder (the pickles are opened: only for runs you trust).",
    )
    from slimrl.runs.convert import add_arguments as add_convert_arguments

    add_convert_arguments(convert)
    zoo = sub.add_parser(
        "zoo",
        help="write the Zoo's vecnormalize.pkl from vecnormalize.npz (for rl_zoo3.enjoy)",
        description="Write SlimSplit-v0/vecnormalize.pkl from vecnormalize.npz in each run "
        "folder, so the RL Baselines3 Zoo's enjoy can load the run.",
    )
    zoo.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders")


def run(args: argparse.Namespace) -> int:
    from slimrl.runs.convert import run as convert
    from slimrl.runs.convert import zoo_pickle

    if args.runs_command == "convert":
        return convert(args)
    for run_dir in args.run_dirs:
        written = zoo_pickle(run_dir)
        print(f"{run_dir}: {written or 'no VecNormalize statistics (nothing to write)'}")
    return 0
