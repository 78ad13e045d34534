"""The package graph flows one way: a room imports only rooms below it (CONTRIBUTING.md).

Every ``import slimrl.X`` / ``from slimrl.X import`` in every module counts, including the ones
inside functions, so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import slimrl

PACKAGE = Path(slimrl.__file__).parent

#: rooms from the bottom up; a room may import its own modules and any room of a lower layer
LAYERS: list[set[str]] = [
    {"errors"},
    {"io", "paths", "validate", "parallel"},
    {"traces", "profiles", "model", "bundle"},
    {"scenario"},
    {"env"},
    {"runs"},
    {"policies"},
    {"evaluate"},
    {"export", "train"},
    {"runtime"},
    {"cli"},
]
LAYER = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}
#: ``slimrl/__init__.py`` registers the env with Gymnasium
TOP_LEVEL_ALLOWED = {"env"}


def _room(module_path: Path) -> str:
    rel = module_path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imported_rooms(tree: ast.AST) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "slimrl" and len(parts) > 1:
                out.append((parts[1], node.lineno))
    return out


def test_every_room_has_a_layer():
    rooms = {_room(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    assert rooms <= set(LAYER), f"rooms without a layer: {sorted(rooms - set(LAYER))}"


def test_imports_flow_one_way():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room = _room(path)
        tree = ast.parse(path.read_text(), str(path))
        for target, line in _imported_rooms(tree):
            if target not in LAYER:
                continue  # slimrl.__version__ and the like
            if room == "__init__":
                ok = target in TOP_LEVEL_ALLOWED
            else:
                ok = target == room or LAYER[target] < LAYER[room]
            if not ok:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {room} imports {target}")
    assert not bad, "imports against the one-way rule:\n" + "\n".join(sorted(set(bad)))
