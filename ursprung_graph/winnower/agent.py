"""The node's end: epochs of the node's event stream, checked against the global model, and
the delta of each sent to the monitor over the bus.

Each epoch's graph is kept on the node (``archive``: one zstd msgpack file per epoch, with the
state of every vertex) so that the concrete events behind a flagged state or transition can
be pulled later (`drill`); the node's counters and what it has sent are kept in its state
file, so a restarted agent goes on counting where it stopped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import zstandard

from ..ingest.bus import Publisher, Subscription
from ..schema.event import Event
from .abstraction import Abstractor
from .delta import (
    Delta,
    DeltaError,
    NodeState,
    decode_view,
    encode_delta,
    epoch_delta,
)
from .induction import induce, transition_id
from .pgraph import Edge, ProcessFacts, ProvGraph, Vertex, graph_of_events

log = logging.getLogger(__name__)

HEADER_NODE = "winnower-node"
#: Processes whose program the agent remembers across epochs at most (oldest go first).
MAX_PROCESSES = 65536


@dataclass(frozen=True, slots=True)
class Topics:
    """The bus topics of one Winnower deployment: deltas to the monitor, model views back
    to the agents, and messages the monitor could not read."""

    prefix: str = "winnower"

    @property
    def deltas(self) -> str:
        return f"{self.prefix}.deltas"

    @property
    def model(self) -> str:
        return f"{self.prefix}.model"

    @property
    def dead(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def drill(self) -> str:
        return f"{self.prefix}.drill"

    @property
    def drill_replies(self) -> str:
        return f"{self.prefix}.drill.replies"


class EpochGraph(msgspec.Struct, array_like=True):
    """An archived epoch: the graph and the state each vertex was in."""

    epoch: int
    vertices: list[Vertex]
    edges: list[Edge]
    state_of: dict[str, int]


class EpochCutter:
    """Events cut into epochs of ``epoch_ns`` by their time (epoch = ts // epoch_ns). An
    epoch is complete when an event of a later one arrives, or (following a live stream)
    when the clock has passed its end by ``grace_ns``; a late event goes to the open epoch."""

    def __init__(self, epoch_ns: int, grace_ns: int = 2_000_000_000) -> None:
        if epoch_ns <= 0:
            raise ValueError("an epoch must last longer than 0 ns")
        self.epoch_ns = epoch_ns
        self.grace_ns = grace_ns
        self.current: int | None = None
        self.batch: list[Event] = []

    def add(self, events: Iterable[Event]) -> list[tuple[int, list[Event]]]:
        done = []
        for ev in events:
            e = ev.ts // self.epoch_ns
            if self.current is None:
                self.current = e
            if e > self.current:
                done.append((self.current, self.batch))
                self.current, self.batch = e, []
            self.batch.append(ev)
        return done

    def due(self, now_ns: int) -> list[tuple[int, list[Event]]]:
        """The open epoch, if the clock is past its end by the grace time."""
        if self.current is None or now_ns < (self.current + 1) * self.epoch_ns + self.grace_ns:
            return []
        return self.flush()

    def flush(self) -> list[tuple[int, list[Event]]]:
        if self.current is None or not self.batch:
            return []
        out = [(self.current, self.batch)]
        self.current, self.batch = None, []
        return out


class Agent:
    """One node's Winnower agent (see the module docstring)."""

    def __init__(self, node: str, abstractor: Abstractor, *, k: int = 1,
                 state: NodeState | None = None, archive: Path | None = None) -> None:
        self.node = node
        self.abstractor = abstractor
        self.state = state or NodeState(node, k)
        if self.state.k != k:
            raise ValueError(f"the node state is of depth {self.state.k}, not {k}")
        self.archive = archive
        if archive is not None:
            archive.mkdir(parents=True, exist_ok=True)
        #: Program, arguments and directory of processes seen in earlier epochs: a server
        #: that exec'd in epoch 0 still acts in epoch 9, where no event repeats them.
        self.processes: dict[str, ProcessFacts] = {}

    def epoch(self, events: Iterable[Event], epoch: int) -> Delta:
        """The delta of one epoch's events (and its graph archived)."""
        graph = graph_of_events(events, self.processes)
        while len(self.processes) > MAX_PROCESSES:
            del self.processes[next(iter(self.processes))]
        return self.epoch_graph(graph, epoch)

    def epoch_graph(self, graph: ProvGraph, epoch: int) -> Delta:
        induced = induce(graph, self.abstractor, k=self.state.k, origin=self.node, epoch=epoch)
        if self.archive is not None:
            self._archive(graph, induced.state_of, epoch)
        return epoch_delta(self.state, induced.model, epoch)

    def _archive(self, graph: ProvGraph, state_of: dict[str, int], epoch: int) -> None:
        """Write the epoch's graph; merged with what is archived of that epoch already (a
        log read in two runs may close one epoch twice; merging the same part again
        changes nothing)."""
        assert self.archive is not None
        path = self.archive / f"{epoch}.epoch"
        vertices, edges, states = dict(graph.vertices), dict(graph.edges), dict(state_of)
        if path.exists():
            old = _read_epoch(path)
            for v in old.vertices:
                vertices.setdefault(v.key, v)
            for e in old.edges:
                edges.setdefault((e.src, e.rel, e.dst), e)
            for key, sid in old.state_of.items():
                states.setdefault(key, sid)
        data = msgspec.msgpack.encode(EpochGraph(epoch, list(vertices.values()),
                                                 list(edges.values()), states))
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(zstandard.ZstdCompressor(level=3).compress(data))
        os.replace(tmp, path)

    def take_views(self, sub: Subscription, timeout: float = 0.0) -> int:
        """Apply the model views the monitor has sent; how many."""
        n = 0
        for msg in sub.poll(100, timeout):
            if msg.value is None:
                continue
            try:
                view = decode_view(msg.value)
            except DeltaError as exc:
                log.warning("ignoring a message on %s: %s", msg.topic, exc)
                continue
            if view.k == self.state.k:
                self.state.learn(view)
                n += 1
        return n

    def send(self, pub: Publisher, delta: Delta, topic: str) -> int:
        """Publish ``delta`` (keyed by node, so a node's deltas stay in order); its size."""
        data = encode_delta(delta)
        pub.publish(topic, self.node.encode(), data, {HEADER_NODE: self.node.encode()})
        pub.flush()
        return len(data)


# --------------------------------------------------------------------------- drill


class Found(msgspec.Struct):
    """A concrete vertex or edge behind a state or transition id, from an archived epoch."""

    epoch: int
    id: int
    kind: str  # state | transition
    vertex: Vertex | None = None
    edge: Edge | None = None
    source: Vertex | None = None
    target: Vertex | None = None


_epoch_dec = msgspec.msgpack.Decoder(EpochGraph)


def _read_epoch(path: Path) -> EpochGraph:
    return _epoch_dec.decode(zstandard.ZstdDecompressor().decompress(path.read_bytes()))


def drill(archive: Path, ids: set[int], epochs_wanted: set[int] | None = None) -> list[Found]:
    """Every vertex (state id in ``ids``) and edge (transition id in ``ids``) of the node's
    archived epochs."""
    found: list[Found] = []
    paths = sorted(archive.glob("*.epoch"), key=lambda p: int(p.stem))
    for path in paths:
        if epochs_wanted is not None and int(path.stem) not in epochs_wanted:
            continue
        eg = _read_epoch(path)
        by_key = {v.key: v for v in eg.vertices}
        for v in eg.vertices:
            sid = eg.state_of.get(v.key)
            if sid in ids:
                found.append(Found(eg.epoch, sid, "state", vertex=v))
        for e in eg.edges:
            src, dst = eg.state_of.get(e.src), eg.state_of.get(e.dst)
            if src is None or dst is None:
                continue
            tid = transition_id(src, e.rel, dst)
            if tid in ids:
                found.append(Found(eg.epoch, tid, "transition", edge=e,
                                   source=by_key.get(e.src), target=by_key.get(e.dst)))
    return found
