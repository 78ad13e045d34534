"""Scenario overrides: ``--set key=value`` strings and dotted-path merges into a mapping."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from slimrl.errors import ScenarioError
from slimrl.validate import parse_yaml, short


def parse_set_args(items: Iterable[str] | None) -> dict[str, Any]:
    """``["reward.energy=0.1", "deadline_ms=600"]`` -> ``{"reward.energy": 0.1, ...}``.

    Values are parsed as YAML scalars (``600`` -> int, ``0.1`` -> float, ``null``, ``[1, 2]``).
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ScenarioError(f"--set {short(item)}: expected key=value (e.g. reward.energy=0.1)")
        if any(not part for part in key.split(".")):
            raise ScenarioError(f"--set {short(item)}: bad field path {short(key)}")
        try:
            out[key] = parse_yaml(raw, ScenarioError, f"--set {key}") if raw.strip() else None
        except ScenarioError:
            raise ScenarioError(f"--set {short(item)}: cannot parse value {short(raw)}") from None
    return out


def apply_overrides(
    data: Mapping[str, Any], overrides: Mapping[str, Any] | None, where: str = "scenario"
) -> tuple[dict[str, Any], set[str]]:
    """Deep-merge ``overrides`` (dotted keys or nested mappings) into a copy of ``data``.

    Returns the merged mapping and the set of overridden field paths.
    """
    out = copy.deepcopy(dict(data)) if data else {}
    touched: set[str] = set()

    def put(target: dict, path: list[str], value: Any) -> None:
        cur = target
        for i, part in enumerate(path[:-1]):
            nxt = cur.get(part)
            if nxt is None:
                nxt = cur[part] = {}
            elif not isinstance(nxt, dict):
                dotted = ".".join(path[: i + 1])
                raise ScenarioError(
                    f"{where}: override {'.'.join(path)}: {dotted} is not a mapping "
                    f"(it is {short(nxt)})"
                )
            cur = nxt
        last = path[-1]
        if isinstance(value, Mapping) and isinstance(cur.get(last), dict):
            for k, v in value.items():
                put(cur[last], [str(k)], v)
                touched.add(".".join([*path, str(k)]))
        else:
            cur[last] = copy.deepcopy(value)
        touched.add(".".join(path))

    for key, value in (overrides or {}).items():
        parts = str(key).split(".")
        if any(not p for p in parts):
            raise ScenarioError(f"{where}: override {short(key)}: bad field path")
        put(out, parts, value)
    return out, touched
