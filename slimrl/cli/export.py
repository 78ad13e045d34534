"""``slimrl export RUN_DIR --out DIR``: a device bundle (ONNX + numpy + manifest) from a run."""

from __future__ import annotations

import argparse

from slimrl.cli import add_scenario_arguments, add_trust_pickle_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", metavar="RUN_DIR", help="training run folder (rl-zoo layout) or a model .zip"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="bundle folder to write")
    parser.add_argument(
        "--best", action="store_true", help="export best_model.zip instead of the final model"
    )
    parser.add_argument(
        "--algo",
        default=None,
        help="algorithm if the run has no args.yml (PPO, A2C, MaskablePPO, DQN)",
    )
    add_scenario_arguments(
        parser, default=None, help="scenario the run was trained on (default: from its args.yml)"
    )
    parser.add_argument(
        "--parity",
        type=int,
        default=100_000,
        metavar="N",
        help="observations drawn from the env for the parity check (0: skip)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the parity observations")
    add_trust_pickle_argument(parser)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from slimrl.env import parse_set_args
    from slimrl.export import export_run

    console = Console(stderr=True)
    with console.status(f"exporting {args.run} (parity on {args.parity:,} observations)"):
        manifest = export_run(
            args.run,
            args.out,
            which="best" if args.best else "final",
            algo=args.algo,
            scenario=args.env,
            overrides=parse_set_args(args.set) or None,
            n_parity=args.parity,
            seed=args.seed,
        )
    p = manifest.get("parity")
    console.print(
        f"[green]wrote[/] {args.out}: {manifest['algo']}, "
        f"{len(manifest['action']['table'])} modes, "
        f"{len(manifest['observation']['names'])} observations"
    )
    if p:
        console.print(
            f"parity on {p['n']:,} observations: numpy/SB3 {p['numpy_vs_sb3']:.6f}, "
            f"ONNX/SB3 {p['onnx_vs_sb3']:.6f}, ONNX/numpy {p['onnx_vs_numpy']:.6f}"
        )
    return 0
