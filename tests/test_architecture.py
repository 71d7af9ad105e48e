"""The package's layers: each imports only from the layers below it, and no module cycle.

Every ``import`` statement of ``src/nrdseg`` counts, wherever it stands: module level,
inside a function (a local import only hides a cycle) and under ``TYPE_CHECKING``. The
layers, lowest first, are the ones CONTRIBUTING.md draws; packages on the same line are
siblings and must not import each other. ``nrdseg/__init__.py`` is the public facade on
top: the package itself never imports it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "nrdseg"

#: Lowest first. CONTRIBUTING.md draws the same picture; change both together.
LAYERS: list[tuple[str, ...]] = [
    ("utils",),
    ("ops", "checkpoint"),
    ("models", "data"),
    ("config",),
    ("evaluation",),
    ("engine",),
    ("deploy",),
    ("analysis",),
    ("cli",),
]
RANK = {package: rank for rank, names in enumerate(LAYERS) for package in names}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, *, module: str, is_package: bool) -> set[str]:
    """Every ``nrdseg`` module or package named by an import anywhere in ``source``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            # ``from nrdseg.models import zoo`` imports the module ``nrdseg.models.zoo``
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "nrdseg" or name.startswith("nrdseg.")}


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    """module -> the modules of the package it imports (names that are attributes dropped)."""
    files = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    graph = {}
    for module, path in files.items():
        names = imported_modules(
            path.read_text(), module=module, is_package=path.name == "__init__.py"
        )
        graph[module] = {name for name in names if name in files and name != module}
    return graph


def package_of(module: str) -> str | None:
    """``nrdseg.models.heads.nrd`` -> ``models``; the root facade -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_violations(graph: dict[str, set[str]]) -> Iterable[str]:
    for module, targets in sorted(graph.items()):
        source = package_of(module)
        if source is None:
            continue  # the facade sits on top
        for target in sorted(targets):
            aim = package_of(target)
            if aim is None:
                yield f"{module} imports the nrdseg facade (import the defining module)"
            elif aim != source and RANK[aim] >= RANK[source]:
                kind = "a sibling" if RANK[aim] == RANK[source] else "a higher layer"
                yield f"{module} ({source}) imports {target}: {kind} ({aim})"


def test_the_parser_sees_local_relative_and_type_checking_imports():
    source = (
        "from typing import TYPE_CHECKING\n"
        "import nrdseg.ops.resize\n"
        "from . import zoo\n"
        "from ..data import labels\n"
        "if TYPE_CHECKING:\n"
        "    from nrdseg.engine.trainer import Trainer\n"
        "def f():\n"
        "    from nrdseg.cli import main\n"
        "    import numpy\n"
    )
    found = imported_modules(source, module="nrdseg.models.segmentor", is_package=False)
    assert {
        "nrdseg.ops.resize",
        "nrdseg.models.zoo",
        "nrdseg.data.labels",
        "nrdseg.engine.trainer",
        "nrdseg.cli",
    } <= found
    assert not any(name.startswith("numpy") for name in found)


def test_the_checks_catch_a_cycle_and_an_upward_import():
    graph = {
        "nrdseg.models.a": {"nrdseg.models.b"},
        "nrdseg.models.b": {"nrdseg.models.a", "nrdseg.engine.c"},
        "nrdseg.engine.c": set(),
    }
    assert cycles(graph) == [["nrdseg.models.a", "nrdseg.models.b"]]
    assert list(layer_violations(graph)) == [
        "nrdseg.models.b (models) imports nrdseg.engine.c: a higher layer (engine)"
    ]


def test_every_package_has_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    modules = {p.stem for p in SRC.glob("*.py")} - {"__init__"}
    assert modules == set(), f"put top-level modules {sorted(modules)} into a layer's package"
    assert packages == set(RANK), (
        f"packages without a layer: {sorted(packages - set(RANK))}; "
        f"layers without a package: {sorted(set(RANK) - packages)}"
    )


def test_no_layer_imports_a_higher_one_or_a_sibling():
    violations = list(layer_violations(import_graph()))
    assert violations == [], "\n".join(violations)


def test_no_import_cycle_between_modules():
    found = cycles(import_graph())
    assert found == [], "\n".join(" <-> ".join(cycle) for cycle in found)


@pytest.mark.parametrize("package", sorted(RANK))
def test_each_layer_is_drawn_in_contributing(package):
    text = (SRC.parents[1] / "CONTRIBUTING.md").read_text()
    assert f"{package}/" in text, f"CONTRIBUTING.md does not show the {package}/ layer"
