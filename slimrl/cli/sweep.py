"""``slimrl sweep GRID.yml``: train and score every cell of a grid, merge the results.

The grid file, the run and evaluation folders and ``results.csv``: :mod:`slimrl.train.sweep`.
Cells run in ``--jobs`` local processes (one torch thread each) or on a Ray cluster
(``--ray auto`` on one of its nodes, or ``--ray HOST:PORT`` of its head; ``pip install
'slimrl[ray]'``).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("grid", metavar="GRID.yml", help="the sweep file (see slimrl.train.sweep)")
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="sweep folder: runs/, evals/, cells/, aggregate/, results.csv "
        "(default: sweeps/<grid file stem>); a second run skips the cells done",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="local worker processes (default 1)"
    )
    parser.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run the cells on a Ray cluster: 'auto' or HOST:PORT of its head node",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the aggregate figures")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from slimrl.errors import SweepError
    from slimrl.train.sweep import run_sweep

    if args.jobs < 1:
        raise SweepError(f"--jobs: expected an integer >= 1, got {args.jobs}")
    out = args.out or str(Path("sweeps") / Path(args.grid).stem)
    run_sweep(args.grid, out, jobs=args.jobs, ray=args.ray, plots=not args.no_plots)
    return 0
