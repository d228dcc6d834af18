"""Reading provenance for Winnower from the graph store: the recorded runs of a pipeline,
each as its own `ProvGraph` (its processes, what they forked, read, wrote, executed, deleted,
the pipes and sockets they used, and renames among its files during the run).

Every statement is a module-level `Cypher` constant with parameters; rows become typed
structs here, so nothing above sees the store's row dicts.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from ..schema import graph as g
from ..store.base import GraphStore
from ..store.cypher import Cypher
from .pgraph import ENDPOINT, FILE, PIPE, PROCESS, ProvGraph, Vertex

PIPELINE_RUNS = Cypher(
    "MATCH (r:PipelineRun) WHERE r.pipeline = $pipeline "
    "RETURN r.id AS id, r.key AS key, r.cwd AS cwd, r.params AS params, r.start AS start, "
    "r.end AS end, r.host AS host ORDER BY r.start, r.id"
)

RUN_MEMBERS = Cypher(
    "UNWIND $keys AS k MATCH (r:PipelineRun {key: k})-[:INCLUDES]->(p:Process) "
    "RETURN k AS run, p.key AS key, p.host AS host, p.pid AS pid, p.exe AS exe, "
    "p.argv AS argv, p.cwd AS cwd, p.start AS start, p.first AS first"
)

MEMBER_EDGES = Cypher(
    "UNWIND $keys AS k "
    "MATCH (p:Process {key: k})-[e:FORKED|READ|WROTE|DELETED|EXECUTED|CONNECTED|ACCEPTED"
    "|BOUND]->(m) "
    "RETURN p.key AS src, type(e) AS rel, m.key AS dst, labels(m)[0] AS label, "
    "e.first AS first, m.path AS path, m.host AS host, m.family AS family, "
    "m.address AS address, m.port AS port"
)

FILE_RENAMES = Cypher(
    "UNWIND $items AS it MATCH (a:File {key: it.key})-[e:RENAMED_TO|LINKED_TO]->(b:File) "
    "WHERE e.last >= it.start AND e.first <= it.end "
    "RETURN it.run AS run, a.key AS src, type(e) AS rel, b.key AS dst, b.path AS path, "
    "b.host AS host, e.first AS first"
)

FOREVER = 2**62


class RunRef(msgspec.Struct, frozen=True):
    """A recorded run: id, key, working directory, parameters, time span, host."""

    id: str
    key: str
    cwd: str | None
    params: dict[str, str]
    start: int
    end: int | None
    host: str | None


def _params(text: Any) -> dict[str, str]:
    try:
        data = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def pipeline_runs(store: GraphStore, pipeline: str) -> list[RunRef]:
    """The runs of ``pipeline``, oldest first."""
    return [RunRef(r["id"], r["key"], r["cwd"], _params(r["params"]), r["start"] or 0,
                   r["end"], r["host"])
            for r in store.read(PIPELINE_RUNS, {"pipeline": pipeline})]


_KIND_OF = {g.PROCESS: PROCESS, g.FILE: FILE, g.PIPE: PIPE, g.ENDPOINT: ENDPOINT}


def run_graphs(store: GraphStore, runs: list[RunRef]) -> dict[str, ProvGraph]:
    """Each run's provenance graph, by run id (four statements for all runs together)."""
    graphs = {r.id: ProvGraph() for r in runs}
    by_key = {r.key: r for r in runs}
    run_of: dict[str, str] = {}
    for row in store.read(RUN_MEMBERS, {"keys": list(by_key)}):
        run = by_key[row["run"]]
        run_of[row["key"]] = run.id
        graphs[run.id].add_vertex(Vertex(
            row["key"], PROCESS, host=row["host"] or "", pid=row["pid"], exe=row["exe"],
            argv=list(row["argv"] or []), cwd=row["cwd"], first=row["first"] or 0))
    files: dict[tuple[str, str], None] = {}
    for row in store.read(MEMBER_EDGES, {"keys": list(run_of)}):
        run_id = run_of[row["src"]]
        graph = graphs[run_id]
        kind = _KIND_OF.get(row["label"])
        if kind is None:
            continue
        if kind == PROCESS and row["dst"] not in run_of:
            continue  # a child outside the run (not one of its members)
        if kind != PROCESS:
            graph.add_vertex(Vertex(row["dst"], kind, host=row["host"] or "", path=row["path"],
                                    family=row["family"], address=row["address"],
                                    port=row["port"], first=row["first"] or 0))
        if kind == FILE:
            files[(run_id, row["dst"])] = None
        graph.add_edge(row["src"], row["rel"], row["dst"], row["first"] or 0)
    span = {r.id: (r.start, r.end if r.end is not None else FOREVER) for r in runs}
    items = [{"run": run_id, "key": key, "start": span[run_id][0], "end": span[run_id][1]}
             for run_id, key in files]
    if items:
        for row in store.read(FILE_RENAMES, {"items": items}):
            graph = graphs[row["run"]]
            graph.add_vertex(Vertex(row["dst"], FILE, host=row["host"] or "", path=row["path"],
                                    first=row["first"] or 0))
            graph.add_edge(row["src"], row["rel"], row["dst"], row["first"] or 0)
    return graphs
