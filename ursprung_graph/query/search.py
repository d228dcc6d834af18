"""Finding things by name: files by path (a substring, or a glob when the text has ``*``,
``?`` or ``[``), processes by command line or executable, runs by pipeline or parameter
(``name=value``, or a substring of a name or value).

Results come in pages ordered by kind (files, processes, runs) and key; a page's
``end_cursor`` continues after its last hit. The text reaches Cypher only as a parameter;
globs are matched in Python (:mod:`fnmatch`) on the rows a ``CONTAINS`` on the longest
literal part of the pattern let through.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection

import msgspec

from ..schema import graph as g
from ..store.base import GraphStore, Row
from ..store.cypher import Cypher
from .runs import list_runs
from .types import FileNode, ProcessNode, RunSummary

#: What a search can find, in the order of its results.
SEARCH_KINDS = ("file", "process", "run")

#: Rows fetched per statement while scanning for matches.
SCAN_BATCH = 500

SEARCH_FILES = Cypher(
    f"MATCH (f:{g.FILE}) WHERE f.path CONTAINS $needle AND f.key > $after "
    "RETURN f.key AS key, f.path AS path, f.host AS host, f.fs AS fs "
    "ORDER BY key LIMIT $limit"
)

SEARCH_PROCESSES = Cypher(
    f"MATCH (p:{g.PROCESS}) WHERE (p.cmdline CONTAINS $needle OR p.exe CONTAINS $needle) "
    "AND p.key > $after "
    "RETURN p.key AS key, p.host AS host, p.pid AS pid, p.exe AS exe, p.cmdline AS cmdline, "
    "p.cwd AS cwd, p.start AS start, p.end AS end, p.exit_code AS exit_code "
    "ORDER BY key LIMIT $limit"
)

SearchNode = FileNode | ProcessNode | RunSummary


class SearchHit(msgspec.Struct, frozen=True):
    cursor: str
    node: SearchNode


class SearchPage(msgspec.Struct, frozen=True):
    hits: list[SearchHit]
    has_next: bool
    end_cursor: str | None


def _glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _needle(text: str) -> str:
    """The longest literal part of a glob (what every match contains)."""
    parts = re.split(r"\*|\?|\[[^\]]*\]?", text)
    return max(parts, key=len)


def _matcher(text: str) -> Callable[[str | None], bool]:
    if _glob(text):
        return lambda value: value is not None and fnmatch.fnmatchcase(value, text)
    return lambda value: value is not None and text in value


def cursor_of(kind: str, key: str) -> str:
    return f"{kind}|{key}"


def _parse_cursor(cursor: str | None) -> tuple[int, str]:
    if not cursor:
        return 0, ""
    kind, sep, key = cursor.partition("|")
    if not sep or kind not in SEARCH_KINDS:
        raise ValueError(f"not a search cursor: {cursor!r}")
    return SEARCH_KINDS.index(kind), key


def search(store: GraphStore, text: str, *, kinds: Collection[str] | None = None,
           first: int = 20, after: str | None = None) -> SearchPage:
    """Up to ``first`` hits for ``text`` among ``kinds`` (default: all), after the
    cursor ``after``."""
    wanted = [k for k in SEARCH_KINDS if kinds is None or k in kinds]
    start_kind, start_key = _parse_cursor(after)
    hits: list[SearchHit] = []
    for kind in wanted:
        index = SEARCH_KINDS.index(kind)
        if index < start_kind:
            continue
        key_after = start_key if index == start_kind else ""
        need = first + 1 - len(hits)
        if need <= 0:
            break
        hits.extend(_search_kind(store, kind, text, key_after, need))
    page = hits[:first]
    return SearchPage(hits=page, has_next=len(hits) > first,
                      end_cursor=page[-1].cursor if page else after)


def _search_kind(store: GraphStore, kind: str, text: str, after: str,
                 need: int) -> list[SearchHit]:
    if kind == "run":
        return _search_runs(store, text, after, need)
    statement = SEARCH_FILES if kind == "file" else SEARCH_PROCESSES
    match = _matcher(text)
    needle = _needle(text) if _glob(text) else text
    out: list[SearchHit] = []
    while len(out) < need:
        rows = store.read(statement, {"needle": needle, "after": after, "limit": SCAN_BATCH})
        for row in rows:
            if len(out) < need and _row_matches(kind, row, match):
                out.append(SearchHit(cursor=cursor_of(kind, row["key"]), node=_node(kind, row)))
        if len(rows) < SCAN_BATCH:
            break
        after = rows[-1]["key"]
    return out


def _row_matches(kind: str, row: Row, match: Callable[[str | None], bool]) -> bool:
    if kind == "file":
        return match(row["path"])
    return match(row["cmdline"]) or match(row["exe"])


def _node(kind: str, row: Row) -> FileNode | ProcessNode:
    if kind == "file":
        return FileNode(id=row["key"], kind="file", path=row["path"], host=row["host"],
                        fs=row["fs"])
    return ProcessNode(id=row["key"], kind="process", host=row["host"], pid=row["pid"],
                       exe=row["exe"], cmdline=row["cmdline"], cwd=row["cwd"],
                       start=row["start"], end=row["end"], exit_code=row["exit_code"])


def _run_matches(run: RunSummary, text: str) -> bool:
    if "=" in text:
        name, _, value = text.partition("=")
        return run.params.get(name) == value
    match = _matcher(text)
    return (match(run.pipeline) or any(match(k) or match(v) for k, v in run.params.items()))


def _search_runs(store: GraphStore, text: str, after: str, need: int) -> list[SearchHit]:
    runs = sorted((r for r in list_runs(store) if r.key > after and _run_matches(r, text)),
                  key=lambda r: r.key)
    return [SearchHit(cursor=cursor_of("run", r.key), node=r) for r in runs[:need]]
