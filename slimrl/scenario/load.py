"""Loading a scenario: a shipped name, a YAML file, a mapping or a Scenario, plus overrides."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slimrl.errors import ScenarioError
from slimrl.paths import display, resolve_path, resolve_scenario
from slimrl.scenario.overrides import apply_overrides
from slimrl.scenario.schema import Scenario
from slimrl.validate import Fields, read_yaml, short


def load_scenario(
    name_or_path: str | os.PathLike | Scenario | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
) -> Scenario:
    """Load a shipped scenario by name (``"default"``), a YAML path, a mapping or a Scenario."""
    if isinstance(name_or_path, Scenario):
        return with_overrides(name_or_path, overrides)
    if isinstance(name_or_path, Mapping):
        return scenario_from_dict(name_or_path, Path.cwd(), "scenario", overrides)
    path = resolve_scenario(name_or_path)
    data = read_yaml(path, ScenarioError, display(path))
    if data is None:
        data = {}
    sc = scenario_from_dict(data, path.parent, display(path), overrides, default_name=path.stem)
    return dataclasses.replace(sc, path=path)


def with_overrides(scenario: Scenario, overrides: Mapping[str, Any] | None) -> Scenario:
    """A new scenario with ``overrides`` applied (validated like a file)."""
    if not overrides:
        return scenario
    path = scenario.path
    where = display(path) if path else f"scenario {scenario.name!r}"
    base = path.parent if path else Path.cwd()
    sc = scenario_from_dict(scenario.to_dict(), base, where, overrides, default_name=scenario.name)
    return dataclasses.replace(sc, path=path)


def scenario_from_dict(
    data: Mapping[str, Any],
    base_dir: Path,
    where: str = "scenario",
    overrides: Mapping[str, Any] | None = None,
    default_name: str = "scenario",
) -> Scenario:
    """Validate a scenario mapping; relative paths are resolved against ``base_dir``."""
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where}: expected a mapping of scenario fields, got {short(data)}")
    data, touched = apply_overrides(data, overrides, where)
    data.setdefault("name", default_name)
    fields = Fields(where, ScenarioError, touched, Path(base_dir), resolve_path)
    return fields.build(Scenario, data, "")
