"""``slimrl profile``: measure a model profile (accuracy, payload, latency per mode)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="PATH",
        default=None,
        help="checkpoint (.pt) or pretrain output folder (default: the shipped weights)",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="Fashion-MNIST IDX folder (default: as pretrain)",
    )
    parser.add_argument(
        "--out",
        metavar="PROFILE.csv",
        required=True,
        help="profile CSV to write; the per-sample sidecar goes next to it",
    )
    parser.add_argument(
        "--repeats", type=int, default=200, help="timed batch-1 runs per mode (default: 200)"
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="profile only the first N test images (for tests)"
    )
    parser.add_argument(
        "--card",
        metavar="MODEL_CARD.md",
        default=None,
        help="also rewrite this model card with the measured profile",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from slimrl.model.checkpoint import load_pretrained
    from slimrl.model.data import load_fashion_mnist
    from slimrl.model.profile import measure_profile, write_profile

    model = load_pretrained(args.model)
    test = load_fashion_mnist("test", args.data)
    images, labels = test.images, test.labels
    if args.limit is not None:
        images, labels = images[: args.limit], labels[: args.limit]
    result = measure_profile(
        model, images, labels, repeats=args.repeats, progress=not args.no_progress
    )
    csv_path, npz = write_profile(result, args.out)
    if args.card:
        from slimrl.model.card import write_model_card

        write_model_card(model, args.card, profile=result.table)
    console = Console()
    console.print(result.table.to_string(index=False))
    console.print(f"wrote {csv_path} and {npz}")
    return 0
