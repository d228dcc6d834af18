"""Capture gaps an answer crosses: where a lineage or a run may be incomplete.

A lineage crosses a gap when the gap is on the host of one of its nodes and overlaps its
time window: from the first to the last time of the edges it walked, extended to the
``as_of`` bound when one is given (upstream: a write before that bound may have been lost;
downstream: a read after it); a lineage without edges has the root's own first and last
times. A run crosses the gaps linked to it and those of its host during it (start to end,
open while it runs). Notes (a log rotation) are never gaps. The summary per host and source
is what ``ursprung db status`` shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ..schema import graph as g
from ..schema.times import FOREVER
from ..store.base import GraphStore, Row
from ..store.cypher import Cypher
from .types import GapInfo, Lineage, RunSummary

_FIELDS = (
    "x.key AS key, x.host AS host, x.source AS source, x.start AS start, x.end AS end, "
    "x.count AS count, x.reason AS reason, x.run AS run"
)
_NOT_NOTE = "(x.note IS NULL OR x.note = false)"
_OVERLAPS = f"x.start <= $until AND (x.end IS NULL OR x.end >= $since) AND {_NOT_NOTE}"

GAPS_OF_HOSTS = Cypher(
    f"UNWIND $hosts AS h MATCH (x:{g.GAP} {{host: h}}) WHERE {_OVERLAPS} RETURN {_FIELDS}"
)
GAPS_OF_RUNS = Cypher(
    f"UNWIND $runs AS r MATCH (x:{g.GAP}) WHERE x.run = r AND {_NOT_NOTE} "
    f"RETURN r AS owner, {_FIELDS}"
)
#: The gaps of each window ``{id, host, since, until}``: one statement for many runs.
GAPS_OF_WINDOWS = Cypher(
    f"UNWIND $windows AS w MATCH (x:{g.GAP} {{host: w.host}}) "
    f"WHERE x.start <= w.until AND (x.end IS NULL OR x.end >= w.since) AND {_NOT_NOTE} "
    f"RETURN w.id AS owner, {_FIELDS}"
)
#: The root of a lineage without edges: its host and when it was seen.
NODE_SPAN: dict[str, Cypher] = {
    label: Cypher(f"MATCH (n:{label} {{key: $key}}) "
                  "RETURN n.host AS host, n.first AS first, n.last AS last")
    for label in (g.FILE, g.PROCESS)
}
GAP_SUMMARY = Cypher(
    f"MATCH (x:{g.GAP}) RETURN x.host AS host, x.source AS source, x.note AS note, "
    "count(x) AS gaps, sum(x.count) AS lost, min(x.start) AS first, max(x.start) AS last, "
    "sum(CASE WHEN x.end IS NULL THEN 1 ELSE 0 END) AS open "
    "ORDER BY host, source"
)


class GapSummary(msgspec.Struct, frozen=True):
    """The gaps of one host and source: how many, how many events lost (where counted),
    the first and last start, how many are still open; ``note``: notes, not gaps."""

    host: str
    source: str
    gaps: int
    lost: int
    first: int
    last: int
    open: int
    note: bool = False


def _info(row: Row) -> GapInfo:
    return GapInfo(**{k: v for k, v in row.items() if v is not None})


def gaps_of_hosts(store: GraphStore, hosts: list[str], since: int, until: int) -> list[GapInfo]:
    """The gaps of ``hosts`` overlapping [since, until], by start."""
    if not hosts:
        return []
    rows = store.read(GAPS_OF_HOSTS, {"hosts": sorted(set(hosts)), "since": since,
                                      "until": until})
    return sorted((_info(r) for r in rows), key=lambda x: (x.start, x.key))


def _window(store: GraphStore, lineage: Lineage, as_of: int | None) -> tuple[int, int] | None:
    """[since, until] of what the answer depends on. Upstream, everything it walked happened
    between the earliest edge and the root's last edge (the last write of a file: a walked
    edge's later reads do not reach it); downstream, between the root's first edge and the
    latest edge. No edges: the root's own first and last times. ``as_of`` widens the
    window to the bound (a missed write before it, a missed read after it)."""
    root = lineage.root
    at_root = [e for e in lineage.edges if root in (e.source, e.target)]
    if at_root:
        if lineage.direction == "up":
            since = min(e.first for e in lineage.edges)
            until = max(e.last for e in at_root)
        else:
            since = min(e.first for e in at_root)
            until = max(e.last for e in lineage.edges)
    else:
        span = _node_span(store, root)
        if span is None:
            if as_of is None:
                return None
            span = (as_of, as_of)
        since, until = span
    if as_of is not None:
        if lineage.direction == "up":
            until = max(until, as_of)
        else:
            since = min(since, as_of)
    return since, until


def _node_span(store: GraphStore, key: str) -> tuple[int, int] | None:
    for statement in NODE_SPAN.values():
        rows = store.read(statement, {"key": key})
        if rows and rows[0]["first"] is not None:
            return rows[0]["first"], rows[0]["last"]
    return None


def lineage_gaps(store: GraphStore, lineage: Lineage, as_of: int | None = None) -> list[GapInfo]:
    """The gaps a lineage crosses."""
    window = _window(store, lineage, as_of)
    if window is None:
        return []
    hosts = [n.host for n in lineage.nodes if n.host is not None]
    if not lineage.nodes:  # the root is not in the graph as a walked node
        hosts = [r["host"] for s in NODE_SPAN.values()
                 for r in store.read(s, {"key": lineage.root}) if r["host"] is not None]
    return gaps_of_hosts(store, hosts, *window)


def with_gaps(store: GraphStore, lineage: Lineage, as_of: int | None = None) -> Lineage:
    """``lineage`` with ``complete`` and the ``gaps`` it crosses."""
    gaps = lineage_gaps(store, lineage, as_of)
    return msgspec.structs.replace(lineage, complete=not gaps, gaps=gaps)


def runs_gaps(store: GraphStore, runs: Sequence[RunSummary]) -> list[list[GapInfo]]:
    """The gaps of each run (linked to it, or on its host while it ran), by start: two
    statements whatever the number of runs."""
    if not runs:
        return []
    found: dict[str, dict[str, GapInfo]] = {run.id: {} for run in runs}
    for r in store.read(GAPS_OF_RUNS, {"runs": [run.id for run in runs]}):
        owner = r.pop("owner")
        found[owner][r["key"]] = _info(r)
    windows = [{"id": run.id, "host": run.host, "since": run.start,
                "until": run.end if run.end is not None else FOREVER}
               for run in runs if run.host is not None and run.start is not None]
    if windows:
        for r in store.read(GAPS_OF_WINDOWS, {"windows": windows}):
            owner = r.pop("owner")
            found[owner].setdefault(r["key"], _info(r))
    return [sorted(found[run.id].values(), key=lambda x: (x.start, x.key)) for run in runs]


def gap_summary(store: GraphStore) -> list[GapSummary]:
    """Gaps per host and source (notes apart)."""
    return [GapSummary(host=r["host"], source=r["source"], gaps=int(r["gaps"]),
                       lost=int(r["lost"] or 0), first=r["first"], last=r["last"],
                       open=int(r["open"] or 0), note=bool(r["note"]))
            for r in store.read(GAP_SUMMARY)]
