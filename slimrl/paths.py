"""Where slimrl finds its shipped scenarios, traces and hyperparameters, and how paths resolve.

A relative path written in a scenario (or any file slimrl reads) is looked up next to that file
first, then under the slimrl root; a saved configuration writes paths under the root relative to
it (:func:`portable`), so run folders and bundles move between checkouts and machines.
"""

from __future__ import annotations

import os
from pathlib import Path

from slimrl.errors import ScenarioError

PACKAGE_DIR = Path(__file__).resolve().parent
# The repository root (editable install): holds envs/, traces/, agents/.
ROOT = Path(os.environ.get("SLIMRL_HOME", PACKAGE_DIR.parent)).resolve()
ENVS_DIR = ROOT / "envs"
TRACES_DIR = ROOT / "traces"
AGENTS_DIR = ROOT / "agents"


def shipped_scenarios() -> list[str]:
    """Names of the scenarios shipped in ``envs/`` (sorted)."""
    return sorted(q.stem for q in ENVS_DIR.glob("*.yaml"))


def resolve_scenario(name_or_path: str | os.PathLike) -> Path:
    """A scenario path, or the name of a shipped one (``default`` -> ``envs/default.yaml``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p.resolve()
    for cand in (ENVS_DIR / p, ENVS_DIR / f"{p}.yaml", ENVS_DIR / f"{p.name}.yaml"):
        if cand.is_file():
            return cand.resolve()
    shipped = ", ".join(shipped_scenarios()) or "none"
    raise ScenarioError(f"scenario {str(name_or_path)!r}: no such file (shipped: {shipped})")


def resolve_path(value: str | os.PathLike, base: Path) -> Path:
    """An absolute path for ``value`` read from a file in ``base``: next to it, else under ROOT."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p.resolve()
    return next((q for q in (base / p, ROOT / p) if q.exists()), base / p).resolve()


def portable(path: str | os.PathLike) -> str:
    """``path`` relative to the slimrl root when it lies under it (shipped data), else absolute."""
    p = Path(path).resolve()
    try:
        return p.relative_to(ROOT).as_posix()
    except ValueError:
        return str(p)


def display(path: str | os.PathLike | None) -> str:
    """``path`` relative to the working directory when under it (for messages)."""
    if path is None:
        return "?"
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
