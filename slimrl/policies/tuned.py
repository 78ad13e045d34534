"""``tuned-threshold`` and ``tuned-mpc``: heuristics with parameters grid-searched per scenario.

A :class:`Tunable` names a heuristic whose parameters may be per-row arrays (so a whole grid runs
as one batch), its grid and the name of its tuned policy. The search itself
(``slimrl search-heuristic``, :func:`slimrl.evaluate.search.search_heuristic`) replays the
scenario's training split; its result is a JSON record keyed by the scenario's digest
(:func:`slimrl.scenario.scenario_digest`) and the heuristic. This module only finds saved
results: the user cache (``$XDG_CACHE_HOME/slimrl/tuned/`` or ``~/.cache/slimrl/tuned/``, where
the command saves by default), then the shipped results ``envs/tuned/<scenario>.<heuristic>.json``.
With no match (e.g. ``--set`` overrides change the digest) the policy runs the search it is given
(``ctx.search``) and caches the result, or, given none, says which command to run.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slimrl.errors import PolicyError
from slimrl.io import write_text
from slimrl.paths import ENVS_DIR
from slimrl.policies.base import BatchPolicy, ModeTable, PolicyContext, register_policy, world_of
from slimrl.policies.heuristics import RateThreshold
from slimrl.policies.mpc import RobustMPC
from slimrl.scenario import Scenario, scenario_digest
from slimrl.validate import read_bytes

FORMAT = "slimrl-tuned-heuristic"
DEFAULT_SEARCH_EPISODES = 32
SHIPPED_DIR = ENVS_DIR / "tuned"


@dataclass(frozen=True)
class Tunable:
    """A heuristic with a parameter grid: ``make(table, **arrays)`` builds a batched policy."""

    heuristic: str
    policy: str  # name of the tuned policy
    make: Callable[..., BatchPolicy]
    grid: dict[str, tuple]


TUNABLES: dict[str, Tunable] = {
    "rate-threshold": Tunable(
        "rate-threshold",
        "tuned-threshold",
        RateThreshold,
        {
            "window": (1, 2, 3, 4, 5, 6, 8, 10, 12, 16),
            "margin": (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0),
        },
    ),
    "mpc": Tunable(
        "mpc",
        "tuned-mpc",
        RobustMPC,
        {"window": (2, 3, 5, 8, 12, 20), "margin": (0.6, 0.8, 1.0, 1.3, 1.6, 2.0)},
    ),
}

#: ``search(scenario, heuristic) -> result record`` (see slimrl.evaluate.search)
Search = Callable[[Scenario, str], dict[str, Any]]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/slimrl/tuned`` (default ``~/.cache/slimrl/tuned``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "slimrl" / "tuned"


def cache_path(name: str, heuristic: str, digest: str) -> Path:
    return cache_dir() / f"{name}.{heuristic}-{digest[:16]}.json"


def shipped_path(name: str, heuristic: str) -> Path:
    return SHIPPED_DIR / f"{name}.{heuristic}.json"


#: a tuned-parameters file is a few hundred bytes; anything far larger is not one
MAX_RESULT_BYTES = 1 << 20


def save_result(result: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a search result atomically; returns the path."""
    path = Path(path)
    write_text(path, json.dumps(result, indent=2) + "\n")
    return path


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(read_bytes(path, MAX_RESULT_BYTES, PolicyError).decode("utf-8"))
    except (PolicyError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    ok = isinstance(data, dict) and data.get("format") == FORMAT
    return data if ok and isinstance(data.get("chosen"), dict) else None


def find_result(digest: str, heuristic: str) -> tuple[dict[str, Any], Path] | None:
    """A saved result for this digest and heuristic: the user cache first, then ``envs/tuned``."""
    cands = sorted(cache_dir().glob(f"*.{heuristic}-{digest[:16]}.json"))
    if SHIPPED_DIR.is_dir():
        cands += sorted(SHIPPED_DIR.glob(f"*.{heuristic}.json"))
    for p in cands:
        data = _read(p)
        ok = data is not None and data.get("scenario_digest") == digest
        if ok and data.get("heuristic") == heuristic:
            return data, p
    return None


def tuned_params(
    scenario: Scenario,
    heuristic: str = "rate-threshold",
    *,
    search: Search | None = None,
    notice: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The chosen parameters (plus ``source``): saved, or found by ``search`` now and cached."""
    digest = scenario_digest(scenario)
    found = find_result(digest, heuristic)
    if found is not None:
        data, path = found
        return {**data["chosen"]["params"], "source": str(path)}
    if search is None:
        raise PolicyError(
            f"{TUNABLES[heuristic].policy}: no saved search for scenario {scenario.name!r} "
            f"(digest {digest[:12]}); run `slimrl search-heuristic --heuristic {heuristic} "
            f"--env {scenario.name}`"
        )
    path = cache_path(scenario.name, heuristic, digest)
    say = notice or (lambda msg: print(msg, file=sys.stderr))
    say(
        f"{TUNABLES[heuristic].policy}: no saved search for scenario {scenario.name!r} (digest "
        f"{digest[:12]}); searching its training split now, cached in {path}"
    )
    result = search(scenario, heuristic)
    save_result(result, path)
    return {**result["chosen"]["params"], "source": str(path)}


def _tuned_factory(tunable: Tunable) -> Callable[[str, PolicyContext], BatchPolicy]:
    def factory(arg: str, ctx: PolicyContext) -> BatchPolicy:
        scenario = world_of(ctx.env).scenario
        p = tuned_params(scenario, tunable.heuristic, search=ctx.search, notice=ctx.notice)
        params = {k: v for k, v in p.items() if k in tunable.grid}
        pol = tunable.make(ctx.table, **params, name=tunable.policy)
        pol.params = p
        return pol

    return factory


for _t in TUNABLES.values():
    register_policy(
        _t.policy, help=f"{_t.heuristic} with {', '.join(_t.grid)} searched on the train split"
    )(_tuned_factory(_t))


def grid_policy(table: ModeTable, tunable: Tunable, episodes: int) -> tuple[BatchPolicy, list]:
    """One batched policy whose rows are (candidate, episode), and the candidates in order."""
    names = list(tunable.grid)
    cands = [dict(zip(names, vals, strict=True)) for vals in itertools.product(
        *(tunable.grid[n] for n in names))]  # fmt: skip
    arrays = {n: np.repeat([c[n] for c in cands], episodes) for n in names}
    return tunable.make(table, **arrays), cands
