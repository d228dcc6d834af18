"""Collect the project's Cypher statements and check them with Neo4j's own Cypher tooling.

A statement is any module-level ``ursprung_graph.store.cypher.Cypher`` constant in the
``ursprung_graph`` package (also inside module-level tuples, lists, sets and dicts), plus
every auditor report ``cypher/*.cypher``. The check runs ``tools/cypher-lint/lint.mjs`` (Node,
``@neo4j-cypher/language-support``) once for all statements. See ``docs/cypher-grammar.md``.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import ursprung_graph
from ursprung_graph.store.cypher import Cypher

REPO = Path(__file__).resolve().parents[1]
LINT_DIR = REPO / "tools" / "cypher-lint"
LINT_SCRIPT = LINT_DIR / "lint.mjs"
LINT_PACKAGE = LINT_DIR / "node_modules" / "@neo4j-cypher" / "language-support"
REPORTS_DIR = REPO / "cypher"
INSTALL_HINT = (
    "run `make test` (it runs `npm ci --prefix tools/cypher-lint`, which installs Neo4j's "
    "Cypher tooling, @neo4j-cypher/language-support, pinned in tools/cypher-lint/package.json)"
)

# Modules that must not be imported just to look at their constants.
_SKIP_MODULES = re.compile(r"(^|\.)__main__$")
# `// param: host string`, `// param: $host`, `// params: a, b` in a report's header.
_PARAM_LINE = re.compile(r"^\s*//\s*params?\s*:\s*(.*)$", re.IGNORECASE)
_PARAM_NAME = re.compile(r"^\$?`?([A-Za-z_][A-Za-z0-9_]*)`?")


class LinterUnavailable(RuntimeError):
    """Node or the pinned npm package is missing, or the checker could not run."""


@dataclass
class Diagnostic:
    message: str
    line: int
    column: int
    severity: str

    def __str__(self) -> str:
        return f"{self.line}:{self.column} {self.severity}: {self.message}"


@dataclass
class LintResult:
    name: str
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    found_parameters: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# --- collecting -------------------------------------------------------------------------


def _walk_modules(failures: dict[str, str]) -> Iterator[Any]:
    def onerror(name: str) -> None:
        failures.setdefault(name, "could not be imported while walking the package")

    yield ursprung_graph
    for info in pkgutil.walk_packages(
        ursprung_graph.__path__, ursprung_graph.__name__ + ".", onerror=onerror
    ):
        if _SKIP_MODULES.search(info.name):
            continue
        try:
            yield importlib.import_module(info.name)
        except Exception as exc:
            failures[info.name] = f"{type(exc).__name__}: {exc}"


def _find_cypher(value: Any, name: str, depth: int = 0) -> Iterator[tuple[str, Cypher]]:
    if isinstance(value, Cypher):
        yield name, value
    elif depth >= 4 or isinstance(value, str | bytes):
        return
    elif isinstance(value, Mapping):
        for key, item in value.items():
            label = f"{type(key).__name__}.{key.name}" if isinstance(key, Enum) else repr(key)
            yield from _find_cypher(item, f"{name}[{label}]", depth + 1)
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            yield from _find_cypher(item, f"{name}[{index}]", depth + 1)
    elif isinstance(value, set | frozenset):
        for item in sorted((v for v in value if isinstance(v, Cypher)), key=str):
            yield f"{name}{{...}}", item


def _preferred(names: list[str]) -> str:
    # A constant re-exported by a package's __init__ is the same object as the one in the
    # module that defines it; name it after the deepest module, which is usually the definer.
    return min(names, key=lambda n: (-n.split("[")[0].count("."), n))


def collect_module_statements() -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Return the ``Cypher`` constants of all modules and the modules that failed to import."""
    failures: dict[str, str] = {}
    names_by_object: dict[int, list[str]] = {}
    objects: dict[int, Cypher] = {}
    for module in _walk_modules(failures):
        for attr, value in sorted(vars(module).items()):
            if attr.startswith("__"):
                continue
            for name, stmt in _find_cypher(value, f"{module.__name__}.{attr}"):
                objects[id(stmt)] = stmt
                names_by_object.setdefault(id(stmt), []).append(name)
    statements = [(_preferred(names), str(objects[key])) for key, names in names_by_object.items()]
    return sorted(statements), failures


def report_files() -> list[Path]:
    return sorted(REPORTS_DIR.glob("*.cypher"))


def report_name(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def report_parameters(text: str) -> list[str]:
    """The parameters a report's comment header declares (``// param: host string``)."""
    params: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("//"):
            break  # the header ends at the first line of the statement
        match = _PARAM_LINE.match(line)
        if not match:
            continue
        for part in match.group(1).split(","):
            name = _PARAM_NAME.match(part.strip())
            if name and name.group(1) not in params:
                params.append(name.group(1))
    return params


def collect_statements() -> list[tuple[str, str]]:
    """All statements as ``(name, text)``: ``module.CONSTANT`` and ``cypher/<report>.cypher``.

    Report texts are the whole files, header comments included.
    """
    statements, _ = collect_module_statements()
    reports = [(report_name(p), p.read_text(encoding="utf-8")) for p in report_files()]
    return statements + reports


# --- linting ----------------------------------------------------------------------------


def check_linter_installed() -> str:
    """Return the path of ``node``; raise ``LinterUnavailable`` when anything is missing."""
    node = shutil.which("node")
    if node is None:
        raise LinterUnavailable(f"`node` is not on PATH; install Node.js and {INSTALL_HINT}")
    if not (LINT_PACKAGE / "package.json").is_file():
        raise LinterUnavailable(f"{LINT_PACKAGE.relative_to(REPO)} is missing; {INSTALL_HINT}")
    return node


def lint(
    statements: Iterable[tuple[str, str]],
    parameters: Mapping[str, Sequence[str]] | None = None,
    *,
    timeout: float = 300.0,
) -> list[LintResult]:
    """Check statements with Neo4j's Cypher 5 grammar and semantic analysis, in one process.

    ``parameters`` maps a statement's name to the only parameters declared for it; a
    statement not in it has every ``$param`` in its text declared.
    """
    node = check_linter_installed()
    items: list[dict[str, Any]] = []
    for name, text in statements:
        item: dict[str, Any] = {"name": name, "text": str(text)}
        if parameters is not None and name in parameters:
            item["parameters"] = list(parameters[name])
        items.append(item)
    try:
        proc = subprocess.run(
            [node, str(LINT_SCRIPT)],
            input=json.dumps(items),
            capture_output=True,
            text=True,
            cwd=LINT_DIR,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LinterUnavailable(f"{LINT_SCRIPT.relative_to(REPO)} timed out ({timeout} s)") from exc
    if proc.returncode not in (0, 1):
        raise LinterUnavailable(
            f"{LINT_SCRIPT.relative_to(REPO)} failed (exit {proc.returncode}): "
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    raw = json.loads(proc.stdout)
    results = [
        LintResult(
            name=r["name"],
            errors=[Diagnostic(**d) for d in r["errors"]],
            warnings=[Diagnostic(**d) for d in r["warnings"]],
            found_parameters=list(r.get("found_parameters", [])),
        )
        for r in raw
    ]
    if [r.name for r in results] != [i["name"] for i in items]:
        raise LinterUnavailable("the checker's output does not match its input")
    return results
