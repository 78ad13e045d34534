"""Building (and caching) the :class:`World` of a scenario: trace sets load once per process."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from slimrl.env.dynamics import World
from slimrl.errors import ScenarioError
from slimrl.scenario import Scenario
from slimrl.traces import SPLITS, TraceSet, list_trace_files

_TRACESETS: OrderedDict[tuple, TraceSet] = OrderedDict()
_WORLDS: OrderedDict[tuple, World] = OrderedDict()
_MAX = 16


def trace_source(scenario: Scenario, trace_dir: str | os.PathLike | None) -> tuple[Path, str]:
    """(folder or file, pattern) of the traces: the scenario's, or ``trace_dir`` instead.

    With ``trace_dir`` the scenario's pattern is kept when it matches a file there, else every
    trace file (``*``) is used.
    """
    if trace_dir is None:
        return scenario.traces.path, scenario.traces.pattern
    path = Path(trace_dir).expanduser().resolve()
    pattern = scenario.traces.pattern
    if path.is_dir() and not list_trace_files(path, pattern):
        pattern = "*"
    return path, pattern


def load_traces(
    scenario: Scenario, trace_dir: str | os.PathLike | None = None, split: str | None = "train"
) -> TraceSet:
    """The scenario's trace set (``split`` None for all files), cached per process."""
    if split is not None and split not in SPLITS:
        raise ScenarioError(f"split: expected None or one of {', '.join(SPLITS)}, got {split!r}")
    path, pattern = trace_source(scenario, trace_dir)
    tc = scenario.traces
    key = (str(path), pattern, split, tc.fractions, tc.scale, tc.resolution_ms, tc.column)
    ts = _TRACESETS.get(key)
    if ts is None:
        ts = TraceSet.from_path(
            path,
            pattern=pattern,
            split=split,
            fractions=tc.fractions,
            scale=tc.scale,
            resolution_ms=tc.resolution_ms,
            column=tc.column,
        )
        _put(_TRACESETS, key, ts)
    return ts


def build_world(
    scenario: Scenario, trace_dir: str | os.PathLike | None = None, split: str | None = "train"
) -> World:
    """The :class:`World` of a scenario and trace split (shared by envs of the same process)."""
    path, pattern = trace_source(scenario, trace_dir)
    key: tuple[Any, ...] = (scenario, str(path), pattern, split)
    try:
        world = _WORLDS.get(key)
    except TypeError:  # unhashable scenario: build without caching
        return World(scenario, load_traces(scenario, trace_dir, split))
    if world is None:
        world = World(scenario, load_traces(scenario, trace_dir, split))
        _put(_WORLDS, key, world)
    return world


def _put(cache: OrderedDict, key: tuple, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _MAX:
        cache.popitem(last=False)
