"""``slimrl tune``: Optuna search over an algorithm's hyperparameters (needs the 'tune' extra).

The study is stored in SQLite under the log folder; the best hyperparameters are written as a
Zoo file for ``slimrl train --conf-file``. The flags are generated from
:class:`slimrl.train.config.TuneConfig`.
"""

from __future__ import annotations

import argparse

from slimrl.train.config import TuneConfig
from slimrl.train.config import add_arguments as _add_config_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_config_arguments(parser, TuneConfig)


def run(args: argparse.Namespace) -> int:
    from slimrl.train.tune import require_optuna, tune

    require_optuna()
    tune(TuneConfig.from_args(args))
    return 0
