"""The identity of a scenario: a digest of everything that shapes its world."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from slimrl.io import sha256_file
from slimrl.scenario.schema import Scenario
from slimrl.traces import list_trace_files


def scenario_digest(scenario: Scenario) -> str:
    """sha256 of the resolved configuration, the same from any checkout and working directory.

    It covers every resolved field (defaults filled in, overrides applied) except the name and
    description; profile files count by content and the trace folder by its portable path,
    pattern and the names and sizes of its files.
    """
    cfg = scenario.to_dict()
    cfg.pop("name", None)
    cfg.pop("description", None)
    listing = {}
    for d in scenario.traces.datasets:
        root = d.path
        files = [root] if root.is_file() else list_trace_files(root, d.pattern)
        listing[d.name] = [
            [f.relative_to(root).as_posix() if root.is_dir() else f.name, f.stat().st_size]
            for f in files
        ]
    cfg["traces"]["files"] = listing
    cfg["model"]["profile"] = sha256_file(scenario.model.profile)
    samples = getattr(scenario.model_profile, "samples_path", None)
    if samples is not None and Path(samples).is_file() and scenario.model.per_sample:
        cfg["model"]["samples"] = sha256_file(samples)
    cfg["device"]["profile"] = sha256_file(scenario.device.profile)
    for where, path in scenario.sample_files().items():  # measured distributions by content
        cfg.setdefault("sample_files", {})[where] = sha256_file(path)
    load = (cfg.get("edge") or {}).get("load")
    if isinstance(load, dict) and isinstance(load.get("states"), dict):
        # the chain's order seeds its realisation: keep it (the dump below sorts mapping keys)
        load["states"] = [[name, body] for name, body in load["states"].items()]
    text = json.dumps(cfg, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def changed_fields(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted paths where two scenario dicts differ (for drift messages)."""
    out = []
    for key in sorted(set(a) | set(b), key=str):
        va, vb = a.get(key), b.get(key)
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += changed_fields(va, vb, path)
        elif va != vb:
            out.append(path)
    return out
