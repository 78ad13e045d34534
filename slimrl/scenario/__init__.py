"""Scenarios: which traces, model and device profiles, edge load, deadline and reward (YAML).

``load_scenario(name_or_path, overrides)`` reads a scenario, applies overrides (a mapping whose
keys may be dotted paths, e.g. ``{"reward.energy": 0.1}``), validates every field and returns a
frozen :class:`Scenario`. Errors name the file and the field path, e.g.
``envs/x.yaml: reward.miss_penalty: expected a number >= 0, got 'abc'``.
The schema (``schema.py``), loading (``load.py``), overrides (``overrides.py``) and identity
(``identity.py``) are separate small pieces; ``envs/README.md`` documents the fields.
"""

from slimrl.scenario.identity import changed_fields, scenario_digest
from slimrl.scenario.load import load_scenario, scenario_from_dict, with_overrides
from slimrl.scenario.overrides import apply_overrides, parse_set_args
from slimrl.scenario.schema import EdgeLoadSpec, JobSize, LoadState, Scenario, lognormal_params

__all__ = [
    "EdgeLoadSpec",
    "JobSize",
    "LoadState",
    "Scenario",
    "apply_overrides",
    "changed_fields",
    "load_scenario",
    "lognormal_params",
    "parse_set_args",
    "scenario_digest",
    "scenario_from_dict",
    "with_overrides",
]
