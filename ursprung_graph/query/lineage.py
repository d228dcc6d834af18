"""Time-respecting lineage: where a file came from (upstream) and what it went into
(downstream).

Upstream of a file as of time T holds only processes that wrote it at or before T, and for
each of them only what it read before its write (the write interval ends when the file is
closed or the process ends, so the bound is min(T, last write)); a process's parent counts
as it was at the fork. Downstream is the mirror image: readers of the file after it was
written, what they wrote afterwards, and children forked afterwards.

Cypher cannot express the per-path time bound portably, so the walk is a breadth-first
search in Python with one parameterized statement per level: a ``UNION ALL`` of one branch
per node label and edge kind, each taking that label's part of the frontier with
``UNWIND`` (the key index is per label). The frontier is one map parameter of a list per
label, not a parameter per label: Neo4j plans a statement again for each new size range of
each list parameter, a map's lists do not count (docs/decisions.md). A node reached again
with a looser bound is expanded again. :func:`walks` walks from many roots with the same
statements, and a deadline reaches into the store as each statement's timeout.
"""

from __future__ import annotations

import difflib
import posixpath
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import msgspec

from ..errors import NotFound
from ..schema import graph as g
from ..schema.times import FOREVER
from ..store.base import GraphStore, Row, StoreTimeout
from ..store.cypher import Cypher
from .gaps import with_gaps
from .types import EndpointNode, FileNode, Lineage, LineageEdge, LineageNode, PipeNode, ProcessNode

DEFAULT_DEPTH = 30


def _types(*edges: g.EdgeType) -> str:
    """The relationship types of ``edges`` as a Cypher type alternative (``A|B``)."""
    return "|".join(dict.fromkeys(e.name for e in edges))


_FORKED = g.FORKED.name
_NETWORK = _types(g.CONNECTED, g.ACCEPTED, g.BOUND)

#: The frontier's list of each label, a field of the map parameter ``$frontier`` (one list
#: per label: the key index is per label).
FRONTIER_PARAMS = {g.FILE: "files", g.PROCESS: "processes", g.PIPE: "pipes",
                   g.ENDPOINT: "endpoints"}


class LevelStep(msgspec.Struct, frozen=True):
    """One kind of edge a level follows from frontier nodes of ``label``: the pattern from
    the frontier node ``x`` over ``e`` to ``m``; ``frontier_is_source`` when ``x`` is the
    edge's source."""

    label: str
    pattern: str
    frontier_is_source: bool


UPSTREAM_STEPS = (
    LevelStep(g.FILE, f"<-[e:{_types(g.WROTE, g.RENAMED_TO, g.LINKED_TO)}]-", False),
    LevelStep(g.PROCESS, f"-[e:{_types(g.READ, g.EXECUTED, g.CONNECTED, g.ACCEPTED, g.BOUND)}]->",
              True),
    LevelStep(g.PROCESS, f"<-[e:{_FORKED}]-", False),
    LevelStep(g.PIPE, f"<-[e:{g.WROTE_PIPE.name}]-", False),
    LevelStep(g.ENDPOINT, f"<-[e:{_NETWORK}]-", False),
)
DOWNSTREAM_STEPS = (
    LevelStep(g.FILE, f"<-[e:{_types(g.READ, g.EXECUTED)}]-", False),
    LevelStep(g.FILE, f"-[e:{_types(g.RENAMED_TO, g.LINKED_TO)}]->", True),
    LevelStep(g.PROCESS, f"-[e:{_types(g.WROTE, g.CONNECTED, g.ACCEPTED, g.BOUND, g.FORKED)}]->",
              True),
    LevelStep(g.PIPE, f"<-[e:{g.READ_PIPE.name}]-", False),
    LevelStep(g.ENDPOINT, f"<-[e:{_NETWORK}]-", False),
)


def _level(steps: tuple[LevelStep, ...], condition: str) -> Cypher:
    """One statement for a whole level: a ``UNION ALL`` of one branch per step, each taking
    its label's frontier (``$frontier.files``: ``[{key, bound}]``); ``step`` says which
    branch a row came from."""
    return Cypher(" UNION ALL ".join(
        f"UNWIND $frontier.{FRONTIER_PARAMS[s.label]} AS f MATCH (x:{s.label} {{key: f.key}})"
        f"{s.pattern}(m) WHERE {condition} RETURN {i} AS step, f.key AS at, m.key AS key, "
        "labels(m)[0] AS label, type(e) AS rel, e.first AS first, e.last AS last, "
        "m.path AS path" for i, s in enumerate(steps)))


#: Upstream: edges that began at or before the bound; downstream: that lasted until it.
UPSTREAM_LEVEL = _level(UPSTREAM_STEPS, "e.first <= f.bound")
DOWNSTREAM_LEVEL = _level(DOWNSTREAM_STEPS, "e.last >= f.bound")

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

#: The attributes every node type may carry (after id and kind), in a fixed order.
NODE_ATTRIBUTES = tuple(dict.fromkeys(
    a for node_type in NODE_TYPES.values() for a in node_type.__struct_fields__[2:]))
#: The nodes of many keys at once: one branch per label (its keys in its list of the map
#: parameter ``$nodes``), attributes as columns (cheaper to read than ``properties(n)``; an
#: attribute a label does not have is null).
NODES = Cypher(" UNION ALL ".join(
    f"UNWIND $nodes.{FRONTIER_PARAMS[label]} AS k MATCH (n:{label} {{key: k}}) "
    f"RETURN '{label}' AS label, n.key AS key, "
    + ", ".join(f"n.{a} AS {a}" for a in NODE_ATTRIBUTES)
    for label in NODE_TYPES))


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
    ``deadline`` (``time.monotonic()``, which also bounds each statement inside the store),
    only the edges ``admit`` accepts (it sees each step before the node is reached; refused
    nodes are neither listed nor walked through). A walk cut short says so (``truncated``,
    ``reason``) and returns what it found."""
    return walks(store, [root], direction=direction, depth=depth, as_of=as_of,
                 max_nodes=max_nodes, deadline=deadline, admit=admit)[root]


def walks(store: GraphStore, roots: Iterable[str], *,
          direction: Literal["up", "down"] = "up", depth: int = DEFAULT_DEPTH,
          as_of: int | None = None, max_nodes: int | None = None,
          deadline: float | None = None,
          admit: Callable[[Step], bool] | None = None) -> dict[str, Walk]:
    """:func:`walk` from each of ``roots`` at once, each answer the same as its own walk's:
    one statement per level for all of them (each frontier key with the loosest bound any
    walk has for it; each walk takes the rows of its own frontier within its own bound, in
    the order its own statement would have returned them), and one for all their nodes."""
    if direction not in ("up", "down"):
        raise ValueError("direction must be 'up' or 'down'")
    upstream = direction == "up"
    steps, statement = (UPSTREAM_STEPS, UPSTREAM_LEVEL) if upstream else (
        DOWNSTREAM_STEPS, DOWNSTREAM_LEVEL)
    start = as_of if as_of is not None else (FOREVER if upstream else 0)
    states = {root: _Walking(root, start) for root in roots}
    level = 0
    while active := [w for w in states.values() if w.frontier and w.reason is None]:
        if level == depth:
            for w in active:
                w.reason = f"depth limit {depth} reached; {len(w.frontier)} nodes not expanded"
            break
        level += 1
        rows = _expand(store, statement, active, upstream, deadline)
        if rows is None:
            for w in active:
                w.reason = "time budget spent"
            break
        by_step: dict[tuple[int, str], list[Row]] = {}
        for row in rows:
            by_step.setdefault((row["step"], row["at"]), []).append(row)
        for w in active:
            w.take(steps, by_step, level, upstream, max_nodes, admit)
    found = {n.id: n for n in load_nodes(
        store, {k: label for w in states.values() for k, label in w.labels.items()})}
    return {root: w.result(store, direction, found, as_of) for root, w in states.items()}


def _expand(store: GraphStore, statement: Cypher, active: list[_Walking], upstream: bool,
            deadline: float | None) -> list[Row] | None:
    """The rows of one level for all ``active`` walks; None when the deadline passed (before
    the statement, or inside the store)."""
    loosest: dict[str, int] = {}
    label_of: dict[str, str] = {}
    for w in active:
        for key, bound in w.frontier.items():
            known = loosest.get(key)
            if known is None or (bound > known if upstream else bound < known):
                loosest[key] = bound
                label_of[key] = w.labels[key]
    frontier: dict[str, list[dict[str, Any]]] = {name: [] for name in FRONTIER_PARAMS.values()}
    for key, bound in loosest.items():
        name = FRONTIER_PARAMS.get(label_of[key])
        if name is not None:
            frontier[name].append({"key": key, "bound": bound})
    timeout = None
    if deadline is not None:
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            return None
    try:
        return store.read(statement, {"frontier": frontier}, timeout=timeout)
    except StoreTimeout:
        return None


class _Walking:
    """One walk's state between levels."""

    def __init__(self, root: str, start: int) -> None:
        self.root = root
        self.labels = {root: label_of_key(root)}
        self.distance = {root: 0}
        self.best = {root: start}
        self.edges: dict[tuple[str, str, str], LineageEdge] = {}
        self.frontier = {root: start}
        self.reason: str | None = None

    def take(self, steps: tuple[LevelStep, ...], by_step: dict[tuple[int, str], list[Row]],
             level: int, upstream: bool, max_nodes: int | None,
             admit: Callable[[Step], bool] | None) -> None:
        """Follow this level's rows of this walk's frontier (step by step, frontier in
        order, as its own per-step statements would return them); the next frontier is the
        nodes whose bound improved."""
        reached: dict[str, int] = {}
        labels, root = self.labels, self.root
        for i, step in enumerate(steps):
            for at, bound_at in self.frontier.items():
                if labels[at] != step.label:
                    continue
                for row in by_step.get((i, at), ()):
                    if not (row["first"] <= bound_at if upstream else row["last"] >= bound_at):
                        continue  # within another walk's looser bound, not this one's
                    key, rel = row["key"], row["rel"]
                    if key not in labels:
                        if admit is not None and not admit(
                                Step(key=key, label=row["label"], rel=rel, path=row["path"])):
                            continue
                        if max_nodes is not None and len(labels) >= max_nodes:
                            self.reason = f"node limit {max_nodes} reached"
                            continue
                        labels[key] = row["label"]
                        self.distance[key] = level
                    elif admit is not None and key != root and not admit(
                            Step(key=key, label=row["label"], rel=rel, path=row["path"])):
                        continue
                    src, dst = (at, key) if step.frontier_is_source else (key, at)
                    self.edges[(src, dst, rel)] = LineageEdge(
                        source=src, target=dst, kind=rel, first=row["first"], last=row["last"])
                    bound = _next_bound(upstream, rel, bound_at, row["first"], row["last"])
                    if _improves(upstream, bound, self.best.get(key)):
                        self.best[key] = bound
                        reached[key] = bound
        self.frontier = reached

    def result(self, store: GraphStore, direction: Literal["up", "down"],
               found: dict[str, LineageNode], as_of: int | None) -> Walk:
        nodes = sorted((found[k] for k in self.labels if k in found),
                       key=lambda n: (n.kind, n.id))
        # a total order: edges of the same time would keep the store's row order, which
        # differs between backends
        edges = sorted(self.edges.values(), key=lambda e: (e.first, e.source, e.target, e.kind))
        lineage = Lineage(root=self.root, direction=direction, nodes=nodes, edges=edges)
        return Walk(lineage=with_gaps(store, lineage, as_of), truncated=self.reason is not None,
                    reason=self.reason, distance=self.distance)


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
    not hold (or of other labels) are left out. One statement."""
    keys: dict[str, list[str]] = {FRONTIER_PARAMS[label]: [] for label in NODE_TYPES}
    for key, label in labels.items():
        if label in NODE_TYPES:
            keys[FRONTIER_PARAMS[label]].append(key)
    if not any(keys.values()):
        return []
    nodes: list[LineageNode] = []
    for row in store.read(NODES, {"nodes": keys}):
        label = row["label"]
        node_type = NODE_TYPES[label]
        attributes = node_type.__struct_fields__[2:]  # after id and kind
        nodes.append(node_type(
            id=row["key"], kind=g.KIND_OF_LABEL[label],  # type: ignore[arg-type]
            **{a: row[a] for a in attributes if row.get(a) is not None}))
    return sorted(nodes, key=lambda n: (n.kind, n.id))
