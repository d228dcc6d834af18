"""Every Cypher statement of the project passes Neo4j's own Cypher 5 grammar and semantics.

No Neo4j server can run here, so the statements are checked with Neo4j's language tooling
(see docs/cypher-grammar.md). A missing Node.js or npm package fails these tests; it never
skips them.
"""

from __future__ import annotations

import pytest

try:
    from cypher_grammar import (
        LinterUnavailable,
        LintResult,
        _find_cypher,
        collect_module_statements,
        lint,
        report_files,
        report_name,
        report_parameters,
    )
except ImportError:  # tests/ imported as a package
    from tests.cypher_grammar import (
        LinterUnavailable,
        LintResult,
        _find_cypher,
        collect_module_statements,
        lint,
        report_files,
        report_name,
        report_parameters,
    )

from ursprung_graph.store.cypher import Cypher

MODULE_STATEMENTS, IMPORT_FAILURES = collect_module_statements()
REPORTS = {report_name(p): p.read_text(encoding="utf-8") for p in report_files()}
STATEMENTS = MODULE_STATEMENTS + sorted(REPORTS.items())
TEXT = dict(STATEMENTS)
# A report declares its parameters in its header; only those count as declared.
DECLARED = {name: report_parameters(text) for name, text in REPORTS.items()}

_cache: dict[str, object] = {}


def cached_lint(key: str, statements, parameters=None) -> dict[str, LintResult]:
    """Lint a batch once per session (one node process each); fail, never skip, if it can't."""
    if key not in _cache:
        try:
            _cache[key] = {r.name: r for r in lint(statements, parameters)}
        except LinterUnavailable as exc:
            _cache[key] = exc
    results = _cache[key]
    if isinstance(results, LinterUnavailable):
        pytest.fail(str(results), pytrace=False)
    return results  # type: ignore[return-value]


def project_results() -> dict[str, LintResult]:
    return cached_lint("project", STATEMENTS, DECLARED)


def explain(result: LintResult, text: str) -> str:
    numbered = "\n".join(f"{i:4} | {line}" for i, line in enumerate(text.splitlines(), 1))
    lines = [f"{result.name} is not valid Cypher 5 for Neo4j:"]
    lines += [f"  {d}" for d in result.errors]
    if result.warnings:
        lines.append("warnings (not failing):")
        lines += [f"  {d}" for d in result.warnings]
    return "\n".join([*lines, numbered])


# --- (1) every statement of the project ------------------------------------------------

_params = [pytest.param(name, id=name) for name, _ in STATEMENTS] or [
    pytest.param(
        None,
        id="none-collected",
        marks=pytest.mark.skip(
            reason="no Cypher statements collected yet; test_statements_are_collected fails"
        ),
    )
]


@pytest.mark.parametrize("name", _params)
def test_statement_passes_neo4j_grammar(name: str) -> None:
    result = project_results()[name]
    assert result.ok, explain(result, TEXT[name])
    if name in DECLARED:
        unused = sorted(set(DECLARED[name]) - set(result.found_parameters))
        assert not unused, f"{name} declares parameters it does not use: {unused}"


def test_statements_are_collected() -> None:
    assert MODULE_STATEMENTS, (
        "no module-level ursprung_graph.store.cypher.Cypher constants found in ursprung_graph; "
        "statements sent to a store must be Cypher constants so that they are checked here"
    )


def test_every_module_imports() -> None:
    # A module that cannot be imported has its statements silently left out of the check.
    assert not IMPORT_FAILURES, "modules whose Cypher statements cannot be collected:\n" + (
        "\n".join(f"  {mod}: {why}" for mod, why in sorted(IMPORT_FAILURES.items()))
    )


# --- (2) the checker can fail ----------------------------------------------------------

BAD = {
    "unclosed-node": ("MATCH (n RETURN n", "Invalid input 'RETURN'"),
    "misspelt-on-create": (
        "UNWIND $rows AS r MERGE (n:X {k: r.k}) ON CREAT SET n.a = 1",
        "Invalid input 'CREAT'",
    ),
    "undefined-variable": ("MATCH (n) RETURN m", "Variable `m` not defined"),
    "unknown-function": ("UNWIND $rows AS r RETURN toIntger(r.x)", "toIntger"),
    "apoc": ("UNWIND $rows AS r RETURN apoc.coll.sum(r.xs)", "apoc.coll.sum"),
    "removed-in-neo4j-5": ("MATCH (n:X) WHERE exists(n.k) RETURN n", "no longer supported"),
    "two-statements": ("MATCH (n) RETURN n; MATCH (m) RETURN m", "exactly one statement"),
    "cypher-25": ("CYPHER 25 MATCH (n) RETURN n", "CYPHER 25"),
    "cypher-25-only-clause": ("MATCH (n) LET x = n.k RETURN x", "Invalid input 'LET'"),
    "empty": ("  // nothing here\n", "empty statement"),
}

GOOD = {
    "portable-upsert": (
        "UNWIND $rows AS r MERGE (p:Process {key: r.key}) ON CREATE SET p.first = r.ts "
        "SET p.last = CASE WHEN p.last IS NULL OR r.ts > p.last THEN r.ts ELSE p.last END"
    ),
    "time-respecting-read": (
        "MATCH (f:File {key: $key})<-[w:WROTE]-(p:Process)\n"
        "WHERE w.first <= $as_of\n"
        "OPTIONAL MATCH (p)-[r:READ]->(src:File)\n"
        "WHERE r.first <= w.last\n"
        "RETURN p.key AS process, collect(DISTINCT src.key) AS inputs"
    ),
}

REPORT = (
    "// Files a host wrote since a time.\n"
    "// param: host string\n"
    "// param: since integer (epoch nanoseconds)\n"
    "MATCH (p:Process {host: $host})-[w:WROTE]->(f:File)\n"
    "WHERE w.last >= $since\n"
    "RETURN f.path AS path, max(w.last) AS last\n"
    "ORDER BY last DESC;\n"
)


# id() is deprecated in Neo4j 5 (a warning) but still the portable way on FalkorDB.
WARNS = "MATCH (n) RETURN id(n) AS id"


def checker_results() -> dict[str, LintResult]:
    cases = [(f"bad/{k}", text) for k, (text, _) in BAD.items()]
    cases += [(f"good/{k}", text) for k, text in GOOD.items()]
    cases += [("warns", WARNS), ("report/ok", REPORT), ("report/undeclared", REPORT)]
    declared = {"report/ok": report_parameters(REPORT), "report/undeclared": ["host"]}
    return cached_lint("checker", cases, declared)


@pytest.mark.parametrize("key", BAD.keys())
def test_checker_rejects(key: str) -> None:
    text, expected = BAD[key]
    result = checker_results()[f"bad/{key}"]
    assert not result.ok, f"the checker accepted {text!r}"
    assert any(expected in d.message for d in result.errors), [str(d) for d in result.errors]


@pytest.mark.parametrize("key", GOOD.keys())
def test_checker_accepts(key: str) -> None:
    result = checker_results()[f"good/{key}"]
    assert result.ok, explain(result, GOOD[key])


def test_warnings_do_not_fail() -> None:
    result = checker_results()["warns"]
    assert result.ok and result.warnings, result


def test_report_parameters_come_from_header() -> None:
    assert report_parameters(REPORT) == ["host", "since"]
    assert checker_results()["report/ok"].ok
    result = checker_results()["report/undeclared"]
    assert [d.message for d in result.errors] == ["Parameter $since is not defined."]
    assert sorted(result.found_parameters) == ["host", "since"]


def test_collector_finds_nested_constants() -> None:
    a, b, c = Cypher("RETURN 1 AS a"), Cypher("RETURN 2 AS b"), Cypher("RETURN 3 AS c")
    found = dict(
        _find_cypher({"x": (a, "not cypher"), "y": [{"z": b}], "plain": "MATCH (n)"}, "m.C")
    )
    assert found == {"m.C['x'][0]": a, "m.C['y'][0]['z']": b}
    assert dict(_find_cypher(c, "m.D")) == {"m.D": c}
