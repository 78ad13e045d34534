"""``slimrl search-threshold``: grid-search tuned-threshold's window and margin on a scenario."""

from __future__ import annotations

import argparse

from slimrl.cli import add_scenario_arguments
from slimrl.errors import PolicyError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from slimrl.policies.tuned import DEFAULT_MARGINS, DEFAULT_SEARCH_EPISODES, DEFAULT_WINDOWS

    add_scenario_arguments(parser)
    parser.add_argument(
        "--episodes",
        type=int,
        default=DEFAULT_SEARCH_EPISODES,
        help=f"training-split episodes per candidate (default {DEFAULT_SEARCH_EPISODES})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the episodes (default 0)")
    parser.add_argument(
        "--windows",
        type=int,
        nargs="+",
        default=list(DEFAULT_WINDOWS),
        help="goodput history lengths to try",
    )
    parser.add_argument(
        "--margins",
        type=float,
        nargs="+",
        default=list(DEFAULT_MARGINS),
        help="deadline fractions to try",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="where to save the JSON result (default: the user cache, "
        "~/.cache/slimrl/tuned/, which evaluation looks up first)",
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from slimrl.evaluate.search import search_threshold
    from slimrl.policies.tuned import cache_path, save_result
    from slimrl.scenario import load_scenario, parse_set_args

    if args.episodes < 1:
        raise PolicyError(f"--episodes: expected an integer >= 1, got {args.episodes}")
    if min(args.windows) < 1 or min(args.margins) <= 0:
        raise PolicyError("--windows must be >= 1 and --margins > 0")
    sc = load_scenario(args.env, parse_set_args(args.set))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    with console.status(
        f"searching {len(args.windows)} x {len(args.margins)} parameter pairs "
        f"on {sc.name}'s training split ({args.episodes} episodes each)"
    ):
        result = search_threshold(
            sc, episodes=args.episodes, seed=args.seed, windows=args.windows, margins=args.margins
        )
    path = save_result(result, args.out or cache_path(sc.name, result["scenario_hash"]))

    table = Table(title=f"mean reward per frame, {sc.name} training split (rows: window)")
    table.add_column("window", justify="right")
    for m in result["grid"]["margin"]:
        table.add_column(f"{m:g}", justify="right")
    chosen = result["chosen"]
    for w, row in zip(result["grid"]["window"], result["scores"], strict=True):
        cells = []
        for m, v in zip(result["grid"]["margin"], row, strict=True):
            best = w == chosen["window"] and m == chosen["margin"]
            cells.append(f"[bold green]{v:.4f}[/]" if best else f"{v:.4f}")
        table.add_row(str(w), *cells)
    console.print(table)
    print(
        f"chosen: window={chosen['window']} margin={chosen['margin']:g} "
        f"(reward {chosen['reward_mean']:.4f}, on time {100 * chosen['on_time_rate']:.1f} %); "
        f"scenario hash {result['scenario_hash'][:12]}; saved {path}"
    )
    return 0
