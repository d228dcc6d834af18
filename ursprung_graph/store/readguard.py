"""What a read may not do: reach outside the store.

Read-only Cypher still lets the server fetch data from elsewhere: ``LOAD CSV FROM
'https://...'`` makes it open a connection (or a file), and procedures can do the same.
Every ``GraphStore.read`` passes its statement through :func:`check_read`, so the CLI, the
API and reports get the same rule. The statement is tokenized (string literals, quoted
names and comments are skipped, so a file named "LOAD CSV" can still be looked up); then
``LOAD CSV`` is refused, and ``CALL name`` unless the procedure is one of the local,
read-only ones below.
"""

from __future__ import annotations

import re

from .base import ReadRefused

#: Procedures that only read the graph (FalkorDB and Neo4j names), lower case.
LOCAL_PROCEDURES = frozenset({
    "db.labels", "db.relationshiptypes", "db.propertykeys", "db.indexes", "db.constraints",
    "db.idx.fulltext.querynodes", "db.idx.fulltext.queryrelationships",
    "db.idx.vector.querynodes", "db.idx.vector.queryrelationships", "db.meta.stats",
    "dbms.procedures", "algo.pagerank", "algo.bfs", "algo.wcc", "algo.labelpropagation",
    "algo.betweenness", "algo.spanningforest", "algo.sppaths", "algo.sspaths",
})

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<line>//[^\n]*)
  | (?P<block>/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z))
  | (?P<quoted>`(?:[^`]|``)*(?:`|\Z))
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


def _tokens(statement: str) -> list[tuple[str, str]]:
    """(kind, text) of every word, quoted name and punctuation mark; strings become one
    ``string`` token, comments and space are dropped."""
    out = []
    for m in _TOKEN.finditer(statement):
        kind = m.lastgroup or "other"
        if kind in ("space", "line", "block"):
            continue
        text = m.group()
        if kind == "quoted":
            text = text[1:-1].replace("``", "`")
        out.append((kind, text))
    return out


def _procedure(tokens: list[tuple[str, str]], start: int) -> str | None:
    """The dotted procedure name that begins at ``start``, or None (``CALL {``)."""
    parts: list[str] = []
    i = start
    while i < len(tokens) and tokens[i][0] in ("word", "quoted"):
        parts.append(tokens[i][1])
        if i + 1 < len(tokens) and tokens[i + 1] == ("other", "."):
            i += 2
            continue
        break
    return ".".join(parts) if parts else None


def check_read(statement: str) -> None:
    """Raise :class:`ReadRefused` if the statement would reach outside the store."""
    tokens = _tokens(statement)
    for i, (kind, text) in enumerate(tokens):
        if kind != "word":
            continue
        word = text.upper()
        if word == "LOAD" and i + 1 < len(tokens) and tokens[i + 1][0] == "word" \
                and tokens[i + 1][1].upper() == "CSV":
            raise ReadRefused("LOAD CSV is refused: a query may only read the graph, not "
                              "files or URLs")
        if word == "CALL":
            name = _procedure(tokens, i + 1)
            if name is not None and name.lower() not in LOCAL_PROCEDURES:
                raise ReadRefused(f"procedure {name} is refused: a query may only call "
                                  "procedures that read the graph (db.labels, "
                                  "db.relationshipTypes, db.propertyKeys, db.indexes, ...)")
