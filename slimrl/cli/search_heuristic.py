"""``slimrl search-heuristic``: grid-search a tunable heuristic's parameters on a scenario.

``--heuristic rate-threshold`` tunes ``tuned-threshold``, ``--heuristic mpc`` tunes ``tuned-mpc``;
``slimrl search-threshold`` is the same command for rate-threshold.
"""

from __future__ import annotations

import argparse

from slimrl.cli import add_scenario_arguments
from slimrl.errors import PolicyError


def add_arguments(parser: argparse.ArgumentParser, heuristic: str | None = None) -> None:
    from slimrl.policies.tuned import DEFAULT_SEARCH_EPISODES, TUNABLES

    add_scenario_arguments(parser)
    parser.add_argument(
        "--heuristic",
        choices=tuple(TUNABLES),
        default=heuristic or "rate-threshold",
        help="the heuristic to tune (default: %(default)s)",
    )
    parser.add_argument(
        "--episodes",
        type=int,
        default=DEFAULT_SEARCH_EPISODES,
        help=f"training-split episodes per candidate (default {DEFAULT_SEARCH_EPISODES})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the episodes (default 0)")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="PARAM=V1,V2,...",
        help="replace one parameter's grid, e.g. --grid window=2,4,8 (repeatable)",
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

    from slimrl.evaluate.search import search_heuristic
    from slimrl.policies.tuned import TUNABLES, cache_path, save_result
    from slimrl.scenario import load_scenario, parse_set_args

    if args.episodes < 1:
        raise PolicyError(f"--episodes: expected an integer >= 1, got {args.episodes}")
    tunable = TUNABLES[args.heuristic]
    grid = dict(tunable.grid)
    for item in args.grid:
        key, _, values = item.partition("=")
        if key not in grid or not values:
            raise PolicyError(
                f"--grid {item!r}: expected PARAM=V1,V2,... with PARAM in {', '.join(grid)}"
            )
        kind = type(grid[key][0])
        try:
            grid[key] = tuple(kind(v) for v in values.split(","))
        except ValueError:
            raise PolicyError(f"--grid {item!r}: values must be {kind.__name__}s") from None
    sc = load_scenario(args.env, parse_set_args(args.set))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    n = 1
    for v in grid.values():
        n *= len(v)
    with console.status(
        f"searching {n} {args.heuristic} candidates on {sc.name}'s training split "
        f"({args.episodes} episodes each)"
    ):
        try:
            result = search_heuristic(
                sc, args.heuristic, episodes=args.episodes, seed=args.seed, grid=grid
            )
        except ValueError as exc:
            raise PolicyError(str(exc)) from None
    digest = result["scenario_digest"]
    path = save_result(result, args.out or cache_path(sc.name, args.heuristic, digest))

    names = list(grid)
    table = Table(title=f"{args.heuristic}: reward per second, {sc.name} training split")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("reward/s", justify="right")
    table.add_column("on time", justify="right")
    chosen = result["chosen"]
    top = sorted(result["candidates"], key=lambda c: -c["reward_per_s"])[:10]
    for c in top:
        best = all(c[k] == chosen["params"][k] for k in names)
        style = "bold green" if best else None
        cells = [f"{c[k]:g}" for k in names]
        table.add_row(*cells, f"{c['reward_per_s']:.4f}", f"{c['on_time_rate']:.1%}", style=style)
    console.print(table)
    params = " ".join(f"{k}={v:g}" for k, v in chosen["params"].items())
    print(
        f"chosen: {params} (reward {chosen['reward_per_s']:.4f}/s, on time "
        f"{100 * chosen['on_time_rate']:.1f} %); scenario digest {digest[:12]}; saved {path}"
    )
    return 0
