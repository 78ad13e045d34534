"""``tuned-threshold``: rate-threshold with its window and margin grid-searched per scenario.

The search (``slimrl search-threshold``) runs every (window, margin) pair of the grid as one
batched rate-threshold policy on the scenario's training split (same episodes for every pair)
and keeps the pair with the highest mean reward per frame. Its result is a JSON file keyed by
the scenario's resolved-config hash (:func:`scenario_hash`).

Lookup order when a policy named ``tuned-threshold`` is built (:func:`tuned_params`):
the user cache (``$XDG_CACHE_HOME/slimrl/tuned/`` or ``~/.cache/slimrl/tuned/``, where the
command saves by default), then the shipped results ``envs/tuned/*.json``; with no match (e.g.
``--set`` overrides change the hash) the search runs on the fly, with a one-line notice, and is
cached.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimrl.io import write_text
from slimrl.paths import ENVS_DIR, ROOT

FORMAT = "slimrl-tuned-threshold"
DEFAULT_WINDOWS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16)
DEFAULT_MARGINS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
DEFAULT_SEARCH_EPISODES = 32
SHIPPED_DIR = ENVS_DIR / "tuned"


# -- identity of a scenario -------------------------------------------------------------------
def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _portable(path: str | Path) -> str:
    p = Path(path).resolve()
    try:
        return p.relative_to(ROOT).as_posix()
    except ValueError:
        return p.as_posix()


def scenario_hash(scenario: Any) -> str:
    """sha256 of the resolved configuration, independent of where the repository lives.

    The hash covers every resolved field (defaults filled in, overrides applied) except the
    name and description; profile files count by content and the trace folder by its path
    (relative to the repository when inside it), pattern and the names and sizes of its files.
    """
    from slimrl.traces import list_trace_files

    cfg = scenario.to_dict()
    cfg.pop("name", None)
    cfg.pop("description", None)
    tr = cfg["traces"]
    root = Path(tr["path"])
    files = [root] if root.is_file() else list_trace_files(root, tr["pattern"])
    tr["files"] = [
        [f.relative_to(root).as_posix() if root.is_dir() else f.name, f.stat().st_size]
        for f in files
    ]
    tr["path"] = _portable(root)
    cfg["model"]["profile"] = _sha256_file(Path(cfg["model"]["profile"]))
    samples = getattr(scenario.model_profile, "samples_path", None)
    if samples is not None and Path(samples).is_file() and scenario.model.per_sample:
        cfg["model"]["samples"] = _sha256_file(Path(samples))
    cfg["device"]["profile"] = _sha256_file(Path(cfg["device"]["profile"]))
    text = json.dumps(cfg, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# -- the search ---------------------------------------------------------------------------------
def search_threshold(
    scenario: Any,
    *,
    overrides: Mapping[str, Any] | None = None,
    episodes: int = DEFAULT_SEARCH_EPISODES,
    seed: int = 0,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    margins: Sequence[float] = DEFAULT_MARGINS,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Grid-search rate-threshold's window and margin on the scenario's training split.

    Returns the result record (JSON-ready): hash, grid, scores (mean reward per frame, one row
    per window, one column per margin), on-time rates and the chosen parameters.
    """
    from slimrl.env.scenario import load_scenario
    from slimrl.env.vector import SlimSplitVectorEnv
    from slimrl.evaluate.runner import EpisodePlan, plan_episodes, simulate
    from slimrl.policies.base import ModeTable
    from slimrl.policies.heuristics import RateThreshold

    sc = load_scenario(scenario, overrides)
    windows = [int(w) for w in windows]
    margins = [float(m) for m in margins]
    if not windows or not margins or min(windows) < 1 or min(margins) <= 0:
        raise ValueError("search grid: windows must be >= 1 and margins > 0 (non-empty)")

    def make_env(n: int) -> SlimSplitVectorEnv:
        return SlimSplitVectorEnv(n, sc, split="train", action_space="flat")

    probe = make_env(1)
    world = probe.world
    plan = plan_episodes(world, episodes, seed)
    W, Mg, E = len(windows), len(margins), len(plan)
    C = W * Mg
    grid_w = np.repeat(np.repeat(windows, Mg), E)
    grid_m = np.repeat(np.tile(margins, W), E)
    policy = RateThreshold(ModeTable.from_world(world), grid_w, grid_m)
    big = EpisodePlan(
        seeds=plan.seeds * C,
        trace_index=plan.trace_index * C,
        start_s=plan.start_s * C,
        full_trace=False,
        episode_length=plan.episode_length,
    )
    # one policy whose rows are (candidate, episode): simulate resets it with len(big) rows
    out = simulate(make_env, [policy], big, keep_steps=False, progress=progress)
    frames = out.totals["frames"].reshape(C, E).sum(axis=1)
    reward = out.totals["reward"].reshape(C, E).sum(axis=1) / frames
    on_time = out.totals["on_time"].reshape(C, E).sum(axis=1) / frames
    best = int(np.argmax(reward))
    return {
        "format": FORMAT,
        "version": 1,
        "scenario": sc.name,
        "scenario_hash": scenario_hash(sc),
        "split": "train",
        "traces": list(world.trace_names),
        "episodes": E,
        "episode_length": plan.episode_length,
        "seed": int(seed),
        "objective": "mean reward per frame on the training split",
        "grid": {"window": windows, "margin": margins},
        "scores": np.round(reward.reshape(W, Mg), 6).tolist(),
        "on_time_rate": np.round(on_time.reshape(W, Mg), 6).tolist(),
        "chosen": {
            "window": windows[best // Mg],
            "margin": margins[best % Mg],
            "reward_mean": round(float(reward[best]), 6),
            "on_time_rate": round(float(on_time[best]), 6),
        },
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "slimrl_version": _version(),
    }


def _version() -> str:
    from slimrl import __version__

    return __version__


# -- storage ------------------------------------------------------------------------------------
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
    """A saved result for this hash: the user cache first, then ``envs/tuned``."""
    cands = sorted(cache_dir().glob(f"*-{digest[:16]}.json")) if cache_dir().is_dir() else []
    if SHIPPED_DIR.is_dir():
        cands += sorted(SHIPPED_DIR.glob("*.json"))
    for p in cands:
        data = _read(p)
        if data is not None and data.get("scenario_hash") == digest:
            return data, p
    return None


def tuned_params(
    scenario: Any,
    *,
    notice: Callable[[str], None] | None = None,
    search: bool = True,
) -> dict[str, Any]:
    """``{"window", "margin", "source"}`` for the scenario: saved, or searched now and cached."""
    from slimrl.errors import PolicyError

    digest = scenario_hash(scenario)
    found = find_result(digest)
    if found is not None:
        data, path = found
        return {**_chosen(data), "source": str(path)}
    if not search:
        raise PolicyError(
            f"tuned-threshold: no saved search for scenario {scenario.name!r} (hash "
            f"{digest[:12]}); run `slimrl search-threshold --env {scenario.name}`"
        )
    path = cache_path(scenario.name, digest)
    say = notice or (lambda msg: print(msg, file=sys.stderr))
    say(
        f"tuned-threshold: no saved search for scenario {scenario.name!r} (hash {digest[:12]}); "
        f"searching its training split now, cached in {path}"
    )
    result = search_threshold(scenario)
    save_result(result, path)
    return {**_chosen(result), "source": str(path)}


def _chosen(data: Mapping[str, Any]) -> dict[str, Any]:
    c = data["chosen"]
    return {"window": int(c["window"]), "margin": float(c["margin"])}
