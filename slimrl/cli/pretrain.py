"""``slimrl pretrain``: train the teacher and the slimmable split student on Fashion-MNIST."""

from __future__ import annotations

import argparse
import os
import shlex


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="Fashion-MNIST IDX folder (default, in order: $SLIMRL_FMNIST_DIR, the Debian "
        "package dataset-fashion-mnist in /usr/share/datasets/fashion-mnist, "
        "../shared/data/fashion-mnist; the test split also ships with slimrl)",
    )
    parser.add_argument(
        "--out", metavar="DIR", default="runs/pretrain", help="output folder (default: %(default)s)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="epochs for teacher and student")
    parser.add_argument("--teacher-epochs", type=int, default=None)
    parser.add_argument("--student-epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: 2, --quick: 1)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny run for tests: data subset, 1 epoch each"
    )
    parser.add_argument(
        "--teacher",
        metavar="PATH",
        default=None,
        help="reuse the teacher.pt of an earlier run and train only the student",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    # OpenMP threads that sleep instead of spinning while they wait: on a shared CPU, spinning
    # threads of a 2-thread run slow training 3-6x. Read when torch loads, so set it first.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rich.console import Console
    from rich.table import Table

    from slimrl.model.card import quality_checks
    from slimrl.model.data import locate
    from slimrl.model.pretrain import Recipe, pretrain

    for split in ("train", "test"):  # say where the data comes from before the long part
        print(f"Fashion-MNIST {split} split: {locate(split, args.data)}", flush=True)

    recipe = Recipe.quick(args.seed) if args.quick else Recipe(seed=args.seed)
    if args.threads is not None:
        recipe.threads = args.threads
    for name in ("teacher", "student"):
        value = getattr(args, f"{name}_epochs")
        value = args.epochs if value is None else value
        if value is not None:
            if value < 1:
                from slimrl.errors import SlimrlError

                raise SlimrlError(f"--{name}-epochs must be >= 1, got {value}")
            setattr(recipe, f"{name}_epochs", value)
    parts = ["slimrl", "pretrain", "--out", args.out, "--seed", str(args.seed)]
    if args.data:
        parts += ["--data", args.data]
    if args.quick:
        parts.append("--quick")
    for flag in ("epochs", "teacher_epochs", "student_epochs"):
        if getattr(args, flag) is not None:
            parts += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.teacher:
        parts += ["--teacher", args.teacher]
    command = " ".join(shlex.quote(p) for p in parts)
    result = pretrain(
        args.data,
        args.out,
        recipe,
        progress=not args.no_progress,
        command=command,
        teacher_path=args.teacher,
    )

    console = Console()
    table = Table(title=f"test accuracy (teacher {result.teacher_accuracy:.4f})")
    table.add_column("k")
    bits = result.model.bits_options
    for b in bits:
        table.add_column(f"{b} bits", justify="right")
    for k in result.model.ks:
        table.add_row(str(k), *(f"{result.accuracy[(k, b)]:.4f}" for b in bits))
    console.print(table)
    for name, ok, detail in quality_checks(result.model, result.model.meta):
        console.print(f"[{'green' if ok else 'red'}]{'pass' if ok else 'FAIL'}[/] {name}: {detail}")
    console.print(f"wrote {result.weights} and {result.card} in {result.wall_s:.0f} s")
    return 0
