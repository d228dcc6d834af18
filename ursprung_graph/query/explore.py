"""Reads the GUI's explorer needs: search, the graph of one run, and the latest content
version of files.

* :func:`search` finds files by path, processes by command line or program, and runs by id,
  pipeline or command (substring match, parameterized; each kind capped by ``limit``);
* :func:`run_graph` is what the processes of a run did: their file, pipe, socket and fork
  edges, and the renames of the files they wrote during the run;
* :func:`file_versions` gives, for each file key, the newest version recorded (at or
  before ``as_of`` when given): the size and hash a tooltip shows.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ..schema import graph as g
from ..store.base import GraphStore
from ..store.cypher import Cypher
from .lineage import load_nodes
from .types import LineageEdge, LineageNode

_RUN, _PROC, _FILE = g.PIPELINE_RUN, g.PROCESS, g.FILE

SEARCH_FILES = Cypher(
    f"MATCH (f:{_FILE}) WHERE f.path CONTAINS $text "
    "RETURN f.key AS key, f.path AS path, f.host AS host, f.fs AS fs "
    "ORDER BY f.path, f.key LIMIT $limit"
)

SEARCH_PROCESSES = Cypher(
    f"MATCH (p:{_PROC}) WHERE p.cmdline CONTAINS $text OR p.exe CONTAINS $text "
    "RETURN p.key AS key, p.cmdline AS cmdline, p.exe AS exe, p.host AS host, "
    "p.pid AS pid, p.start AS start ORDER BY p.start, p.key LIMIT $limit"
)

SEARCH_RUNS = Cypher(
    f"MATCH (r:{_RUN}) WHERE r.id STARTS WITH $text OR r.pipeline CONTAINS $text "
    "OR r.command CONTAINS $text "
    "RETURN r.key AS key, r.id AS id, r.pipeline AS pipeline, r.command AS command, "
    "r.host AS host, r.start AS start ORDER BY r.start, r.id LIMIT $limit"
)

_RUN_EDGE_TYPES = "|".join(dict.fromkeys(e.name for e in (
    g.READ, g.WROTE, g.EXECUTED, g.DELETED, g.FORKED, g.READ_PIPE, g.WROTE_PIPE,
    g.CONNECTED, g.ACCEPTED, g.BOUND)))

RUN_EDGES = Cypher(
    f"MATCH (r:{_RUN} {{key: $key}})-[:{g.INCLUDES.name}]->(p:{_PROC})"
    f"-[e:{_RUN_EDGE_TYPES}]->(m) "
    "RETURN p.key AS source, m.key AS target, labels(m)[0] AS label, type(e) AS rel, "
    "e.first AS first, e.last AS last"
)

RUN_RENAMES = Cypher(
    f"UNWIND $keys AS k MATCH (f:{_FILE} {{key: k}})-[e:{g.RENAMED_TO.name}]->(t:{_FILE}) "
    "WHERE e.first <= $end AND e.last >= $start "
    "RETURN f.key AS source, t.key AS target, e.first AS first, e.last AS last"
)

FILE_VERSIONS = Cypher(
    f"UNWIND $keys AS k MATCH (f:{_FILE} {{key: k}})-[:{g.HAS_VERSION.name}]->"
    f"(v:{g.VERSION}) WHERE $as_of IS NULL OR v.mtime IS NULL OR v.mtime <= $as_of "
    "RETURN f.key AS key, v.sha256 AS sha256, v.size AS size, v.mtime AS mtime"
)

#: How many hits of each kind a search returns at most.
SEARCH_LIMIT = 50

FOREVER = 2**62


class SearchHit(msgspec.Struct, frozen=True, omit_defaults=True):
    """One search result: ``key`` is a node key (a run's id for runs); ``label`` what to
    show (a path, a command line, a run's pipeline and id)."""

    kind: Literal["file", "process", "run"]
    key: str
    label: str
    host: str | None = None
    start: int | None = None


class RunGraph(msgspec.Struct, frozen=True):
    """The processes of run ``run`` (a run key) and what they touched."""

    run: str
    nodes: list[LineageNode] = msgspec.field(default_factory=list)
    edges: list[LineageEdge] = msgspec.field(default_factory=list)


class LatestVersion(msgspec.Struct, frozen=True):
    sha256: str | None
    size: int | None
    mtime: int | None


def search(store: GraphStore, text: str, limit: int = SEARCH_LIMIT) -> list[SearchHit]:
    """Files, processes and runs whose path, command line or id contains ``text``."""
    text = text.strip()
    if not text:
        return []
    params: dict[str, object] = {"text": text, "limit": limit}
    hits: list[SearchHit] = []
    for r in store.read(SEARCH_RUNS, params):
        label = f"{r['pipeline'] or 'run'} {r['id']}"
        hits.append(SearchHit(kind="run", key=r["id"], label=label, host=r["host"],
                              start=r["start"]))
    for r in store.read(SEARCH_FILES, params):
        hits.append(SearchHit(kind="file", key=r["key"], label=r["path"],
                              host=r["host"] or (f"fs:{r['fs']}" if r["fs"] else None)))
    for r in store.read(SEARCH_PROCESSES, params):
        label = r["cmdline"] or r["exe"] or f"pid {r['pid']}"
        hits.append(SearchHit(kind="process", key=r["key"], label=label, host=r["host"],
                              start=r["start"]))
    return hits


def run_graph(store: GraphStore, run_key: str, start: int | None = None,
              end: int | None = None) -> RunGraph:
    """The graph of the run with key ``run_key`` (``start``/``end``: the run's, bounding
    the renames that count)."""
    labels: dict[str, str] = {}
    edges: dict[tuple[str, str, str], LineageEdge] = {}
    for r in store.read(RUN_EDGES, {"key": run_key}):
        labels[r["source"]] = _PROC
        labels[r["target"]] = r["label"]
        edges[(r["source"], r["target"], r["rel"])] = LineageEdge(
            source=r["source"], target=r["target"], kind=r["rel"], first=r["first"],
            last=r["last"])
    written = sorted({e.target for e in edges.values() if e.kind == g.WROTE.name
                      and labels.get(e.target) == _FILE})
    if written:
        params = {"keys": written, "start": start or 0, "end": end or FOREVER}
        for r in store.read(RUN_RENAMES, params):
            labels.setdefault(r["target"], _FILE)
            edges[(r["source"], r["target"], g.RENAMED_TO.name)] = LineageEdge(
                source=r["source"], target=r["target"], kind=g.RENAMED_TO.name,
                first=r["first"], last=r["last"])
    return RunGraph(run=run_key, nodes=load_nodes(store, labels),
                    edges=sorted(edges.values(), key=lambda e: (e.first, e.source, e.target)))


def file_versions(store: GraphStore, keys: list[str],
                  as_of: int | None = None) -> dict[str, LatestVersion]:
    """The newest recorded version of each file in ``keys`` that has one."""
    out: dict[str, LatestVersion] = {}
    if not keys:
        return out
    for r in store.read(FILE_VERSIONS, {"keys": keys, "as_of": as_of}):
        known = out.get(r["key"])
        if known is None or (r["mtime"] or 0) >= (known.mtime or 0):
            out[r["key"]] = LatestVersion(sha256=r["sha256"], size=r["size"], mtime=r["mtime"])
    return out
