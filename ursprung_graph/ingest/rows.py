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
