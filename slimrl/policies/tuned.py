"""``tuned-threshold``: rate-threshold with its window and margin grid-searched per scenario.

The search itself (``slimrl search-threshold``, :func:`slimrl.evaluate.search.search_threshold`)
replays the scenario's training split; its result is a JSON file keyed by the scenario's digest
(:func:`slimrl.scenario.scenario_digest`). This module only finds saved results:
the user cache (``$XDG_CACHE_HOME/slimrl/tuned/`` or ``~/.cache/slimrl/tuned/``, where the
command saves by default), then the shipped results ``envs/tuned/*.json``. With no match (e.g.
``--set`` overrides change the digest) the policy runs the search it is given (``ctx.search``)
and caches the result, or, given none, says which command to run.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from slimrl.errors import PolicyError
from slimrl.io import write_text
from slimrl.paths import ENVS_DIR
from slimrl.policies.base import PolicyContext, register_policy, world_of
from slimrl.policies.heuristics import RateThreshold
from slimrl.scenario import Scenario, scenario_digest

FORMAT = "slimrl-tuned-threshold"
DEFAULT_WINDOWS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16)
DEFAULT_MARGINS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
DEFAULT_SEARCH_EPISODES = 32
SHIPPED_DIR = ENVS_DIR / "tuned"

#: ``search(scenario) -> result record`` (see :func:`slimrl.evaluate.search.search_threshold`)
Search = Callable[[Scenario], dict[str, Any]]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/slimrl/tuned`` (default ``~/.cache/slimrl/tuned``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "slimrl" / "tuned"


def cache_path(name: str, digest: str) -> Path:
    return cache_dir() / f"{name}-{digest[:16]}.json"


def save_result(result: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a search result atomically; returns the path."""
    path = Path(path)
    write_text(path, json.dumps(result, indent=2) + "\n")
    return path


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = isinstance(data, dict) and data.get("format") == FORMAT
    return data if ok and isinstance(data.get("chosen"), dict) else None


def find_result(digest: str) -> tuple[dict[str, Any], Path] | None:
    """A saved result for this digest: the user cache first, then ``envs/tuned``."""
    cands = sorted(cache_dir().glob(f"*-{digest[:16]}.json")) if cache_dir().is_dir() else []
    if SHIPPED_DIR.is_dir():
        cands += sorted(SHIPPED_DIR.glob("*.json"))
    for p in cands:
        data = _read(p)
        if data is not None and data.get("scenario_hash") == digest:
            return data, p
    return None


def tuned_params(
    scenario: Scenario,
    *,
    search: Search | None = None,
    notice: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``{"window", "margin", "source"}``: saved, or found by ``search`` now and cached."""
    digest = scenario_digest(scenario)
    found = find_result(digest)
    if found is not None:
        data, path = found
        return {**_chosen(data), "source": str(path)}
    if search is None:
        raise PolicyError(
            f"tuned-threshold: no saved search for scenario {scenario.name!r} (digest "
            f"{digest[:12]}); run `slimrl search-threshold --env {scenario.name}`"
        )
    path = cache_path(scenario.name, digest)
    say = notice or (lambda msg: print(msg, file=sys.stderr))
    say(
        f"tuned-threshold: no saved search for scenario {scenario.name!r} (digest "
        f"{digest[:12]}); searching its training split now, cached in {path}"
    )
    result = search(scenario)
    save_result(result, path)
    return {**_chosen(result), "source": str(path)}


def _chosen(data: Mapping[str, Any]) -> dict[str, Any]:
    c = data["chosen"]
    return {"window": int(c["window"]), "margin": float(c["margin"])}


@register_policy(
    "tuned-threshold", help="rate-threshold with window and margin searched on the train split"
)
def _tuned_threshold(arg: str, ctx: PolicyContext) -> RateThreshold:
    p = tuned_params(world_of(ctx.env).scenario, search=ctx.search, notice=ctx.notice)
    pol = RateThreshold(ctx.table, p["window"], p["margin"], name="tuned-threshold")
    pol.params = p
    return pol
