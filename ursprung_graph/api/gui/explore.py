"""The explorer's question, read from the URL, and the graph that answers it.

Every part of the question is a query parameter, so the page's URL is the shareable link:
``node`` (the key of the start node), ``direction`` (up, down, both), ``depth``, ``as_of``
(a time: the lineage as it was then), ``since`` and ``until`` (a time window: only edges
that lie within it, and what they still connect to the node), ``system`` (hide or show
system files), ``noise`` (comma-separated fnmatch patterns to leave out), ``cap`` (the node
count past which the graph is clustered), and ``q`` (a search). ``t`` (the time slider) is
read by the browser only.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from ...query.explore import LatestVersion, file_versions
from ...query.lineage import lineage
from ...query.types import LineageEdge, LineageNode, ProcessNode
from ...schema.times import TimeError, parse_time
from ...store.base import GraphStore
from .graphview import DEFAULT_CAP, Filters, Prepared, prepare

DEFAULT_DEPTH = 3
MAX_DEPTH = 30
#: A graph this big is never fetched at once; past it the walk stops.
MAX_CAP = 20000


class BadQuery(ValueError):
    """A query parameter the explorer cannot read (shown on the page)."""


@dataclass(frozen=True, slots=True)
class ExploreQuery:
    node: str | None
    direction: Literal["up", "down", "both"]
    depth: int
    as_of: int | None
    as_of_text: str
    since: int | None
    since_text: str
    until: int | None
    until_text: str
    hide_system: bool
    noise: str
    cap: int
    q: str

    @property
    def filters(self) -> Filters:
        return Filters.parse(self.hide_system, self.noise)

    def params(self) -> dict[str, str]:
        """The query as URL parameters (the defaults left out)."""
        out = {"node": self.node or "", "direction": self.direction,
               "depth": str(self.depth), "as_of": self.as_of_text,
               "since": self.since_text, "until": self.until_text,
               "system": "hide" if self.hide_system else "show", "noise": self.noise,
               "cap": str(self.cap), "q": self.q}
        return {k: v for k, v in out.items() if v}


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadQuery(f"{name} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise BadQuery(f"{name} must lie between {low} and {high}")
    return value


def _time(params: Mapping[str, str], name: str) -> tuple[int | None, str]:
    text = params.get(name, "").strip()
    try:
        return (parse_time(text) if text else None), text
    except TimeError as exc:
        raise BadQuery(f"{name}: {exc}") from None


def parse_query(params: Mapping[str, str], cap: int = DEFAULT_CAP) -> ExploreQuery:
    direction = params.get("direction", "up") or "up"
    if direction not in ("up", "down", "both"):
        raise BadQuery("direction must be up, down or both")
    as_of, as_of_text = _time(params, "as_of")
    since, since_text = _time(params, "since")
    until, until_text = _time(params, "until")
    if since is not None and until is not None and since > until:
        raise BadQuery("since must not lie after until")
    return ExploreQuery(
        node=params.get("node") or None, direction=direction,  # type: ignore[arg-type]
        depth=_int(params, "depth", DEFAULT_DEPTH, 1, MAX_DEPTH), as_of=as_of,
        as_of_text=as_of_text, since=since, since_text=since_text, until=until,
        until_text=until_text, hide_system=params.get("system", "hide") != "show",
        noise=params.get("noise", ""), cap=_int(params, "cap", cap, 10, MAX_CAP),
        q=params.get("q", ""))


def walk(store: GraphStore, root: str, direction: str, depth: int, as_of: int | None,
         since: int | None = None, until: int | None = None
         ) -> tuple[list[LineageNode], list[LineageEdge]]:
    """The lineage of ``root`` in one direction or both, merged, within the time window
    [``since``, ``until``] when one is given (:func:`within`)."""
    nodes: dict[str, LineageNode] = {}
    edges: dict[tuple[str, str, str], LineageEdge] = {}
    directions: tuple[Literal["up", "down"], ...] = (
        ("up", "down") if direction == "both" else (direction,))  # type: ignore[assignment]
    for d in directions:
        result = lineage(store, root, direction=d, depth=depth, as_of=as_of)
        for n in result.nodes:
            nodes.setdefault(n.id, n)
        for e in result.edges:
            edges.setdefault((e.source, e.target, e.kind), e)
    if since is None and until is None:
        return list(nodes.values()), list(edges.values())
    return within(root, list(nodes.values()), list(edges.values()), since, until)


def within(root: str, nodes: list[LineageNode], edges: list[LineageEdge],
           since: int | None, until: int | None
           ) -> tuple[list[LineageNode], list[LineageEdge]]:
    """The lineage whose edges lie within [``since``, ``until``] (an edge's first and last
    time both inside; an open end is unbounded): those edges, and the nodes they still
    connect to ``root`` (the root always stays). A filter after the walk: the walk's
    time-respecting bounds are unchanged, the window only takes edges away."""
    low = since if since is not None else -(2**63)
    high = until if until is not None else 2**63
    kept = [e for e in edges if low <= e.first and e.last <= high]
    around: dict[str, list[str]] = defaultdict(list)
    for e in kept:
        around[e.source].append(e.target)
        around[e.target].append(e.source)
    reached = {root}
    queue = deque([root])
    while queue:
        for m in around[queue.popleft()]:
            if m not in reached:
                reached.add(m)
                queue.append(m)
    return ([n for n in nodes if n.id in reached],
            [e for e in kept if e.source in reached and e.target in reached])


def explore(store: GraphStore, q: ExploreQuery,
            timings: dict[str, float] | None = None) -> Prepared:
    """The filtered, laid-out lineage the query asks for; ``timings`` gets the seconds of
    the walk and of filtering and layout (``walk``, ``layout``)."""
    assert q.node is not None
    t0 = time.perf_counter()
    nodes, edges = walk(store, q.node, q.direction, q.depth, q.as_of, q.since, q.until)
    t1 = time.perf_counter()
    prepared = prepare(nodes, edges, q.filters, root=q.node)
    if timings is not None:
        timings.update(walk=t1 - t0, layout=time.perf_counter() - t1)
    return prepared


class Recent:
    """The last few graphs the explorer built, for the requests that follow a page
    (opening one of its clusters, its script) to reuse instead of walking again; each is
    kept ``seconds`` (a cluster then opens as the page showed it). The page itself always
    walks afresh (``fresh``), so a reload shows what was recorded since."""

    def __init__(self, size: int = 8, seconds: float = 120.0) -> None:
        self.size, self.seconds = size, seconds
        self._items: OrderedDict[tuple[object, ...], tuple[float, Prepared]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(store: GraphStore, q: ExploreQuery) -> tuple[object, ...]:
        return (id(store), q.node, q.direction, q.depth, q.as_of, q.since, q.until,
                q.hide_system, q.noise)

    def explore(self, store: GraphStore, q: ExploreQuery,
                timings: dict[str, float] | None = None, *, fresh: bool = False) -> Prepared:
        """:func:`explore`, from the recent graphs when one answers the same query (unless
        ``fresh``); what is built is kept."""
        key = self._key(store, q)
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if not fresh and hit is not None and now - hit[0] < self.seconds:
                self._items.move_to_end(key)
                return hit[1]
        prepared = explore(store, q, timings)
        with self._lock:
            self._items[key] = (now, prepared)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return prepared


def versions_of(store: GraphStore, p: Prepared, keys: Iterable[str] | None = None,
                as_of: int | None = None) -> dict[str, LatestVersion]:
    """The newest versions of the files of ``p`` (of those among ``keys``, if given)."""
    wanted = p.nodes if keys is None else [k for k in keys if k in p.nodes]
    files = [k for k in wanted if p.nodes[k].kind == "file"]
    return file_versions(store, files, as_of)


def producers(p: Prepared) -> list[ProcessNode]:
    """The processes of the graph, in start order: how its root was made."""
    procs = [n for n in p.nodes.values() if isinstance(n, ProcessNode)]
    return sorted(procs, key=lambda n: (n.start or 0, n.pid or 0, n.id))


def shell_script(root: str, procs: list[ProcessNode]) -> str:
    """The producing processes as a shell script: one ``cd`` and command per process.
    Command lines are the recorded ones (argument boundaries are not kept); comments and
    directories are quoted or stripped of line breaks."""

    def one_line(text: str) -> str:
        return " ".join(text.splitlines())

    lines = ["#!/bin/sh", f"# how {one_line(root)} was made, as recorded by ursprung",
             "# the processes in start order; review before running", "set -e", ""]
    for p in procs:
        lines.append(f"# host {one_line(p.host or '?')}, pid {p.pid}")
        if p.cwd:
            lines.append(f"cd {shlex.quote(p.cwd)}")
        lines.append(one_line(p.cmdline or p.exe or "true"))
        lines.append("")
    return "\n".join(lines)
