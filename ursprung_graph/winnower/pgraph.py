"""The provenance graph Winnower learns from: vertices with their concrete attributes and
directed edges of the graph model's types, from normalized events (an agent's epoch) or read
from the store (`graph`).

Vertices are keyed as the store keys them (`schema.graph`), so an epoch graph and the stored
graph name the same process or file alike. Edges point from the acting process to what it
acted on (and parent -> child for FORKED, old name -> new name for RENAMED_TO/LINKED_TO): the
direction in which the model's structure is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from ..schema import graph as g
from ..schema.event import Endpoint, Event, FileRef, Kind, ProcessInfo

PROCESS = "process"
FILE = "file"
PIPE = "pipe"
ENDPOINT = "endpoint"
#: A process ran a new program: from its vertex before the exec to the one after.
EXEC = "EXEC"


class Vertex(msgspec.Struct, omit_defaults=True):
    """One vertex with what abstraction may look at (``kind`` decides which fields apply)."""

    key: str
    kind: str
    host: str = ""
    exe: str | None = None
    argv: list[str] = msgspec.field(default_factory=list)
    cwd: str | None = None
    pid: int | None = None
    path: str | None = None
    family: str | None = None
    address: str | None = None
    port: int | None = None
    first: int = 0  # epoch ns when first seen


class Edge(msgspec.Struct, frozen=True, array_like=True):
    src: str
    rel: str
    dst: str
    first: int = 0


@dataclass(slots=True)
class ProvGraph:
    """Vertices by key and edges (at most one per (src, rel, dst), with the earliest time)."""

    vertices: dict[str, Vertex] = field(default_factory=dict)
    edges: dict[tuple[str, str, str], Edge] = field(default_factory=dict)

    def add_vertex(self, v: Vertex) -> Vertex:
        known = self.vertices.get(v.key)
        if known is None:
            self.vertices[v.key] = v
            return v
        if v.first and (not known.first or v.first < known.first):
            known.first = v.first
        return known

    def add_edge(self, src: str, rel: str, dst: str, ts: int = 0) -> None:
        known = self.edges.get((src, rel, dst))
        if known is None or (ts and ts < known.first):
            self.edges[(src, rel, dst)] = Edge(src, rel, dst, ts)

    def out_edges(self) -> dict[str, list[Edge]]:
        out: dict[str, list[Edge]] = {k: [] for k in self.vertices}
        for e in self.edges.values():
            if e.src in out and e.dst in self.vertices:
                out[e.src].append(e)
        return out


_REL_OF_KIND = {
    Kind.READ: g.READ.name, Kind.WRITE: g.WROTE.name, Kind.UNLINK: g.DELETED.name,
    Kind.EXEC: g.EXECUTED.name, Kind.CONNECT: g.CONNECTED.name, Kind.ACCEPT: g.ACCEPTED.name,
    Kind.BIND: g.BOUND.name, Kind.PIPE_READ: g.READ_PIPE.name,
    Kind.PIPE_WRITE: g.WROTE_PIPE.name, Kind.RENAME: g.RENAMED_TO.name,
    Kind.LINK: g.LINKED_TO.name,
}


ProcessFacts = tuple[str | None, list[str], str | None]  # exe, argv, cwd


class EventGraphBuilder:
    """Folds normalized events into a `ProvGraph`.

    A process is one vertex per program it ran: an exec after an exec starts a new vertex
    (``KEY#N``), linked from the previous one by an ``EXEC`` edge, so that a shell that
    execs its last command is still a shell in the graph. What a child inherited at fork is
    its program only until it execs (a vfork child execs before its parent's clone record
    is written, so the fork can come later in the stream than the exec). ``known`` maps
    process keys to the program of their latest vertex, from earlier epochs, and is updated.
    """

    def __init__(self, known: dict[str, ProcessFacts] | None = None) -> None:
        self.graph = ProvGraph()
        self.known = known if known is not None else {}
        self._current: dict[str, str] = {}  # process key -> key of its current vertex
        self._images: dict[str, int] = {}  # process key -> execs seen (vertices made - 1)
        self.events = 0

    def add_all(self, events: Iterable[Event]) -> ProvGraph:
        for ev in events:
            self.add(ev)
        for key, current in self._current.items():
            v = self.graph.vertices[current]
            if v.exe is not None or v.argv:
                self.known.pop(key, None)
                self.known[key] = (v.exe, v.argv, v.cwd)
        return self.graph

    def add(self, ev: Event) -> None:
        self.events += 1
        host, ts, kind = ev.host, ev.ts, ev.kind
        if kind is Kind.EXEC:
            proc = self._exec(host, ev.proc, ts)
        else:
            proc = self._process(host, ev.proc, ts)
        if kind is Kind.FORK and ev.child is not None:
            child = self._process(host, ev.child, ts, first_image=True)
            self.graph.add_edge(proc, g.FORKED.name, child, ts)
        elif kind in (Kind.RENAME, Kind.LINK):
            if ev.file is not None and ev.dst is not None:
                self.graph.add_edge(self._file(host, ev.file, ts), _REL_OF_KIND[kind],
                                    self._file(host, ev.dst, ts), ts)
        elif kind in (Kind.PIPE_READ, Kind.PIPE_WRITE):
            if ev.pipe is not None:
                key = g.pipe_key(host, ev.pipe)
                self.graph.add_vertex(Vertex(key, PIPE, host=host, first=ts))
                self.graph.add_edge(proc, _REL_OF_KIND[kind], key, ts)
        elif kind in (Kind.CONNECT, Kind.ACCEPT, Kind.BIND):
            if ev.peer is not None:
                self.graph.add_edge(proc, _REL_OF_KIND[kind], self._endpoint(host, ev.peer, ts),
                                    ts)
        elif kind in _REL_OF_KIND and ev.file is not None:
            self.graph.add_edge(proc, _REL_OF_KIND[kind], self._file(host, ev.file, ts), ts)

    def _process(self, host: str, info: ProcessInfo, ts: int, *,
                 first_image: bool = False) -> str:
        """The vertex an event of ``info`` acts as (a forked child: its first vertex)."""
        key = g.process_key(host, info.pid, info.start)
        current = self._current.get(key)
        if current is None:
            current = self._current[key] = key
            v = self.graph.add_vertex(Vertex(key, PROCESS, host=host, pid=info.pid, first=ts))
            if info.exe is not None or info.argv is not None:
                v.exe, v.argv, v.cwd = info.exe, list(info.argv or []), info.cwd
            elif key in self.known:
                exe, argv, cwd = self.known[key]
                v.exe, v.argv, v.cwd = exe, list(argv), cwd
        return key if first_image else current

    def _exec(self, host: str, info: ProcessInfo, ts: int) -> str:
        key = self._process(host, info, ts)
        base = g.process_key(host, info.pid, info.start)
        n = self._images.get(base)
        if n is None:  # the first exec seen: it names the vertex, whatever was inherited
            self._images[base] = 0
            v = self.graph.vertices[key]
        else:
            self._images[base] = n + 1
            new = f"{base}#{n + 1}"
            v = self.graph.add_vertex(Vertex(new, PROCESS, host=host, pid=info.pid, first=ts))
            self.graph.add_edge(key, EXEC, new, ts)
            self._current[base] = key = new
        v.exe, v.argv, v.cwd = info.exe, list(info.argv or []), info.cwd
        return key

    def _file(self, host: str, ref: FileRef, ts: int) -> str:
        key = g.file_key(host, ref)
        self.graph.add_vertex(Vertex(key, FILE, host=host, path=ref.path, first=ts))
        return key

    def _endpoint(self, host: str, peer: Endpoint, ts: int) -> str:
        key = g.endpoint_key(host, peer)
        self.graph.add_vertex(Vertex(key, ENDPOINT, host=host, family=peer.family,
                                     address=peer.address, port=peer.port, first=ts))
        return key


def graph_of_events(events: Iterable[Event],
                    known: dict[str, ProcessFacts] | None = None) -> ProvGraph:
    return EventGraphBuilder(known).add_all(events)
