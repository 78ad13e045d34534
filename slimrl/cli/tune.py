"""``slimrl tune``: Optuna search over an algorithm's hyperparameters (needs the 'tune' extra).

The study is stored in SQLite under the log folder; the best hyperparameters are written as a
Zoo file for ``slimrl train --conf-file``.
"""

from __future__ import annotations

import argparse

from slimrl.cli import add_scenario_arguments

ALGO_CHOICES = ("ppo", "a2c", "dqn", "maskable_ppo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--algo", default="ppo", choices=ALGO_CHOICES, help="algorithm (default: ppo)"
    )
    add_scenario_arguments(parser)
    parser.add_argument("--n-trials", type=int, default=20, help="trials to run (default: 20)")
    parser.add_argument(
        "-n",
        "--n-timesteps",
        type=int,
        default=-1,
        help="training steps per trial (default: n_timesteps of the hyperparameter file)",
    )
    parser.add_argument(
        "--n-evaluations",
        type=int,
        default=5,
        help="validations per trial, reported to the pruner (default: 5)",
    )
    parser.add_argument(
        "--eval-episodes", type=int, default=10, help="episodes per validation (default: 10)"
    )
    parser.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL (default: sqlite under <log folder>/<algo>/optuna/)",
    )
    parser.add_argument(
        "--study-name",
        default=None,
        help="study name (default: <algo>-<scenario>); reused if it exists",
    )
    parser.add_argument("-f", "--log-folder", default="logs", help="log folder (default: logs)")
    parser.add_argument(
        "--conf-file",
        "-conf",
        default=None,
        metavar="FILE",
        help="base hyperparameters, Zoo format (default: agents/<algo>.yml)",
    )
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (default: 0)")
    parser.add_argument("--sampler", choices=("tpe", "random"), default="tpe")
    parser.add_argument("--pruner", choices=("median", "none"), default="median")
    parser.add_argument(
        "--n-startup-trials",
        type=int,
        default=5,
        help="random trials before TPE, and trials before pruning (default: 5)",
    )
    parser.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--num-threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")


def run(args: argparse.Namespace) -> int:
    from slimrl.train.tune import TuneConfig, require_optuna, tune

    require_optuna()
    cfg = TuneConfig(
        algo=args.algo,
        env=args.env,
        n_trials=args.n_trials,
        n_timesteps=args.n_timesteps,
        n_evaluations=args.n_evaluations,
        eval_episodes=args.eval_episodes,
        storage=args.storage,
        study_name=args.study_name,
        log_folder=args.log_folder,
        conf_file=args.conf_file,
        set=list(args.set or []),
        seed=args.seed,
        sampler=args.sampler,
        pruner=args.pruner,
        n_startup_trials=args.n_startup_trials,
        timeout=args.timeout,
        num_threads=args.num_threads,
        device=args.device,
    )
    tune(cfg)
    return 0
