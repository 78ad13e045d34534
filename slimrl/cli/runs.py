"""``slimrl runs convert RUN_DIR...``: an older run's pickled statistics as ``vecnormalize.npz``.

slimrl reads a run's VecNormalize statistics only as ``.npz`` (a pickle can run code when it is
opened). Converting unpickles the old files one last time: only for runs you trust.
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


def run(args: argparse.Namespace) -> int:
    from slimrl.runs.convert import run as convert

    return convert(args)
