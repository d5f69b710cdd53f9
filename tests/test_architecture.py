"""The architecture of ``src/keyguard`` holds on every run: layers that only point down,
no import cycle between modules (function-level imports included), no module over 600
lines. Imports under ``if TYPE_CHECKING:`` are annotations only and do not count."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"
MAX_LINES = 600
# Lowest first; a module imports its own layer or lower ones only.
LAYERS: list[set[str]] = [
    {"crypto", "errors", "clock", "config", ""},  # "": keyguard/__init__.py (the version only)
    {"store"},
    {"audit"},
    {"vault", "data", "connectors"},
    {"policy", "scan", "monitor", "assess"},
    {"incident"},
    {"response"},
    {"cli", "api", "web", "demo", "runtime", "__main__"},
]
LAYER_OF = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "keyguard").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def room(module: str) -> str:
    """``keyguard.vault.service`` → ``vault``; ``keyguard`` → ``""``."""
    return module.split(".")[1] if "." in module else ""


def _annotation_only(tree: ast.Module) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return skipped


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """Every keyguard module that ``module`` imports, at any depth of its code, with the line."""
    path = MODULES[module]
    yield from parse_imports(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")


def parse_imports(source: str, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """The keyguard modules that ``source`` (the text of ``module``) imports."""
    tree = ast.parse(source)
    skipped = _annotation_only(tree)
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            target = _resolve(name) if name.startswith("keyguard") else None
            if target is not None and target != module:
                yield target, node.lineno


GRAPH = {module: sorted({target for target, _ in imports_of(module)}) for module in MODULES}


def test_every_room_is_on_the_layer_map() -> None:
    assert sorted({room(m) for m in MODULES} - set(LAYER_OF)) == []


def test_layers_point_down() -> None:
    upward = [
        f"{MODULES[module].relative_to(SRC)}:{line} imports {target}"
        for module in MODULES
        for target, line in imports_of(module)
        if LAYER_OF.get(room(target), 0) > LAYER_OF.get(room(module), 0)
    ]
    assert upward == []


def strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_import_cycles() -> None:
    assert strongly_connected(GRAPH) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"], "e": ["e2"], "e2": []}
    assert strongly_connected(graph) == [["a", "b", "c"]]


def test_imports_are_found_at_every_depth() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import service\n"
        "from ..errors import UsageError\n"
        "if TYPE_CHECKING:\n    from keyguard.cli.main import app\n"
        "def f():\n    import keyguard.response.leaks\n"
    )
    found = sorted(parse_imports(source, "keyguard.vault.roots", is_package=False))
    assert found == [("keyguard.errors", 3), ("keyguard.response.leaks", 7), ("keyguard.vault.service", 2)]


def test_no_module_over_the_limit() -> None:
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}
