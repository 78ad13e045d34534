"""Building (and caching) the :class:`World` of a scenario: trace sets load once per process."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from slimrl.env.dynamics import World
from slimrl.errors import ScenarioError
from slimrl.scenario import Scenario
from slimrl.traces import SPLITS, TraceSet, list_trace_files, load_trace, split_files

_TRACESETS: OrderedDict[tuple, TraceSet] = OrderedDict()
_WORLDS: OrderedDict[tuple, World] = OrderedDict()
_MAX = 16


def parse_split(scenario: Scenario, split: str | None) -> tuple[str | None, str | None]:
    """``split`` -> (part, dataset): ``train``/``val``/``test`` of every dataset, ``PART:NAME`` of
    one dataset, ``holdout`` (every file of the held-out datasets), or None (every file)."""
    if split is None:
        return None, None
    part, _, name = split.partition(":")
    names = [d.name for d in scenario.traces.datasets]
    if part not in (*SPLITS, "holdout") or (name and name not in names):
        raise ScenarioError(
            f"split {split!r}: expected None, one of {', '.join(SPLITS)}, 'holdout', or "
            f"PART:DATASET with a dataset of {names}"
        )
    return part, name or None


def _dataset_files(scenario: Scenario, part: str | None, only: str | None) -> list:
    """(dataset, folder, files) of a split: held-out datasets join only test and holdout."""
    tc = scenario.traces
    out = []
    for d in tc.datasets:
        if only is not None and d.name != only:
            continue
        held = d.name in tc.holdout
        if part == "holdout" and not held:
            continue
        files = [d.path] if d.path.is_file() else list_trace_files(d.path, d.pattern)
        if part in ("train", "val"):
            if held:
                continue
            if d.path.is_dir():
                assigned = split_files(files, tc.fractions)
                files = [f for f in files if assigned[f] == part]
        elif part == "test" and not held and d.path.is_dir():
            assigned = split_files(files, tc.fractions)
            files = [f for f in files if assigned[f] == "test"]
        if files:
            out.append((d, files))
    return out


def load_traces(
    scenario: Scenario, trace_dir: str | os.PathLike | None = None, split: str | None = "train"
) -> TraceSet:
    """The scenario's traces of ``split`` (see :func:`parse_split`), or the traces of
    ``trace_dir`` (a folder or file, every trace), cached per process."""
    tc = scenario.traces
    common = {"scale": tc.scale, "resolution_ms": tc.resolution_ms, "column": tc.column}
    if trace_dir is not None:
        path = Path(trace_dir).expanduser().resolve()
        pattern = tc.pattern if tc.path is not None else "*"
        if path.is_dir() and not list_trace_files(path, pattern):
            pattern = "*"
        key: tuple = ("dir", str(path), pattern, *common.values())
        ts = _TRACESETS.get(key)
        if ts is None:
            ts = TraceSet.from_path(path, pattern=pattern, **common)
            _put(_TRACESETS, key, ts)
        return ts
    part, only = parse_split(scenario, split)
    key = ("scenario", tc, split)
    ts = _TRACESETS.get(key)
    if ts is not None:
        return ts
    chosen = _dataset_files(scenario, part, only)
    if not chosen:
        raise ScenarioError(f"{scenario.name}: no trace files in split {split!r}")
    if tc.sets is None:  # one folder: names relative to it, as before
        ((d, files),) = chosen
        ts = TraceSet.from_path(d.path, pattern=d.pattern, split=part if part in SPLITS else None,
                                fractions=tc.fractions, **common)  # fmt: skip
    else:
        ts = TraceSet.concat(
            [(d.name, _load(d, files, common)) for d, files in chosen], split=split
        )
    _put(_TRACESETS, key, ts)
    return ts


def _load(d: Any, files: list, common: dict) -> TraceSet:
    root = d.path if d.path.is_dir() else d.path.parent
    traces = [
        load_trace(
            f, common["resolution_ms"], common["column"], name=f.relative_to(root).as_posix()
        ).scaled(common["scale"])
        for f in files
    ]
    return TraceSet(traces, files, root=root)


def build_world(
    scenario: Scenario, trace_dir: str | os.PathLike | None = None, split: str | None = "train"
) -> World:
    """The :class:`World` of a scenario and trace split (shared by envs of the same process)."""
    key: tuple[Any, ...] = (scenario, str(trace_dir) if trace_dir is not None else None, split)
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
