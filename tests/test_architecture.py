"""The package's layers: each imports only from the layers below it, and no module cycle.

Every ``import`` statement of ``src/nrdseg`` counts, wherever it stands: module level,
inside a function (a local import only hides a cycle) and under ``TYPE_CHECKING``. The
layers, lowest first, are the ones CONTRIBUTING.md draws; packages on the same line are
siblings and must not import each other. ``nrdseg/__init__.py`` is the public facade on
top: the package itself never imports it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

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


def imported_modules(source: str, *, module: str, is_package: bool) -> dict[str, int]:
    """Every ``nrdseg`` module or package named by an import anywhere in ``source``, with the
    line of its first import."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # ``from nrdseg.models import zoo`` imports the module ``nrdseg.models.zoo``
            names = [origin, *(f"{origin}.{alias.name}" for alias in node.names)]
        for name in names:
            if name == "nrdseg" or name.startswith("nrdseg."):
                found[name] = min(found.get(name, node.lineno), node.lineno)
    return found


def import_graph(root: Path = SRC) -> dict[str, dict[str, str]]:
    """module -> {imported module of the package: "file:line" of the import}; imported
    names that are attributes, not modules, are dropped."""
    files = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    graph = {}
    for module, path in files.items():
        names = imported_modules(
            path.read_text(), module=module, is_package=path.name == "__init__.py"
        )
        where = path.relative_to(root.parents[1])
        graph[module] = {
            name: f"{where}:{line}"
            for name, line in names.items()
            if name in files and name != module
        }
    return graph


def package_of(module: str) -> str | None:
    """``nrdseg.models.heads.nrd`` -> ``models``; the root facade -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
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


HINT = "move the shared part down to a lower layer, or the caller up (CONTRIBUTING.md, Layers)"


def layer_violations(graph: dict[str, dict[str, str]]) -> Iterable[str]:
    for module, targets in sorted(graph.items()):
        source = package_of(module)
        if source is None:
            continue  # the facade sits on top
        for target, where in sorted(targets.items()):
            aim = package_of(target)
            if aim is None:
                yield f"{where}: {module} imports the nrdseg facade; import the defining module"
            elif aim != source and RANK[aim] >= RANK[source]:
                kind = "a sibling" if RANK[aim] == RANK[source] else "a higher layer"
                yield f"{where}: {module} ({source}) imports {target}, {kind} ({aim}); {HINT}"


def describe_cycle(graph: dict[str, dict[str, str]], members: list[str]) -> str:
    """The imports that close a cycle, one per line with their file and line."""
    inside = set(members)
    edges = [
        f"  {where}: {module} imports {target}"
        for module in members
        for target, where in sorted(graph[module].items())
        if target in inside
    ]
    return f"import cycle between {len(members)} modules; {HINT}:\n" + "\n".join(edges)


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
    assert found["nrdseg.engine.trainer"] == 6 and found["nrdseg.cli"] == 8
    assert {
        "nrdseg.ops.resize",
        "nrdseg.models.zoo",
        "nrdseg.data.labels",
        "nrdseg.engine.trainer",
        "nrdseg.cli",
    } <= set(found)
    assert not any(name.startswith("numpy") for name in found)


def test_the_checks_catch_a_cycle_and_an_upward_import():
    graph = {
        "nrdseg.models.a": {"nrdseg.models.b": "a.py:3"},
        "nrdseg.models.b": {"nrdseg.models.a": "b.py:4", "nrdseg.engine.c": "b.py:9"},
        "nrdseg.engine.c": {},
    }
    assert cycles(graph) == [["nrdseg.models.a", "nrdseg.models.b"]]
    assert describe_cycle(graph, cycles(graph)[0]).splitlines()[1:] == [
        "  a.py:3: nrdseg.models.a imports nrdseg.models.b",
        "  b.py:4: nrdseg.models.b imports nrdseg.models.a",
    ]
    assert list(layer_violations(graph)) == [
        f"b.py:9: nrdseg.models.b (models) imports nrdseg.engine.c, a higher layer (engine); {HINT}"
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
    graph = import_graph()
    found = cycles(graph)
    assert found == [], "\n".join(describe_cycle(graph, members) for members in found)


def drawn_layers() -> list[tuple[str, ...]]:
    """The layers of CONTRIBUTING.md's drawing (the code block under "## Layers"), lowest
    first: each line's leading ``name/`` words."""
    text = (SRC.parents[1] / "CONTRIBUTING.md").read_text()
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    rows = []
    for line in block.strip().splitlines():
        words = line.split()
        layer_words = [re.fullmatch(r"[a-z_]+/", word) is not None for word in words]
        count = layer_words.index(False) if False in layer_words else len(words)
        rows.append(tuple(word.rstrip("/") for word in words[:count]))
    return rows[::-1]


def test_contributing_draws_these_layers():
    assert drawn_layers() == LAYERS
