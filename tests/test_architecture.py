"""The package rules of docs/architecture.md, checked on the source: imports point one way
(cli/api -> pipeline -> collectors, ingest, query, rules, winnower -> store, content ->
schema, config -> errors), collectors are pure sources (they may read configuration
defaults, nothing of ingest, query, store or pipeline), and no two modules import each
other, directly or in a circle (lazy imports inside functions count too)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "ursprung_graph"
PACKAGE = "ursprung_graph"

#: Rank of each top-level part: a module may import parts of its own rank or lower.
RANKS = {
    "errors": 0, "home": 0, "locations": 0, "__init__": 0, "__main__": 6,
    "config": 1, "schema": 1,
    "store": 2, "content": 2,
    "collectors": 3, "ingest": 3, "query": 3, "rules": 3, "winnower": 3,
    "pipeline": 4,
    "cli": 5, "api": 5,
}
#: What a collector may import besides itself: collectors are pure sources.
COLLECTOR_MAY_IMPORT = {"collectors", "schema", "config", "errors"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The project's modules that ``name`` imports (any import statement, anywhere in the
    file, except under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    base = name if _is_package(path) else name.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE):
                    yield _existing(alias.name, known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                anchor = ".".join(parts[:len(parts) - node.level + 1])
                target = f"{anchor}.{node.module}" if node.module else anchor
            elif node.module and node.module.startswith(PACKAGE):
                target = node.module
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    yield sub
                elif not _compiled(sub):  # a C extension imports nothing of ours
                    yield _existing(target, known)


def _compiled(name: str) -> bool:
    folder = ROOT.parent.joinpath(*name.split(".")[:-1])
    leaf = name.rpartition(".")[2]
    return any(folder.glob(f"{leaf}.*.so")) or (folder / f"{leaf}.c").exists()


def _existing(name: str, known: dict[str, Path]) -> str:
    while name not in known and "." in name:
        name = name.rpartition(".")[0]
    return name


def part(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {t for t in imports_of(name, path, known) if t != name}
            for name, path in known.items()}


def test_every_part_has_a_rank(graph: dict[str, set[str]]) -> None:
    assert {part(m) for m in graph} <= set(RANKS), "a new top-level part needs a rank here"


def test_imports_point_downward(graph: dict[str, set[str]]) -> None:
    upward = [f"{m} imports {t}" for m, targets in graph.items() for t in targets
              if RANKS[part(t)] > RANKS[part(m)]]
    assert not upward


def test_collectors_are_pure_sources(graph: dict[str, set[str]]) -> None:
    bad = [f"{m} imports {t}" for m, targets in graph.items() if part(m) == "collectors"
           for t in targets if part(t) not in COLLECTOR_MAY_IMPORT]
    assert not bad


def test_no_import_circles(graph: dict[str, set[str]]) -> None:
    """Tarjan's strongly connected components; a package's ``__init__`` re-exporting its
    own modules is not a circle unless one of them imports the package back."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles


def test_the_checker_sees_violations(tmp_path: Path) -> None:
    """The checks above can fail: a planted upward import and a circle are found."""
    known = {"ursprung_graph.query.a": tmp_path / "a.py", "ursprung_graph.query.b":
             tmp_path / "b.py", "ursprung_graph.cli.x": tmp_path / "x.py"}
    (tmp_path / "a.py").write_text("from . import b\nfrom ..cli import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import g\n")
    (tmp_path / "x.py").write_text("")
    a = set(imports_of("ursprung_graph.query.a", tmp_path / "a.py", known))
    b = set(imports_of("ursprung_graph.query.b", tmp_path / "b.py", known))
    assert a == {"ursprung_graph.query.b", "ursprung_graph.cli.x"}
    assert b == {"ursprung_graph.query.a"}
    assert RANKS[part("ursprung_graph.cli.x")] > RANKS[part("ursprung_graph.query.a")]
