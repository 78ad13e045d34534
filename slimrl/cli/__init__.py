"""The ``slimrl`` command. Each subcommand lives in its own module, imported only when run.

A command module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Keeping the imports
lazy keeps ``slimrl --help`` and light commands fast (torch and SB3 load only where needed).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from slimrl.errors import SlimrlError

# name -> (module, one-line help). Order is the order in `slimrl --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("slimrl.cli.train", "train a Stable-Baselines3 agent on a scenario"),
    "evaluate": ("slimrl.cli.evaluate", "compare policies on the same frames of a trace split"),
    "search-heuristic": (
        "slimrl.cli.search_heuristic",
        "grid-search a heuristic's parameters (tuned-threshold, tuned-mpc) on a training split",
    ),
    "search-threshold": (
        "slimrl.cli.search_heuristic",
        "search-heuristic --heuristic rate-threshold (tuned-threshold)",
    ),
    "tune": ("slimrl.cli.tune", "Optuna hyperparameter search (needs the 'tune' extra)"),
    "sweep": (
        "slimrl.cli.sweep",
        "a grid of scenarios x algorithms x seeds x overrides, in processes or on Ray",
    ),
    "export": ("slimrl.cli.export", "export a trained run to a device bundle (ONNX + numpy)"),
    "runs": ("slimrl.cli.runs", "manage run folders (convert an older run's pickled statistics)"),
    "traces": ("slimrl.cli.traces", "inspect and plot channel traces"),
    "pretrain": ("slimrl.cli.pretrain", "train the slimmable split model on Fashion-MNIST"),
    "profile": ("slimrl.cli.profile", "measure a model profile (accuracy, payload, latency)"),
    "edge": ("slimrl.cli.edge", "run the edge server (decoder + tail)"),
    "device": ("slimrl.cli.device", "run or compare the device loop against a real edge server"),
    "calibrate": ("slimrl.cli.calibrate", "fit a scenario (link, compute, edge) to a device log"),
}


def add_scenario_arguments(
    parser: argparse.ArgumentParser,
    *,
    default: str | None = "default",
    required: bool = False,
    help: str = "scenario name (envs/NAME.yaml) or YAML path",
) -> None:
    """``--env SCENARIO`` and repeatable ``--set KEY=VALUE`` (``args.env``, ``args.set``)."""
    suffix = "" if required or default is None else f" (default: {default})"
    parser.add_argument(
        "--env", default=default, required=required, metavar="SCENARIO", help=help + suffix
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario field, dotted paths for nested fields (repeatable)",
    )


def add_trust_pickle_argument(parser: argparse.ArgumentParser) -> None:
    """``--trust-pickle``: read older runs' pickled VecNormalize statistics in this command."""
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="read the pickled statistics (vecnormalize.pkl) of runs made by an older slimrl; "
        "opening a pickle can run code: only for runs you trust (or convert them once with "
        "`slimrl runs convert RUN_DIR`)",
    )


def _available() -> dict[str, tuple[str, str]]:
    return {name: spec for name, spec in COMMANDS.items() if importlib.util.find_spec(spec[0])}


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="slimrl", description="Learn split-inference control policies."
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = _available()
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    return parser, commands


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"slimrl {version('slimrl')}"
    except PackageNotFoundError:
        return "slimrl (not installed)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, commands = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(commands[args.command][0])
    args.argv = ["slimrl", *argv]  # the command as typed (run folders record it)
    try:
        if getattr(args, "trust_pickle", False):
            from slimrl.runs.stats import trusting_pickle

            with trusting_pickle():
                return int(module.run(args) or 0)
        return int(module.run(args) or 0)
    except SlimrlError as exc:
        print(f"slimrl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"slimrl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
