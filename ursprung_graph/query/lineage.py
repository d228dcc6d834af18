"""Time-respecting lineage: where a file came from (upstream) and what it went into
(downstream).

Upstream of a file as of time T holds only processes that wrote it at or before T, and for
each of them only what it read before its write (the write interval ends when the file is
closed or the process ends, so the bound is min(T, last write)); a process's parent counts
as it was at the fork. Downstream is the mirror image: readers of the file after it was
written, what they wrote afterwards, and children forked afterwards.

Cypher cannot express the per-path time bound portably, so the walk is a breadth-first
search in Python with one parameterized statement per node label and level, each taking the
whole frontier with ``UNWIND``. A node reached again with a looser bound is expanded again.
"""

from __future__ import annotations

import difflib
import posixpath
import time
from collections.abc import Callable
from typing import Literal

import msgspec

from ..errors import NotFound
from ..schema import graph as g
from ..schema.times import FOREVER
from ..store.base import GraphStore
from ..store.cypher import Cypher
from .gaps import with_gaps
from .types import EndpointNode, FileNode, Lineage, LineageEdge, LineageNode, PipeNode, ProcessNode

DEFAULT_DEPTH = 30

_RETURN = (
    "RETURN f.key AS at, m.key AS key, labels(m)[0] AS label, type(e) AS rel, "
    "e.first AS first, e.last AS last, m.path AS path"
)


def _types(*edges: g.EdgeType) -> str:
    """The relationship types of ``edges`` as a Cypher type alternative (``A|B``)."""
    return "|".join(dict.fromkeys(e.name for e in edges))


_FORKED = g.FORKED.name
_NETWORK = _types(g.CONNECTED, g.ACCEPTED, g.BOUND)

# (label of the frontier, statement, True when the frontier node is the edge's source)
UPSTREAM: tuple[tuple[str, Cypher, bool], ...] = (
    (g.FILE, Cypher(
        f"UNWIND $frontier AS f MATCH (x:{g.FILE} {{key: f.key}})"
        f"<-[e:{_types(g.WROTE, g.RENAMED_TO, g.LINKED_TO)}]-(m) "
        f"WHERE e.first <= f.bound {_RETURN}"), False),
    (g.PROCESS, Cypher(
        "UNWIND $frontier AS f "
        f"MATCH (x:{g.PROCESS} {{key: f.key}})"
        f"-[e:{_types(g.READ, g.EXECUTED, g.CONNECTED, g.ACCEPTED, g.BOUND)}]->(m) "
        f"WHERE e.first <= f.bound {_RETURN}"), True),
    (g.PROCESS, Cypher(
        f"UNWIND $frontier AS f MATCH (x:{g.PROCESS} {{key: f.key}})<-[e:{_FORKED}]-(m) "
        f"WHERE e.first <= f.bound {_RETURN}"), False),
    (g.PIPE, Cypher(
        f"UNWIND $frontier AS f MATCH (x:{g.PIPE} {{key: f.key}})"
        f"<-[e:{g.WROTE_PIPE.name}]-(m) "
        f"WHERE e.first <= f.bound {_RETURN}"), False),
    (g.ENDPOINT, Cypher(
        "UNWIND $frontier AS f "
        f"MATCH (x:{g.ENDPOINT} {{key: f.key}})<-[e:{_NETWORK}]-(m) "
        f"WHERE e.first <= f.bound {_RETURN}"), False),
)

DOWNSTREAM: tuple[tuple[str, Cypher, bool], ...] = (
    (g.FILE, Cypher(
        f"UNWIND $frontier AS f MATCH (x:{g.FILE} {{key: f.key}})"
        f"<-[e:{_types(g.READ, g.EXECUTED)}]-(m) "
        f"WHERE e.last >= f.bound {_RETURN}"), False),
    (g.FILE, Cypher(
        f"UNWIND $frontier AS f MATCH (x:{g.FILE} {{key: f.key}})"
        f"-[e:{_types(g.RENAMED_TO, g.LINKED_TO)}]->(m) "
        f"WHERE e.last >= f.bound {_RETURN}"), True),
    (g.PROCESS, Cypher(
        "UNWIND $frontier AS f "
        f"MATCH (x:{g.PROCESS} {{key: f.key}})"
        f"-[e:{_types(g.WROTE, g.CONNECTED, g.ACCEPTED, g.BOUND, g.FORKED)}]->(m) "
        f"WHERE e.last >= f.bound {_RETURN}"), True),
    (g.PIPE, Cypher(
        f"UNWIND $frontier AS f MATCH (x:{g.PIPE} {{key: f.key}})"
        f"<-[e:{g.READ_PIPE.name}]-(m) "
        f"WHERE e.last >= f.bound {_RETURN}"), False),
    (g.ENDPOINT, Cypher(
        "UNWIND $frontier AS f "
        f"MATCH (x:{g.ENDPOINT} {{key: f.key}})<-[e:{_NETWORK}]-(m) "
        f"WHERE e.last >= f.bound {_RETURN}"), False),
)

FILES_BY_PATH = Cypher(
    f"MATCH (f:{g.FILE} {{path: $path}}) RETURN f.key AS key, f.host AS host, f.fs AS fs "
    "ORDER BY key"
)
#: Files that might be the one meant when a path is not in the graph: the same name
#: elsewhere, or another name in the same directory.
FILES_NAMED = Cypher(
    f"MATCH (f:{g.FILE}) WHERE f.name = $name RETURN DISTINCT f.path AS path LIMIT 500"
)
FILES_UNDER = Cypher(
    f"MATCH (f:{g.FILE}) WHERE f.path STARTS WITH $dir RETURN DISTINCT f.path AS path "
    "LIMIT 500"
)

#: The node type of each label (its fields are the attributes a node carries).
NODE_TYPES: dict[str, type[LineageNode]] = {
    g.PROCESS: ProcessNode, g.FILE: FileNode, g.PIPE: PipeNode, g.ENDPOINT: EndpointNode,
}

#: The attributes of each label's nodes, as columns (cheaper to read than ``properties(n)``).
NODE_PROPERTIES: dict[str, Cypher] = {
    label: Cypher(f"UNWIND $keys AS k MATCH (n:{label} {{key: k}}) RETURN n.key AS key, "
                  + ", ".join(f"n.{a} AS {a}" for a in node_type.__struct_fields__[2:]))
    for label, node_type in NODE_TYPES.items()
}


class AmbiguousPath(LookupError):
    """The path exists on several hosts; the caller must pick one."""

    def __init__(self, path: str, hosts: list[str]) -> None:
        super().__init__(f"{path} exists on several hosts: {', '.join(hosts)}; "
                         "name one with --host")
        self.hosts = hosts


def find_file(store: GraphStore, path: str, host: str | None = None) -> str:
    """The key of the file at ``path``: on ``host``, or on the only host that has it."""
    rows = store.read(FILES_BY_PATH, {"path": path})
    if host is not None:
        rows = [r for r in rows if r["host"] == host or r["fs"] == host]
    if not rows:
        where = f" on host {host}" if host else ""
        near = closest_paths(store, path)
        hint = f"; closest known: {', '.join(near)}" if near else ""
        raise NotFound(f"no file {path}{where} in the graph{hint}")
    if len(rows) > 1:
        raise AmbiguousPath(path, [r["host"] or f"fs:{r['fs']}" for r in rows])
    key: str = rows[0]["key"]
    return key


def closest_paths(store: GraphStore, path: str, n: int = 3) -> list[str]:
    """Up to ``n`` known paths most like ``path``: files of the same name elsewhere and
    files of the same directory, the most similar first."""
    directory, name = posixpath.split(path.rstrip("/"))
    known = {r["path"] for r in store.read(FILES_NAMED, {"name": name})} if name else set()
    if directory:
        under = {"dir": directory.rstrip("/") + "/"}
        known.update(r["path"] for r in store.read(FILES_UNDER, under))
    known.discard(path)
    return sorted(known, key=lambda p: (-difflib.SequenceMatcher(None, p, path).ratio(), p))[:n]


def label_of_key(key: str) -> str:
    if key.startswith("p:"):
        return g.PROCESS
    if key.startswith("pipe:"):
        return g.PIPE
    if key.startswith("e:"):
        return g.ENDPOINT
    return g.FILE


class Step(msgspec.Struct, frozen=True):
    """One edge the walk is about to take: to the node ``key`` (``label``; ``path`` for a
    file) over relationship ``rel``. A walk's ``admit`` may refuse it."""

    key: str
    label: str
    rel: str
    path: str | None


class Walk(msgspec.Struct, frozen=True):
    """A lineage and how it was cut short: ``truncated`` with the ``reason`` (depth, node
    cap, time budget) when more was there; ``distance``: hops from the root per node."""

    lineage: Lineage
    truncated: bool = False
    reason: str | None = None
    distance: dict[str, int] = msgspec.field(default_factory=dict)


def lineage(store: GraphStore, root: str, *, direction: Literal["up", "down"] = "up",
            depth: int = DEFAULT_DEPTH, as_of: int | None = None) -> Lineage:
    """Walk from the node with key ``root``; ``as_of`` bounds time (upstream: at or before,
    downstream: at or after)."""
    return walk(store, root, direction=direction, depth=depth, as_of=as_of).lineage


def walk(store: GraphStore, root: str, *, direction: Literal["up", "down"] = "up",
         depth: int = DEFAULT_DEPTH, as_of: int | None = None, max_nodes: int | None = None,
         deadline: float | None = None,
         admit: Callable[[Step], bool] | None = None) -> Walk:
    """:func:`lineage` with limits: at most ``max_nodes`` nodes, no new statement after
    ``deadline`` (``time.monotonic()``), only the edges ``admit`` accepts (it sees each
    step before the node is reached; refused nodes are neither listed nor walked through).
    A walk cut short says so (``truncated``, ``reason``) and returns what it found."""
    if direction not in ("up", "down"):
        raise ValueError("direction must be 'up' or 'down'")
    upstream = direction == "up"
    steps = UPSTREAM if upstream else DOWNSTREAM
    start = as_of if as_of is not None else (FOREVER if upstream else 0)
    labels = {root: label_of_key(root)}
    distance = {root: 0}
    best = {root: start}
    edges: dict[tuple[str, str, str], LineageEdge] = {}
    frontier = {root: start}
    reason: str | None = None
    level = 0
    while frontier and reason is None:
        if level == depth:
            reason = f"depth limit {depth} reached; {len(frontier)} nodes not expanded"
            break
        level += 1
        reached: dict[str, int] = {}
        for label, statement, frontier_is_source in steps:
            items = [{"key": k, "bound": b} for k, b in frontier.items() if labels[k] == label]
            if not items:
                continue
            if deadline is not None and time.monotonic() > deadline:
                reason = "time budget spent"
                break
            for row in store.read(statement, {"frontier": items}):
                at, key, rel = row["at"], row["key"], row["rel"]
                if key not in labels:
                    if admit is not None and not admit(
                            Step(key=key, label=row["label"], rel=rel, path=row["path"])):
                        continue
                    if max_nodes is not None and len(labels) >= max_nodes:
                        reason = f"node limit {max_nodes} reached"
                        continue
                    labels[key] = row["label"]
                    distance[key] = level
                elif admit is not None and key != root and not admit(
                        Step(key=key, label=row["label"], rel=rel, path=row["path"])):
                    continue
                src, dst = (at, key) if frontier_is_source else (key, at)
                edges[(src, dst, rel)] = LineageEdge(source=src, target=dst, kind=rel,
                                                     first=row["first"], last=row["last"])
                bound = _next_bound(upstream, rel, frontier[at], row["first"], row["last"])
                if _improves(upstream, bound, best.get(key)):
                    best[key] = bound
                    reached[key] = bound
            if reason is not None and reason.startswith("time"):
                break
        frontier = reached
    result = Lineage(root=root, direction=direction, nodes=load_nodes(store, labels),
                     edges=sorted(edges.values(), key=lambda e: (e.first, e.source)))
    return Walk(lineage=with_gaps(store, result, as_of), truncated=reason is not None,
                reason=reason, distance=distance)


def _next_bound(upstream: bool, rel: str, bound: int, first: int, last: int) -> int:
    if upstream:
        return first if rel == _FORKED else min(bound, last)
    return first if rel == _FORKED else max(bound, first)


def _improves(upstream: bool, bound: int, known: int | None) -> bool:
    if known is None:
        return True
    return bound > known if upstream else bound < known


def load_nodes(store: GraphStore, labels: dict[str, str]) -> list[LineageNode]:
    """The typed nodes of ``labels`` (key -> label), by kind and key; keys the graph does
    not hold are left out."""
    by_label: dict[str, list[str]] = {}
    for key, label in labels.items():
        by_label.setdefault(label, []).append(key)
    nodes: list[LineageNode] = []
    for label, keys in by_label.items():
        statement = NODE_PROPERTIES.get(label)
        if statement is None:
            continue
        node_type = NODE_TYPES[label]
        attributes = node_type.__struct_fields__[2:]  # after id and kind
        for row in store.read(statement, {"keys": keys}):
            nodes.append(node_type(
                id=row["key"], kind=g.KIND_OF_LABEL[label],  # type: ignore[arg-type]
                **{a: row[a] for a in attributes if row.get(a) is not None}))
    return sorted(nodes, key=lambda n: (n.kind, n.id))
