"""Replaying a recorded cluster (`cluster_sim.SimLogs`) through agents and a monitor, epoch
by epoch, as they would run live: in epoch e every agent checks its epoch against the global
model as the monitor sent it after epoch e-1, and the monitor merges the epoch's deltas
(decoded from the bytes that were sent). Counts bytes, keeps the model after each epoch, and
knows the ground truth of the attacks (the attacking shell's process subtree)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import zstandard

from tests.winnower.cluster_sim import ATTACKER, PAYLOAD_PORT, SimLogs
from ursprung_graph.collectors.auditd.source import normalize_file
from ursprung_graph.schema.event import Event
from ursprung_graph.winnower.abstraction import Abstractor
from ursprung_graph.winnower.agent import Agent
from ursprung_graph.winnower.anomalies import Anomaly
from ursprung_graph.winnower.delta import decode_delta, encode_delta
from ursprung_graph.winnower.model import Model
from ursprung_graph.winnower.monitor import Monitor
from ursprung_graph.winnower.pgraph import EXEC, PROCESS, ProvGraph, graph_of_events

Triple = tuple[str, str, str]
_TS = re.compile(rb"msg=audit\((\d+)\.(\d+):")


@dataclass(slots=True)
class Replayed:
    epochs: int
    raw: dict[str, list[int]]  # replica -> raw log bytes per epoch
    sent: dict[str, list[int]]  # replica -> delta bytes per epoch
    models: list[Model]  # the global model after each epoch
    attack_edges: dict[int, dict[str, set[Triple]]] = field(default_factory=dict)
    events: int = 0

    def raw_total(self) -> int:
        return sum(sum(v) for v in self.raw.values())

    def sent_total(self) -> int:
        return sum(sum(v) for v in self.sent.values())


def _raw_by_epoch(path: str, logs: SimLogs, epochs: int) -> tuple[list[int], list[bytes]]:
    sizes = [0] * epochs
    chunks: list[list[bytes]] = [[] for _ in range(epochs)]
    with open(path, "rb") as fh:
        for line in fh:
            m = _TS.search(line)
            e = logs.epoch_of(int(m.group(1)) * 10**9 + int(m.group(2)) * 10**6) if m else 0
            sizes[e] += len(line)
            chunks[e].append(line)
    return sizes, [b"".join(c) for c in chunks]


def zstd19(data: bytes) -> int:
    return len(zstandard.ZstdCompressor(level=19).compress(data)) if data else 0


def attack_triples(graph: ProvGraph, abstractor: Abstractor) -> set[Triple]:
    """Label-level edges of the attack: into the shell that opened /dev/tcp to the attacker,
    and out of it and of every process it forked."""
    marker = f"/dev/tcp/{ATTACKER}/{PAYLOAD_PORT}"
    roots = {k for k, v in graph.vertices.items()
             if v.kind == PROCESS and any(marker in a for a in v.argv)}
    children: dict[str, list[str]] = defaultdict(list)
    for e in graph.edges.values():
        if e.rel in ("FORKED", EXEC):
            children[e.src].append(e.dst)
    subtree, todo = set(roots), list(roots)
    while todo:
        for c in children[todo.pop()]:
            if c not in subtree:
                subtree.add(c)
                todo.append(c)
    label = {k: abstractor.label(v) for k, v in graph.vertices.items()}
    return {(label[e.src], e.rel, label[e.dst]) for e in graph.edges.values()
            if e.src in subtree or (e.dst in roots and e.rel == "FORKED")}


def replay(logs: SimLogs, abstractor: Abstractor, *, k: int = 1) -> Replayed:
    epochs = len(logs.bounds) - 1
    events: dict[str, list[list[Event]]] = {}
    raw: dict[str, list[int]] = {}
    total = 0
    for name, path in logs.logs.items():
        per = [[] for _ in range(epochs)]
        for ev in normalize_file(str(path), name):
            if isinstance(ev, Event):
                per[logs.epoch_of(ev.ts)].append(ev)
                total += 1
        events[name] = per
        raw[name] = _raw_by_epoch(str(path), logs, epochs)[0]
    agents = {name: Agent(name, abstractor, k=k) for name in logs.logs}
    monitor = Monitor("cluster", None, k=k)
    out = Replayed(epochs, raw, {name: [] for name in logs.logs}, [], events=total)
    for e in range(epochs):
        view = monitor.order.view(monitor.model.k, e - 1)
        wire = []
        for name, agent in agents.items():
            agent.state.learn(view)
            graph = graph_of_events(events[name][e], agent.processes)
            if name in logs.attacks.get(e, []):
                out.attack_edges.setdefault(e, {})[name] = attack_triples(graph, abstractor)
            data = encode_delta(agent.epoch_graph(graph, e))  # what Agent.epoch does
            out.sent[name].append(len(data))
            wire.append(data)
        monitor.apply([decode_delta(d) for d in wire])
        out.models.append(monitor.model.copy())
    return out


def zstd_baselines(logs: SimLogs) -> tuple[int, int]:
    """Raw logs compressed with zstd -19: each replica's whole log at once (the best case
    for compression), and each replica's epochs one by one (what shipping per epoch costs)."""
    whole = per_epoch = 0
    epochs = len(logs.bounds) - 1
    for path in logs.logs.values():
        data = path.read_bytes()
        whole += zstd19(data)
        per_epoch += sum(zstd19(c) for c in _raw_by_epoch(str(path), logs, epochs)[1])
    return whole, per_epoch


def triple(a: Anomaly) -> Triple:
    return (a.source, a.rel, a.target)


def required(triples: set[Triple]) -> dict[str, Triple]:
    """The three attack edges the issue names, among an attack's label-level edges."""
    found = {}
    for src, rel, dst in triples:
        if rel == "FORKED" and "sim_server.py" in src and dst.startswith("proc /usr/bin/bash"):
            found["server spawns shell"] = (src, rel, dst)
        if rel == "CONNECTED" and dst == f"inet {ATTACKER}:{PAYLOAD_PORT}" and "bash" in src:
            found["shell connects out"] = (src, rel, dst)
        if rel == "EXECUTED" and dst.startswith("file /tmp/<tmp>"):
            found["downloaded file executed"] = (src, rel, dst)
    return found
