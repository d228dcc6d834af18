"""From query results to what the browser draws: filtered, laid out, clustered.

Edges are drawn in the direction data flows (a file a process READ points at the process),
so sources of data lie left and results right. The layout is computed here, not by the
browser's physics: nodes are layered by their longest data path from a source (cycles are
broken where the walk meets them), ordered inside a layer by the mean position of what feeds
them, and a tall layer is wrapped into several columns. Past ``cap`` nodes, the nodes are
clustered by host and kind (the root stays on its own); the browser opens a cluster by
asking for its members (:func:`members`), which keep their place in the full layout.

Everything here is data: the names stay text, and the templates and the browser script show
them as text.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from ...query.classify import Classifier, matcher
from ...query.explore import LatestVersion
from ...query.types import EndpointNode, FileNode, LineageEdge, LineageNode, PipeNode, ProcessNode
from ...schema import graph as g

#: Default node count past which a graph is clustered (the explore page's ``cap``).
DEFAULT_CAP = 1000

_LAYER_GAP = 260
_COLUMN_GAP = 200
_ROW_GAP = 56
#: Nodes per column before a layer wraps into another column.
_COLUMN_ROWS = 40
#: Space between the bands of two hosts.
_BAND_GAP = 90

#: Relationship types whose data flows from the edge's target to its source.
_REVERSED = {g.READ.name, g.EXECUTED.name}


class Info(msgspec.Struct, frozen=True, array_like=True):
    """One line of a node's hover details."""

    name: str
    value: str


class VisNode(msgspec.Struct, frozen=True, omit_defaults=True):
    """A node as the browser script takes it. ``t``: when it first took part (epoch ns),
    for the time slider; ``members``: how many nodes a cluster holds; ``mark``: the
    comparison's colour class (same, changed, only_a, only_b)."""

    id: str
    label: str
    kind: str
    x: int
    y: int
    host: str | None = None
    t: int | None = None
    info: list[Info] = msgspec.field(default_factory=list)
    cluster: str | None = None
    members: int | None = None
    root: bool = False
    mark: str | None = None


class VisEdge(msgspec.Struct, frozen=True, omit_defaults=True):
    """An edge in the direction of data (``from`` -> ``to``); ``from_cluster`` and
    ``to_cluster`` name the clusters of its ends when the graph is clustered."""

    id: str
    source: str = msgspec.field(name="from")
    target: str = msgspec.field(name="to")
    kind: str = ""
    first: int | None = None
    last: int | None = None
    from_cluster: str | None = None
    to_cluster: str | None = None


class GraphView(msgspec.Struct, frozen=True):
    nodes: list[VisNode]
    edges: list[VisEdge]
    total: int
    hidden: int
    clustered: bool
    notice: str | None
    tmin: int | None
    tmax: int | None
    hosts: list[str]


@dataclass(frozen=True, slots=True)
class Filters:
    """What to leave out: the system and environment files (``hide_system``) and nodes
    whose path, command line or program matches one of ``noise`` (fnmatch patterns)."""

    hide_system: bool = False
    noise: tuple[str, ...] = ()
    classifier: Classifier = field(default_factory=Classifier)

    @staticmethod
    def parse(hide_system: bool, noise: str) -> Filters:
        patterns = tuple(p.strip() for p in noise.replace("\n", ",").split(",") if p.strip())
        return Filters(hide_system=hide_system, noise=patterns)

    def hides(self, node: LineageNode) -> bool:
        if self.hide_system and isinstance(node, FileNode) and node.path \
                and self.classifier.environment(node.path):
            return True
        if not self.noise:
            return False
        noise = matcher(self.noise)
        return any(noise(t) for t in _texts(node))


def _texts(node: LineageNode) -> list[str]:
    if isinstance(node, FileNode):
        return [node.path] if node.path else []
    if isinstance(node, ProcessNode):
        return [t for t in (node.cmdline, node.exe) if t]
    if isinstance(node, EndpointNode):
        return [t for t in (node.address,) if t]
    return []


def flow(edge: LineageEdge) -> tuple[str, str]:
    """The edge's ends in the direction its data flows."""
    if edge.kind in _REVERSED:
        return edge.target, edge.source
    return edge.source, edge.target


def label_of(node: LineageNode) -> str:
    """A short label: a file's base name, a process's program and pid."""
    if isinstance(node, FileNode):
        path = node.path or node.id
        base = path.rstrip("/").rsplit("/", 1)[-1]
        return base or path
    if isinstance(node, ProcessNode):
        prog = (node.exe or (node.cmdline or "").split(" ", 1)[0] or "process")
        return f"{prog.rsplit('/', 1)[-1]} [{node.pid}]"
    if isinstance(node, EndpointNode):
        if node.port is not None:
            return f"{node.address}:{node.port}"
        return node.address or "socket"
    return "pipe"


def when(ns: int | None) -> str:
    if ns is None:
        return ""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def info_of(node: LineageNode, version: LatestVersion | None = None) -> list[Info]:
    """The hover details of a node."""
    out = [Info("kind", node.kind)]

    def add(name: str, value: object) -> None:
        if value is not None and value != "":
            out.append(Info(name, str(value)))

    if isinstance(node, ProcessNode):
        add("command", node.cmdline)
        add("program", node.exe)
        add("host", node.host)
        add("pid", node.pid)
        add("cwd", node.cwd)
        add("start", when(node.start))
        add("end", when(node.end))
        add("exit code", node.exit_code)
    elif isinstance(node, FileNode):
        add("path", node.path)
        add("host", node.host)
        add("file system", node.fs)
        if version is not None:
            add("size", version.size)
            add("sha256", version.sha256)
            add("mtime", when(version.mtime))
    elif isinstance(node, EndpointNode):
        add("family", node.family)
        add("address", node.address)
        add("port", node.port)
        add("host", node.host)
    elif isinstance(node, PipeNode):
        add("host", node.host)
    add("key", node.id)
    return out


def host_of(node: LineageNode) -> str:
    if isinstance(node, FileNode) and node.fs and not node.host:
        return f"fs:{node.fs}"
    return node.host or "?"


def cluster_id(node: LineageNode) -> str:
    return f"cluster:{host_of(node)}:{node.kind}"


def layout(ids: Sequence[str], links: Iterable[tuple[str, str]],
           bands: Mapping[str, str] | None = None) -> dict[str, tuple[int, int]]:
    """Positions (x, y) for ``ids``: layers by longest data path, left to right; with
    ``bands`` (id -> a host), each host's nodes in a horizontal band of their own across
    every layer, so a host is one box."""
    succ: dict[str, list[str]] = defaultdict(list)
    indeg = dict.fromkeys(ids, 0)
    for a, b in links:
        if a in indeg and b in indeg and a != b:
            succ[a].append(b)
            indeg[b] += 1
    level = _levels(ids, succ, indeg)
    preds: dict[str, list[str]] = defaultdict(list)
    for a, bs in succ.items():
        for b in bs:
            preds[b].append(a)
    band_of = {i: (bands or {}).get(i, "") for i in ids}
    layers: dict[int, list[str]] = defaultdict(list)
    for i in ids:
        layers[level[i]].append(i)
    columns = {lv: max(1, math.ceil(len(layer) / _COLUMN_ROWS)) for lv, layer in layers.items()}
    counts: dict[tuple[int, str], int] = defaultdict(int)
    for i in ids:
        counts[(level[i], band_of[i])] += 1
    height: dict[str, int] = defaultdict(int)  # rows of each band: its tallest layer
    for (lv, band), n in counts.items():
        height[band] = max(height[band], math.ceil(n / columns[lv]))
    top: dict[str, float] = {}
    y = 0.0
    for band in sorted(height):
        top[band] = y
        y += height[band] * _ROW_GAP + (_BAND_GAP if bands else 0)
    middle = (y - (_BAND_GAP if bands else 0) - _ROW_GAP) / 2
    pos: dict[str, tuple[int, int]] = {}
    x = 0
    for lv in sorted(layers):

        def weight(n: str) -> float:
            ys = [pos[p][1] for p in preds[n] if p in pos]
            return sum(ys) / len(ys) if ys else 0.0

        cols = columns[lv]
        by_band: dict[str, list[str]] = defaultdict(list)
        for key in layers[lv]:
            by_band[band_of[key]].append(key)
        for band, keys in by_band.items():
            keys.sort(key=weight)
            rows = math.ceil(len(keys) / cols)
            offset = top[band] + (height[band] - rows) * _ROW_GAP / 2
            for rank, key in enumerate(keys):
                col, row = divmod(rank, rows)
                pos[key] = (x + col * _COLUMN_GAP, int(offset + row * _ROW_GAP - middle))
        x += (cols - 1) * _COLUMN_GAP + _LAYER_GAP
    return pos


def _levels(ids: Sequence[str], succ: Mapping[str, list[str]],
            indeg: Mapping[str, int]) -> dict[str, int]:
    """Each node's longest data path from a source (a cycle is broken where met)."""
    level = dict.fromkeys(ids, 0)
    queue = deque(i for i in ids if indeg[i] == 0)
    done: set[str] = set()
    remaining = dict(indeg)
    pending = iter(ids)
    while len(done) < len(ids):
        if not queue:  # a cycle: take the first node not done yet
            queue.append(next(i for i in pending if i not in done))
        n = queue.popleft()
        if n in done:
            continue
        done.add(n)
        for m in succ[n]:
            if m in done:
                continue
            level[m] = max(level[m], level[n] + 1)
            remaining[m] -= 1
            if remaining[m] <= 0:
                queue.append(m)
    return level


@dataclass(slots=True)
class Prepared:
    """A graph after filtering and layout, before clustering."""

    nodes: dict[str, LineageNode]
    edges: list[LineageEdge]
    pos: dict[str, tuple[int, int]]
    hidden: int
    root: str | None


def prepare(nodes: Sequence[LineageNode], edges: Sequence[LineageEdge], filters: Filters,
            root: str | None = None) -> Prepared:
    keep = {n.id: n for n in nodes if n.id == root or not filters.hides(n)}
    kept_edges = [e for e in edges if e.source in keep and e.target in keep]
    ids = sorted(keep, key=lambda k: (keep[k].kind, k))
    bands = {k: host_of(n) for k, n in keep.items()}
    return Prepared(keep, kept_edges, layout(ids, (flow(e) for e in kept_edges), bands),
                    len(nodes) - len(keep), root)


def _first_seen(edges: Sequence[LineageEdge]) -> dict[str, int]:
    first: dict[str, int] = {}
    for e in edges:
        for n in (e.source, e.target):
            if n not in first or e.first < first[n]:
                first[n] = e.first
    return first


def _vis_edge(i: int, e: LineageEdge, clusters: dict[str, str] | None = None) -> VisEdge:
    a, b = flow(e)
    return VisEdge(id=f"e{i}:{a}>{b}:{e.kind}", source=a, target=b, kind=e.kind,
                   first=e.first, last=e.last,
                   from_cluster=clusters.get(a) if clusters else None,
                   to_cluster=clusters.get(b) if clusters else None)


def _vis_node(n: LineageNode, p: Prepared, first: dict[str, int],
              versions: dict[str, LatestVersion], marks: dict[str, str],
              clusters: dict[str, str] | None = None) -> VisNode:
    x, y = p.pos[n.id]
    start = n.start if isinstance(n, ProcessNode) else None
    return VisNode(id=n.id, label=label_of(n), kind=n.kind, x=x, y=y, host=host_of(n),
                   t=start if start is not None else first.get(n.id),
                   info=info_of(n, versions.get(n.id)), root=n.id == p.root,
                   cluster=clusters.get(n.id) if clusters else None, mark=marks.get(n.id))


def _clusters(p: Prepared) -> dict[str, str]:
    return {k: cluster_id(n) for k, n in p.nodes.items() if k != p.root}


def view(p: Prepared, *, cap: int = DEFAULT_CAP,
         versions: dict[str, LatestVersion] | None = None,
         marks: dict[str, str] | None = None) -> GraphView:
    """The graph to draw: every node, or past ``cap`` nodes one node per host and kind."""
    versions = versions or {}
    marks = marks or {}
    first = _first_seen(p.edges)
    times = [t for e in p.edges for t in (e.first, e.last)]
    hosts = sorted({host_of(n) for n in p.nodes.values()})
    tmin, tmax = (min(times), max(times)) if times else (None, None)
    total = len(p.nodes)
    if total <= cap:
        return GraphView(
            nodes=[_vis_node(n, p, first, versions, marks) for n in p.nodes.values()],
            edges=[_vis_edge(i, e) for i, e in enumerate(p.edges)], total=total,
            hidden=p.hidden, clustered=False, notice=None, tmin=tmin, tmax=tmax, hosts=hosts)
    clusters = _clusters(p)
    groups: dict[str, list[str]] = defaultdict(list)
    for k, c in clusters.items():
        groups[c].append(k)
    nodes: list[VisNode] = []
    if p.root is not None and p.root in p.nodes:
        nodes.append(_vis_node(p.nodes[p.root], p, first, versions, marks))
    places = _cluster_places(p, groups)
    for c, keys in sorted(groups.items()):
        sample = p.nodes[keys[0]]
        ts = [first[k] for k in keys if k in first]
        host = host_of(sample)
        x, y = places[c]
        nodes.append(VisNode(
            id=c, label=f"{len(keys)} {_PLURAL.get(sample.kind, sample.kind)} on {host}",
            kind=sample.kind, x=x, y=y, host=host, t=min(ts) if ts else None,
            members=len(keys),
            info=[Info("cluster", f"{len(keys)} {sample.kind} nodes on host {host}"),
                  Info("open", "click to open")]))
    seen: set[tuple[str, str]] = set()
    edges: list[VisEdge] = []
    for e in p.edges:
        a, b = flow(e)
        ca, cb = clusters.get(a, a), clusters.get(b, b)
        if ca == cb or (ca, cb) in seen:
            continue
        seen.add((ca, cb))
        edges.append(VisEdge(id=f"c:{ca}>{cb}", source=ca, target=cb, kind="clustered",
                             first=e.first, last=e.last))
    notice = (f"{total} nodes are more than the cap of {cap}: they are clustered by host "
              f"and kind ({len(groups)} clusters). Click a cluster to open it.")
    return GraphView(nodes=nodes, edges=edges, total=total, hidden=p.hidden, clustered=True,
                     notice=notice, tmin=tmin, tmax=tmax, hosts=hosts)


_PLURAL = {"process": "processes", "file": "files", "pipe": "pipes", "endpoint": "sockets"}
#: Clusters whose centres lie closer than this (in x) share a column and are spread in y.
_CLUSTER_GAP = 110


def _cluster_places(p: Prepared, groups: dict[str, list[str]]) -> dict[str, tuple[int, int]]:
    """Each cluster at the centre of its members (so in its host's band), clusters of one
    column pushed apart downwards where they would overlap."""
    centres: dict[str, tuple[int, int]] = {}
    for c, keys in groups.items():
        centres[c] = (sum(p.pos[k][0] for k in keys) // len(keys),
                      sum(p.pos[k][1] for k in keys) // len(keys))
    columns: list[list[str]] = []
    for c in sorted(centres, key=lambda c: centres[c]):
        if columns and abs(centres[columns[-1][0]][0] - centres[c][0]) < _CLUSTER_GAP * 2:
            columns[-1].append(c)
        else:
            columns.append([c])
    places: dict[str, tuple[int, int]] = {}
    for column in columns:
        column.sort(key=lambda c: (centres[c][1], c))
        below = -math.inf
        for c in column:
            y = max(centres[c][1], below + _CLUSTER_GAP)
            places[c] = (centres[c][0], int(y))
            below = y
    return places


def step(p: Prepared, *, versions: dict[str, LatestVersion] | None = None) -> GraphView:
    """Every node and edge of ``p`` (one expansion step), each node and edge end also named
    by the cluster it would belong to, so that the browser attaches what lies in a cluster
    it has not opened to that cluster."""
    versions = versions or {}
    clusters = {k: cluster_id(n) for k, n in p.nodes.items()}
    first = _first_seen(p.edges)
    nodes = [_vis_node(n, p, first, versions, {}, clusters) for n in p.nodes.values()]
    edges = [_vis_edge(i, e, clusters) for i, e in enumerate(p.edges)]
    return GraphView(nodes=nodes, edges=edges, total=len(nodes), hidden=p.hidden,
                     clustered=False, notice=None, tmin=None, tmax=None,
                     hosts=sorted({n.host or "?" for n in nodes}))


def members(p: Prepared, cluster: str, *,
            versions: dict[str, LatestVersion] | None = None) -> GraphView:
    """The nodes of one cluster, at their places in the full layout, and every edge that
    touches them (each end also named by its cluster, for the browser to attach)."""
    versions = versions or {}
    clusters = _clusters(p)
    keys = {k for k, c in clusters.items() if c == cluster}
    first = _first_seen(p.edges)
    nodes = [_vis_node(p.nodes[k], p, first, versions, {}, clusters) for k in sorted(keys)]
    edges = [_vis_edge(i, e, clusters) for i, e in enumerate(p.edges)
             if e.source in keys or e.target in keys]
    return GraphView(nodes=nodes, edges=edges, total=len(keys), hidden=0, clustered=False,
                     notice=None, tmin=None, tmax=None,
                     hosts=sorted({n.host or "?" for n in nodes}))
