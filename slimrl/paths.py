"""Where slimrl finds its shipped scenarios, traces and hyperparameters."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The repository root (editable install): holds envs/, traces/, agents/.
ROOT = Path(os.environ.get("SLIMRL_HOME", PACKAGE_DIR.parent)).resolve()
ENVS_DIR = ROOT / "envs"
TRACES_DIR = ROOT / "traces"
AGENTS_DIR = ROOT / "agents"


def resolve_scenario(name_or_path: str | os.PathLike) -> Path:
    """A scenario path, or the name of a shipped one (``default`` -> ``envs/default.yaml``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p.resolve()
    for cand in (ENVS_DIR / p, ENVS_DIR / f"{p}.yaml", ENVS_DIR / f"{p.name}.yaml"):
        if cand.is_file():
            return cand.resolve()
    from slimrl.errors import ScenarioError

    shipped = ", ".join(sorted(q.stem for q in ENVS_DIR.glob("*.yaml"))) or "none"
    raise ScenarioError(f"scenario {str(name_or_path)!r}: no such file (shipped: {shipped})")
