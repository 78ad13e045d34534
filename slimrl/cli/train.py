"""``slimrl train``: train a Stable-Baselines3 agent on a scenario (RL Baselines3 Zoo flags).

Runs land in ``<log folder>/<algo>/<scenario>_<N>/`` in the Zoo layout (see
:mod:`slimrl.train.runner`); at the end the run is compared with the heuristics and the oracle
on the validation split.
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
    parser.add_argument(
        "-n",
        "--n-timesteps",
        type=int,
        default=-1,
        help="total training steps (default: n_timesteps of the hyperparameter file)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--eval-freq",
        type=int,
        default=10_000,
        help="validate every N steps, -1 to disable (default: 10000)",
    )
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=10,
        help="validation episodes per evaluation (default: 10)",
    )
    parser.add_argument(
        "--n-envs",
        type=int,
        default=-1,
        help="parallel envs (default: n_envs of the hyperparameter file)",
    )
    parser.add_argument(
        "--conf-file",
        "-conf",
        default=None,
        metavar="FILE",
        help="hyperparameter file, Zoo format (default: agents/<algo>.yml)",
    )
    parser.add_argument(
        "-params",
        "--hyperparams",
        nargs="+",
        default=None,
        metavar="KEY:VALUE",
        help="override hyperparameters, e.g. -params gamma:0.9 n_steps:512",
    )
    parser.add_argument("-f", "--log-folder", default="logs", help="log folder (default: logs)")
    parser.add_argument(
        "-tb",
        "--tensorboard-log",
        default="",
        metavar="DIR",
        help="TensorBoard folder (default: tb/ inside the run folder)",
    )
    parser.add_argument(
        "--save-freq",
        type=int,
        default=50_000,
        help="checkpoint every N steps, -1 to disable (default: 50000)",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue a run from its latest checkpoint, up to -n total steps",
    )
    parser.add_argument(
        "-P",
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show a progress bar (default: on)",
    )
    parser.add_argument(
        "--final-eval",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compare with the heuristics and the oracle on the validation split at the end",
    )
    parser.add_argument(
        "--final-eval-episodes",
        type=int,
        default=None,
        metavar="N",
        help="episodes of the final comparison (default: the evaluator's)",
    )
    parser.add_argument(
        "--save-reference",
        default=None,
        metavar="NAME",
        help="also copy the run's slim form to agents/reference/NAME",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--num-threads",
        type=int,
        default=1,
        help="torch threads, <= 0 for torch's default (default: 1, fastest for small MLPs)",
    )
    parser.add_argument("--verbose", type=int, default=1, help="0: quiet, 1: evaluations")


def run(args: argparse.Namespace) -> int:
    import warnings

    from slimrl.train.runner import TrainConfig, parse_hyperparams_args, train

    warnings.filterwarnings("ignore", message=".*rich is experimental.*")
    cfg = TrainConfig(
        algo=args.algo,
        env=args.env,
        n_timesteps=args.n_timesteps,
        seed=args.seed,
        eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        n_envs=args.n_envs,
        conf_file=args.conf_file,
        log_folder=args.log_folder,
        tensorboard_log=args.tensorboard_log,
        set=list(args.set or []),
        hyperparams=parse_hyperparams_args(args.hyperparams),
        save_freq=args.save_freq,
        progress=args.progress,
        verbose=args.verbose,
        device=args.device,
        num_threads=args.num_threads,
        final_eval=args.final_eval,
        final_eval_episodes=args.final_eval_episodes,
        save_reference=args.save_reference,
        resume=args.resume,
    )
    train(cfg)
    return 0
