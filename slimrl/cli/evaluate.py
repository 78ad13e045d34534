"""``slimrl evaluate``: compare policies on the same frames of a trace split or folder."""

from __future__ import annotations

import argparse

from slimrl.cli import add_scenario_arguments, add_trust_pickle_argument
from slimrl.errors import PolicyError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scenario_arguments(parser)
    parser.add_argument(
        "--traces",
        default="test",
        metavar="SPLIT_OR_DIR",
        help="a split of the scenario's traces (train, val, test, holdout, or PART:DATASET "
        "such as test:oboe), or a folder of trace files (each replayed once, start to end) "
        "(default: test)",
    )
    parser.add_argument(
        "--policies",
        nargs="+",
        metavar="NAME_OR_PATH",
        default=["paper-ewma", "tuned-threshold", "tuned-mpc", "random"],
        help="registered policies (static:K,B random paper-ewma rate-threshold tuned-threshold "
        "mpc tuned-mpc oracle optimal), training run folders or exported bundle folders; "
        "optimal, oracle and the best static mode are always added as references",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="NAME",
        help="the policy every row is compared with, paired (default: the best heuristic)",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (replaced atomically)"
    )
    parser.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="episodes with random start offsets (default: 32 on a split, one "
        "full replay per trace on a folder)",
    )
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument(
        "--randomize",
        action="store_true",
        help="apply the scenario's domain randomisation (default: its fixed values)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the policies x episodes (default 1: this process)",
    )
    parser.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run the shares on a Ray cluster instead: 'auto' or HOST:PORT of its head "
        "(pip install 'slimrl[ray]')",
    )
    parser.add_argument(
        "--num-threads",
        type=int,
        default=1,
        help="torch threads of each process (default 1: a batched forward pass gains little "
        "from more)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_trust_pickle_argument(parser)


def run(args: argparse.Namespace) -> int:
    from slimrl.evaluate import print_summary, run_evaluation
    from slimrl.scenario import parse_set_args

    overrides = parse_set_args(args.set)
    if args.episodes is not None and args.episodes < 1:
        raise PolicyError(f"--episodes: expected an integer >= 1, got {args.episodes}")
    if args.jobs < 1:
        raise PolicyError(f"--jobs: expected an integer >= 1, got {args.jobs}")
    df = run_evaluation(
        args.env,
        args.traces,
        args.policies,
        args.out,
        episodes=args.episodes,
        seed=args.seed,
        overrides=overrides,
        progress=not args.no_progress,
        plots=not args.no_plots,
        baseline=args.baseline,
        randomize=args.randomize,
        jobs=args.jobs,
        ray=args.ray,
        num_threads=args.num_threads,
    )
    print_summary(df, title=f"{args.env} on {args.traces} (seed {args.seed})")
    print(f"wrote {args.out}")
    return 0
