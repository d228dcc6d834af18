"""How a MERGE keeps a node's or an edge's time span: the earliest ``first`` and the latest
``last`` of everything that named it, in any order (so replays change nothing). Cypher
text only, made from the schema's constants and expressions of the statements' own rows."""

from __future__ import annotations

from ..schema import graph as g

#: What a file node holds besides its key and span.
FILE_FIELDS = ("path", "host", "fs", "name")


def widen(v: str, first: str = "r.first", last: str = "r.last") -> str:
    """SET items that widen ``v``'s span to take in ``first`` and ``last`` (expressions)."""
    return (f"{v}.first = CASE WHEN {v}.first IS NULL OR {first} < {v}.first THEN {first} "
            f"ELSE {v}.first END, "
            f"{v}.last = CASE WHEN {v}.last IS NULL OR {last} > {v}.last THEN {last} "
            f"ELSE {v}.last END")


def on_merge(v: str, created: str, first: str = "r.first", last: str = "r.last") -> str:
    """What a MERGEd node of a span gets: ``created`` and the row's span when it is new, its
    span widened when it exists. The same effect as setting the span after the MERGE, and
    FalkorDB sets properties on creation for less (a new file: 39 -> 29 us a row)."""
    return (f"ON CREATE SET {created}, {v}.first = {first}, {v}.last = {last} "
            f"ON MATCH SET {widen(v, first, last)}")


def merge_file(v: str, field: dict[str, str]) -> str:
    """MERGE the file whose ``key``, FILE_FIELDS, ``first`` and ``last`` are the
    expressions ``field`` gives."""
    created = ", ".join(f"{v}.{name} = {field[name]}" for name in FILE_FIELDS)
    return (f"MERGE ({v}:{g.FILE} {{key: {field['key']}}}) "
            + on_merge(v, created, field["first"], field["last"]))
