"""``slimrl train``: train a Stable-Baselines3 agent on a scenario (RL Baselines3 Zoo flags).

Runs land in ``<log folder>/<algo>/SlimSplit-v0_<N>/`` in the Zoo layout (see :mod:`slimrl.runs`);
at the end the run is compared with the heuristics and the oracle on the validation split. The
flags are generated from :class:`slimrl.train.config.TrainConfig`.
"""

from __future__ import annotations

import argparse

from slimrl.cli import add_trust_pickle_argument
from slimrl.train.config import TrainConfig
from slimrl.train.config import add_arguments as _add_config_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_config_arguments(parser, TrainConfig)
    add_trust_pickle_argument(parser)  # --resume of a run made by an older slimrl


def run(args: argparse.Namespace) -> int:
    import warnings

    from slimrl.train.trainer import train

    warnings.filterwarnings("ignore", message=".*rich is experimental.*")
    cfg = TrainConfig.from_args(args)
    cfg.command = list(getattr(args, "argv", None) or [])
    train(cfg)
    return 0
