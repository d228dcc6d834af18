"""Normalized events -> idempotent graph upserts.

A batch of events is folded into rows first (one row per node and per edge, with the min of
first-seen and the max of last-seen times), so a busy log in which a shell opens the same
library a thousand times costs one row. Each row kind has one ``UNWIND $rows ... MERGE``
statement whose updates are idempotent: replaying a batch, in any order relative to others,
leaves the graph unchanged.
"""

from __future__ import annotations

import operator
import posixpath
from typing import Any

from ..schema import graph as g
from ..schema.event import DeadLetter, Event, Kind
from ..store.cypher import Cypher
from .gaps import GapRows
from .rows import chunked, chunked_groups
from .runs import RunRows
from .spans import FILE_FIELDS, merge_file, on_merge, widen

UPSERT_PROCESSES = Cypher(
    "UNWIND $rows AS r "
    "MERGE (h:Host {name: r.host}) "
    "MERGE (p:Process {key: r.key}) "
    f"{on_merge('p', 'p.host = r.host, p.pid = r.pid, p.start = r.start')} "
    f"MERGE (p)-[:{g.RAN_ON.name}]->(h)"
)

#: The program and command line of a process change at exec: the latest one wins, by
#: (time, exec before inherited-at-fork, order in the source), so that two facts of one
#: millisecond are ordered the same whichever batch comes first.
UPDATE_PROCESS_INFO = Cypher(
    "UNWIND $rows AS r "
    "MATCH (p:Process {key: r.key}) "
    "WITH p, r WHERE p.info_ts IS NULL OR r.info_ts > p.info_ts OR (r.info_ts = p.info_ts "
    "AND (r.info_prio > p.info_prio OR (r.info_prio = p.info_prio "
    "AND r.info_seq >= p.info_seq))) "
    "SET p.info_ts = r.info_ts, p.info_prio = r.info_prio, p.info_seq = r.info_seq, "
    "p.exe = r.exe, p.argv = r.argv, p.cmdline = r.cmdline, "
    "p.cwd = r.cwd, p.uid = r.uid, p.euid = r.euid, p.ppid = r.ppid"
)

UPDATE_PROCESS_END = Cypher(
    "UNWIND $rows AS r "
    "MATCH (p:Process {key: r.key}) "
    "WITH p, r WHERE p.end IS NULL OR r.end >= p.end "
    "SET p.end = r.end, p.exit_code = r.exit_code"
)

UPSERT_FILES = Cypher(
    "UNWIND $rows AS r "
    + merge_file("f", {name: f"r.{name}" for name in ("key", *FILE_FIELDS, "first", "last")})
)

UPSERT_PIPES = Cypher(
    "UNWIND $rows AS r "
    "MERGE (x:Pipe {key: r.key}) "
    f"{on_merge('x', 'x.host = r.host, x.id = r.id')}"
)

UPSERT_ENDPOINTS = Cypher(
    "UNWIND $rows AS r "
    "MERGE (x:Endpoint {key: r.key}) "
    + on_merge("x", "x.host = r.host, x.family = r.family, x.address = r.address, "
                "x.port = r.port")
)

UPSERT_DEAD_LETTERS = Cypher(
    "UNWIND $rows AS r "
    "MERGE (d:DeadLetter {key: r.key}) "
    "ON CREATE SET d.source = r.source, d.reason = r.reason, d.raw = r.raw, "
    "d.where = r.where, d.host = r.host"
)


#: Edges from a process to a file carry the file: each edge is ``[file key, first, last,
#: path, host, fs, name, the file's first, the file's last]`` and MERGEs its file, which
#: then needs no row of its own (a file read or written: 31 -> 23 us for file and edge).
#: Every edge of a file in one batch carries the same file span, so two of them in one
#: statement set the same values whichever comes first.
FILE_EDGE_TYPES = frozenset(e for e in g.EDGE_TYPES
                            if e.source == g.PROCESS and e.target == g.FILE)
_file_fields = operator.itemgetter(*FILE_FIELDS)
_CARRIED = {"key": "x[0]", **{name: f"x[{3 + i}]" for i, name in enumerate(FILE_FIELDS)},
            "first": f"x[{3 + len(FILE_FIELDS)}]", "last": f"x[{4 + len(FILE_FIELDS)}]"}


def _edge_statement(edge: g.EdgeType) -> Cypher:
    """Edges of one type, grouped by their source: a row is ``{src, edges}`` and each of
    its edges ``[target key, first, last]`` (with its file: FILE_EDGE_TYPES), so the
    source is parsed and looked up once per group (a process writing 3,000 files: once,
    not 3,000 times)."""
    # Labels and types come from the schema's constants, never from input.
    target = (merge_file("b", _CARRIED) + " " if edge in FILE_EDGE_TYPES
              else f"MATCH (b:{edge.target} {{key: x[0]}}) ")
    return Cypher(
        "UNWIND $rows AS r "
        f"MATCH (a:{edge.source} {{key: r.src}}) "
        "UNWIND r.edges AS x "
        + target
        + f"MERGE (a)-[e:{edge.name}]->(b) "
        f"SET {widen('e', 'x[1]', 'x[2]')}"
    )


UPSERT_EDGES: dict[g.EdgeType, Cypher] = {edge: _edge_statement(edge) for edge in g.EDGE_TYPES}

_EDGE_OF_KIND = {
    Kind.READ: g.READ, Kind.WRITE: g.WROTE, Kind.UNLINK: g.DELETED,
    Kind.CONNECT: g.CONNECTED, Kind.ACCEPT: g.ACCEPTED, Kind.BIND: g.BOUND,
    Kind.PIPE_READ: g.READ_PIPE, Kind.PIPE_WRITE: g.WROTE_PIPE,
    Kind.RENAME: g.RENAMED_TO, Kind.LINK: g.LINKED_TO, Kind.EXEC: g.EXECUTED,
}


def seq_number(seq: str) -> int:
    """Order within a source: "SERIAL.N" (audit serial, event N of it) as one integer."""
    head, _, tail = seq.partition(".")
    if head.isdigit() and (not tail or tail.isdigit()):
        return int(head) * 4096 + int(tail or 0)
    return 0


def info_rank(ev: Event, *, child: bool = False) -> tuple[int, int, int]:
    """How recent the process facts an event carries are: (time, an exec's own facts
    before those inherited at fork, order in the source). The latest rank wins."""
    return ev.ts, int(ev.kind is Kind.EXEC and not child), seq_number(ev.seq)


def _widen(rows: dict[str, dict[str, Any]], key: str, ts: int, make: Any) -> None:
    row = rows.get(key)
    if row is None:
        row = rows[key] = make()
        row["first"] = row["last"] = ts
    elif ts < row["first"]:
        row["first"] = ts
    elif ts > row["last"]:
        row["last"] = ts


class Batch:
    """Rows folded from events, ready to become statements."""

    def __init__(self) -> None:
        self.processes: dict[str, dict[str, Any]] = {}
        self.info: dict[str, dict[str, Any]] = {}
        self.ends: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.pipes: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.edges: dict[tuple[g.EdgeType, str, str], list[int]] = {}
        self.dead: dict[str, dict[str, Any]] = {}
        self.runs = RunRows()  # pipeline runs and file versions (ingest/runs.py)
        self.gaps = GapRows()  # capture gaps (ingest/gaps.py)
        self.events = 0

    def __len__(self) -> int:
        return self.events + len(self.dead)

    def add(self, ev: Event) -> None:
        self.events += 1
        if ev.kind is Kind.VERSION:
            # Its file (with the span any event gives it) is upserted by the version
            # statement, and its process is the run's root, which the run event upserts.
            self.runs.add(ev)
            return
        host, ts = ev.host, ev.ts
        if ev.kind is Kind.GAP:
            # A capture gap is a Gap node of its host and window; it makes no process
            # node: its process may be one the collector never saw act.
            self.gaps.add(ev)
            return
        proc = self._process(host, ev.proc, ts, ev)
        kind = ev.kind
        if kind is Kind.FORK and ev.child is not None:
            child = self._process(host, ev.child, ts, ev, child=True)
            self._edge(g.FORKED, proc, child, ts)
        elif kind is Kind.RUN:
            self.runs.add(ev)
        elif kind is Kind.EXIT:
            known = self.ends.get(proc)
            if known is None or ts >= known["end"]:
                self.ends[proc] = {"key": proc, "end": ts, "exit_code": ev.exit_code}
        elif kind in (Kind.RENAME, Kind.LINK):
            if ev.file is not None and ev.dst is not None:
                self._edge(_EDGE_OF_KIND[kind], self._file(host, ev.file, ts),
                           self._file(host, ev.dst, ts), ts)
        elif kind in (Kind.PIPE_READ, Kind.PIPE_WRITE):
            if ev.pipe is not None:
                self._edge(_EDGE_OF_KIND[kind], proc, self._pipe(host, ev.pipe, ts), ts)
        elif kind in (Kind.CONNECT, Kind.ACCEPT, Kind.BIND):
            if ev.peer is not None:
                self._edge(_EDGE_OF_KIND[kind], proc, self._endpoint(host, ev.peer, ts), ts)
        elif ev.file is not None:
            self._edge(_EDGE_OF_KIND[kind], proc, self._file(host, ev.file, ts), ts)

    def add_dead(self, dead: DeadLetter, host: str) -> None:
        key = f"{dead.source}:{host}:{dead.where}"
        self.dead[key] = {"key": key, "source": dead.source, "reason": dead.reason,
                          "raw": dead.raw, "where": dead.where, "host": host}
        self.gaps.add_dead(dead, host)

    def _process(self, host: str, info: Any, ts: int, ev: Event, *,
                 child: bool = False) -> str:
        key = g.process_key(host, info.pid, info.start)
        row = self.processes.get(key)  # _widen, inlined: this runs for every event
        if row is None:
            self.processes[key] = {"key": key, "host": host, "pid": info.pid,
                                   "start": info.start, "first": ts, "last": ts}
        elif ts < row["first"]:
            row["first"] = ts
        elif ts > row["last"]:
            row["last"] = ts
        if info.exe is not None or info.argv is not None:
            rank = info_rank(ev, child=child)
            known = self.info.get(key)
            if known is None or rank >= (known["info_ts"], known["info_prio"],
                                         known["info_seq"]):
                argv = info.argv or []
                self.info[key] = {
                    "key": key, "info_ts": rank[0], "info_prio": rank[1], "info_seq": rank[2],
                    "exe": info.exe, "argv": argv,
                    "cmdline": " ".join(argv), "cwd": info.cwd, "uid": info.uid,
                    "euid": info.euid, "ppid": info.ppid,
                }
        return key

    def _file(self, host: str, ref: Any, ts: int) -> str:
        key = g.file_key(host, ref)
        row = self.files.get(key)
        if row is None:
            self.files[key] = {
                "key": key, "path": ref.path, "host": None if ref.fs else host, "fs": ref.fs,
                "name": posixpath.basename(ref.path), "first": ts, "last": ts,
            }
        elif ts < row["first"]:
            row["first"] = ts
        elif ts > row["last"]:
            row["last"] = ts
        return key

    def _pipe(self, host: str, pipe_id: str, ts: int) -> str:
        key = g.pipe_key(host, pipe_id)
        _widen(self.pipes, key, ts, lambda: {"key": key, "host": host, "id": pipe_id})
        return key

    def _endpoint(self, host: str, peer: Any, ts: int) -> str:
        key = g.endpoint_key(host, peer)
        _widen(self.endpoints, key, ts, lambda: {
            "key": key, "host": host if key.startswith(f"e:{host}:") else None,
            "family": peer.family, "address": peer.address, "port": peer.port,
        })
        return key

    def _edge(self, edge: g.EdgeType, src: str, dst: str, ts: int) -> None:
        span = self.edges.get((edge, src, dst))
        if span is None:
            self.edges[(edge, src, dst)] = [ts, ts]
        elif ts < span[0]:
            span[0] = ts
        elif ts > span[1]:
            span[1] = ts

    def statements(self) -> list[tuple[Cypher, dict[str, Any]]]:
        """Nodes before the edges that MATCH them; each list cut into bounded statements."""
        out: list[tuple[Cypher, dict[str, Any]]] = self.gaps.statements()
        files = self.files
        # a file only in edges from processes comes with them; a renamed or linked one
        # (File -> File edges MATCH both ends) gets its own row
        ends = {k for (edge, src, dst) in self.edges if edge.source == g.FILE
                for k in (src, dst)}
        node_rows = [
            (UPSERT_PROCESSES, list(self.processes.values())),
            (UPDATE_PROCESS_INFO, list(self.info.values())),
            (UPDATE_PROCESS_END, list(self.ends.values())),
            (UPSERT_FILES, [files[k] for k in files if k in ends]),
            (UPSERT_PIPES, list(self.pipes.values())),
            (UPSERT_ENDPOINTS, list(self.endpoints.values())),
            (UPSERT_DEAD_LETTERS, list(self.dead.values())),
        ]
        for statement, rows in node_rows:
            chunked(out, statement, rows)
        by_type: dict[g.EdgeType, dict[str, list[tuple[Any, ...]]]] = {}
        for (edge, src, dst), (first, last) in self.edges.items():
            if edge in FILE_EDGE_TYPES:
                f = files[dst]
                row: tuple[Any, ...] = (dst, first, last, *_file_fields(f), f["first"],
                                        f["last"])
            else:
                row = (dst, first, last)
            by_type.setdefault(edge, {}).setdefault(src, []).append(row)
        for edge, sources in by_type.items():
            chunked_groups(out, UPSERT_EDGES[edge], sources)
        out.extend(self.runs.statements())
        return out
