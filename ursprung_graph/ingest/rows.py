"""Rows into statements: every upsert is ``UNWIND $rows``, cut into bounded batches."""

from __future__ import annotations

from typing import Any

from ..store.cypher import Cypher

ROWS_PER_STATEMENT = 2000

Statements = list[tuple[Cypher, dict[str, Any]]]


def chunked(out: Statements, statement: Cypher, rows: list[dict[str, Any]]) -> None:
    """Append ``statement`` once per ``ROWS_PER_STATEMENT`` rows."""
    for i in range(0, len(rows), ROWS_PER_STATEMENT):
        out.append((statement, {"rows": rows[i:i + ROWS_PER_STATEMENT]}))


def chunked_groups(out: Statements, statement: Cypher,
                   groups: dict[str, list[tuple[Any, ...]]]) -> None:
    """Append ``statement`` over rows ``{src, edges}`` (the edges of one source), at most
    ``ROWS_PER_STATEMENT`` edges per statement; a larger group is cut in parts."""
    rows: list[dict[str, Any]] = []
    count = 0
    for src, edges in groups.items():
        for i in range(0, len(edges), ROWS_PER_STATEMENT):
            part = edges[i:i + ROWS_PER_STATEMENT]
            if rows and count + len(part) > ROWS_PER_STATEMENT:
                out.append((statement, {"rows": rows}))
                rows, count = [], 0
            rows.append({"src": src, "edges": part})
            count += len(part)
    if rows:
        out.append((statement, {"rows": rows}))
