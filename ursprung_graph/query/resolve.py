"""The process reads behind linking (host, pid) events to processes
(:mod:`ursprung_graph.ingest.resolve`): a host's processes with a pid, and how far a host's
audit stream has come."""

from __future__ import annotations

from collections.abc import Iterable

from ..schema import graph as g
from ..store.base import GraphStore
from ..store.cypher import Cypher

CANDIDATES = Cypher(
    "UNWIND $rows AS r "
    f"MATCH (p:{g.PROCESS} {{pid: r.pid}}) WHERE p.host = r.host "
    "RETURN r.host AS host, r.pid AS pid, p.start AS start, p.end AS end"
)

WATERMARKS = Cypher(
    "UNWIND $hosts AS h "
    f"MATCH (p:{g.PROCESS}) WHERE p.host = h AND p.start > 0 "
    "RETURN h AS host, max(p.start) AS watermark"
)


def process_spans(store: GraphStore, pids: Iterable[tuple[str, int]]
                  ) -> dict[tuple[str, int], list[tuple[int, int | None]]]:
    """For each (host, pid), the (start, end) of the host's processes with that pid (end
    None while unknown; processes without a known start are left out)."""
    rows = [{"host": h, "pid": p} for h, p in pids]
    out: dict[tuple[str, int], list[tuple[int, int | None]]] = {}
    for r in store.read(CANDIDATES, {"rows": rows}):
        if r["start"] is not None:
            out.setdefault((r["host"], r["pid"]), []).append((r["start"], r["end"]))
    return out


def watermarks(store: GraphStore, hosts: Iterable[str]) -> dict[str, int]:
    """The newest process start the store holds for each host (hosts without one are left
    out)."""
    return {r["host"]: r["watermark"] for r in store.read(WATERMARKS, {"hosts": list(hosts)})
            if r["watermark"] is not None}
