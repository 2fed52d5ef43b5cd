"""The shared package is layered as the README's map says: imports go down (or sideways without a cycle)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "common" / "payrail"

# The README's map, from the bottom up: a module may import from its own rank or any lower one.
RANKS = [
    {"domain", "clock", "retry", "ownership", "errors", "observability", "settings"},
    {"aws"},
    {"queues", "kms"},
    {"db"},
    {"auth", "payouts", "webhooks", "bank", "health"},
    {"http", "consumer", "scheduled", "openapi", "console"},
]
RANK = {name: rank for rank, names in enumerate(RANKS) for name in names}


def _room(module: str) -> str:
    return module.split(".")[1]


def _imports() -> dict[str, set[str]]:
    """For each module of the package (``payrail.db.payouts``), the package modules it imports."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "payrail" and node.level == 0:
                if node.module == "payrail":
                    graph[name].update(f"payrail.{alias.name}" for alias in node.names)
                else:
                    graph[name].add(node.module)
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names if alias.name.startswith("payrail."))
    return graph


def test_every_room_of_the_package_is_on_the_map() -> None:
    rooms = {path.name if path.is_dir() else path.stem for path in PACKAGE.iterdir() if path.name != "__pycache__"}
    rooms.discard("__init__")
    assert rooms - set(RANK) == set()


def test_no_module_imports_from_a_room_above_its_own() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in _imports().items()
        if module != "payrail"
        for target in targets
        if RANK[_room(target)] > RANK[_room(module)]
    ]
    assert upward == []


def test_the_package_has_no_import_cycle() -> None:
    # Rooms of one rank may import each other's modules, but never in a circle (module by module).
    graph = _imports()
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str], done: set[str]) -> None:
        if module in path:
            cycles.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*path, module], done)
        done.add(module)

    finished: set[str] = set()
    for module in sorted(graph):
        visit(module, [], finished)
    assert cycles == []
