"""The settings of ``slimrl train`` and ``slimrl tune``, declared once.

Each field carries its command-line flags and help; :func:`add_arguments` builds the parser from
the dataclass, :meth:`Settings.from_args` reads it back, and :func:`command_line` turns a
config into the ``slimrl`` command that reproduces it. Names and flags are the RL Baselines3 Zoo's.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from slimrl.errors import HyperparamsError
from slimrl.runs import ALGOS
from slimrl.train.hyperparams import parse_python_kwargs
from slimrl.validate import parse_yaml

#: seed of the validation episodes (the same for every run, so runs compare on equal terms)
VAL_SEED = 0
#: most validation envs stepped together
MAX_EVAL_ENVS = 16


def option(default: Any, *flags: str, help: str, **argparse_kw: Any) -> Any:
    """A settings field with its command-line flags (first long flag names it in commands)."""
    meta = {"flags": flags, "help": help, "argparse": argparse_kw}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def parse_hyperparams_args(items: Sequence[str] | None) -> dict[str, Any]:
    """Zoo ``-params key:value ...`` (values as YAML; ``policy_kwargs`` strings kept)."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = str(item).partition(":")
        if not sep or not key.strip():
            raise HyperparamsError(f"-params {item!r}: expected key:value (e.g. gamma:0.9)")
        try:
            value = parse_yaml(raw, HyperparamsError, f"-params {key}")
        except HyperparamsError:
            value = raw
        if isinstance(value, str) and value.startswith("dict("):
            parse_python_kwargs(value, f"-params {key}")  # validate early
        out[key.strip()] = value
    return out


@dataclass
class Settings:
    """What training and tuning share."""

    algo: str = option("ppo", "--algo", help="algorithm", choices=tuple(ALGOS))
    env: str = option(
        "default", "--env", help="scenario name (envs/NAME.yaml) or YAML path", metavar="SCENARIO"
    )
    set: list[str] = option(
        [],
        "--set",
        help="override a scenario field, dotted paths for nested fields (repeatable)",
        action="append",
        metavar="KEY=VALUE",
    )
    n_timesteps: int = option(
        -1,
        "-n",
        "--n-timesteps",
        help="training steps (per trial when tuning; default: n_timesteps of the file)",
        type=int,
    )
    seed: int = option(0, "--seed", help="random seed", type=int)
    eval_episodes: int = option(10, "--eval-episodes", help="episodes per validation", type=int)
    conf_file: str | None = option(
        None,
        "--conf-file",
        "-conf",
        help="hyperparameter file, Zoo format (default: agents/<algo>.yml)",
        metavar="FILE",
    )
    log_folder: str = option("logs", "-f", "--log-folder", help="log folder")
    device: str = option("cpu", "--device", help="torch device")
    num_threads: int = option(
        1,
        "--num-threads",
        help="torch threads, <= 0 for torch's default (1 is fastest for small MLPs)",
        type=int,
    )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        """The settings an argument namespace built by :func:`add_arguments` holds."""
        kwargs = {}
        for f in dataclasses.fields(cls):
            if "flags" in f.metadata and hasattr(args, f.name):
                kwargs[f.name] = getattr(args, f.name)
        if "hyperparams" in kwargs:
            kwargs["hyperparams"] = parse_hyperparams_args(kwargs["hyperparams"])
        if kwargs.get("set") is not None:
            kwargs["set"] = list(kwargs["set"])
        return cls(**kwargs)


@dataclass
class TrainConfig(Settings):
    """Arguments of ``slimrl train``. ``n_timesteps``/``n_envs`` <= 0 mean "from the
    hyperparameter file"; ``save_freq`` and ``eval_freq`` <= 0 disable checkpoints/validation."""

    eval_freq: int = option(
        10_000, "--eval-freq", help="validate every N steps, -1 to disable", type=int
    )
    n_envs: int = option(
        -1, "--n-envs", help="parallel envs (default: n_envs of the hyperparameter file)", type=int
    )
    hyperparams: dict[str, Any] = option(
        {},
        "-params",
        "--hyperparams",
        help="override hyperparameters, e.g. -params gamma:0.9 n_steps:512",
        nargs="+",
        metavar="KEY:VALUE",
    )
    tensorboard_log: str = option(
        "",
        "-tb",
        "--tensorboard-log",
        help="TensorBoard folder: the run logs to DIR/SlimSplit-v0/<algo>_<scenario>_<N> "
        "(default: tb/<that name> inside the run folder)",
        metavar="DIR",
    )
    save_freq: int = option(
        50_000, "--save-freq", help="checkpoint every N steps, -1 to disable", type=int
    )
    resume: str | None = option(
        None,
        "--resume",
        help="continue a run from its latest checkpoint, up to -n total steps",
        metavar="RUN_DIR",
    )
    progress: bool = option(
        True, "-P", "--progress", help="show a progress bar", action=argparse.BooleanOptionalAction
    )
    final_eval: bool = option(
        True,
        "--final-eval",
        help="compare with the heuristics and the oracle on the validation split at the end",
        action=argparse.BooleanOptionalAction,
    )
    final_eval_episodes: int | None = option(
        None,
        "--final-eval-episodes",
        help="episodes of the final comparison (default: the evaluator's)",
        type=int,
        metavar="N",
    )
    save_reference: str | None = option(
        None,
        "--save-reference",
        help="also copy the run's slim form to agents/reference/NAME",
        metavar="NAME",
    )
    verbose: int = option(1, "--verbose", help="0: quiet, 1: evaluations", type=int)
    #: the command line as typed (command.txt); rebuilt from the settings when empty
    command: list[str] = field(default_factory=list)


@dataclass
class TuneConfig(Settings):
    """Arguments of ``slimrl tune``."""

    n_trials: int = option(20, "--n-trials", help="trials to run", type=int)
    n_evaluations: int = option(
        5, "--n-evaluations", help="validations per trial, reported to the pruner", type=int
    )
    storage: str | None = option(
        None,
        "--storage",
        help="Optuna storage URL (default: sqlite under <log folder>/<algo>/optuna/)",
    )
    study_name: str | None = option(
        None, "--study-name", help="study name (default: <algo>-<scenario>); reused if it exists"
    )
    sampler: str = option("tpe", "--sampler", help="Optuna sampler", choices=("tpe", "random"))
    pruner: str = option("median", "--pruner", help="Optuna pruner", choices=("median", "none"))
    n_startup_trials: int = option(
        5,
        "--n-startup-trials",
        help="random trials before TPE, and trials before pruning",
        type=int,
    )
    timeout: float | None = option(
        None, "--timeout", help="stop after this many seconds", type=float
    )


def add_arguments(parser: argparse.ArgumentParser, cls: type[Settings]) -> None:
    """One argparse option per flagged field of ``cls`` (defaults and help from the field)."""
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "flags" not in meta:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kw = dict(meta["argparse"])
        help_text = meta["help"]
        if default not in (None, "", [], {}) and kw.get("action") is None:
            help_text += f" (default: {default})"
        elif isinstance(default, bool):
            help_text += f" (default: {'on' if default else 'off'})"
        parser.add_argument(*meta["flags"], dest=f.name, default=default, help=help_text, **kw)


def command_line(cfg: Settings, command: str = "train") -> list[str]:
    """The ``slimrl`` command that reproduces ``cfg`` (options that differ from defaults)."""
    default = type(cfg)()
    cmd = ["slimrl", command]
    for f in dataclasses.fields(cfg):
        if "flags" not in f.metadata:
            continue
        value, base = getattr(cfg, f.name), getattr(default, f.name)
        if value == base:
            continue
        flag = next((x for x in f.metadata["flags"] if x.startswith("--")), f.metadata["flags"][0])
        if isinstance(value, bool):
            cmd.append(flag if value else f"--no-{flag.removeprefix('--')}")
        elif f.name == "set":
            for item in value:
                cmd += [flag, item]
        elif f.name == "hyperparams":
            cmd += ["-params", *(f"{k}:{_flow(v)}" for k, v in value.items())]
        else:
            cmd += [flag, str(value)]
    return cmd


def _flow(value: Any) -> str:
    if isinstance(value, str):
        return value
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10_000)
        .strip()
        .removesuffix("...")
        .strip()
    )
