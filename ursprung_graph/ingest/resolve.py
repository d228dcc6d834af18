"""Linking events that know only (host, pid) to the process alive at their time.

Spectrum Scale reports ``nodeName`` and ``processId`` but no process start time, and a
process is (host, pid, start). The Scale collector therefore emits ``ProcessInfo(start=-1)``
(`UNKNOWN_START`) and the ingest worker resolves it here, against the Process nodes the
audit stream of that host wrote, before upserting:

* the candidates are the host's processes with that pid; the one alive at the event time
  is the latest whose start is at most ``ts + PRECISION`` (Scale times have one-second
  precision, audit times nanoseconds) and whose end, if known, is not before
  ``ts - PRECISION``;
* no candidate: the process began before capture, or the host runs no audit collector.
  It becomes ``(host, pid, 0)``, the same node the audit model gives a process it first
  sees without its fork, so both sources meet there.

The answer depends on what the store holds, so the worker decides only once the host's
audit stream is known to have passed the event's time: the newest process start of the
host (`watermark`) is at least ``ts + PRECISION``. Audit events of a host share one key and
so one partition, written in order, so once a later fork is in the store every fork before
it is too. Until then the event waits (its message is not committed), for at most
``wait`` seconds; after that it is decided with what is there. This makes the result the
same as a local import that loads the audit log first (tested), and a replay of the same
batch gives the same answer. The one case that is not replay-stable is an audit stream
lagging by more than ``wait``: the event is then linked to (host, pid, 0), and a later
replay might link it to the real process as well (an extra edge, nothing lost).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from ..query.resolve import process_spans, watermarks
from ..schema.event import UNKNOWN_START, Event
from ..store.base import GraphStore

PRECISION = 1_000_000_000  # Scale event times: whole seconds


def needs_resolution(ev: Event) -> bool:
    return ev.proc.start == UNKNOWN_START


@dataclass(slots=True)
class Waiting:
    event: Event
    since: float
    token: object = None  # the caller's handle (the message it came from)


@dataclass(slots=True)
class Resolver:
    store: GraphStore
    wait: float = 10.0
    clock: Callable[[], float] = time.monotonic

    def resolve(self, waiting: Iterable[Waiting]) -> tuple[list[tuple[Event, object]],
                                                           list[Waiting]]:
        """Split into (resolved event, token) pairs and those that must wait longer."""
        waiting = list(waiting)
        if not waiting:
            return [], []
        now = self.clock()
        hosts = sorted({w.event.host for w in waiting})
        marks = watermarks(self.store, hosts)
        cands = process_spans(self.store, sorted({(w.event.host, w.event.proc.pid)
                                                  for w in waiting}))
        done: list[tuple[Event, object]] = []
        later: list[Waiting] = []
        for w in waiting:
            ev = w.event
            mark = marks.get(ev.host)
            passed = mark is not None and mark >= ev.ts + PRECISION
            if not passed and now - w.since < self.wait:
                later.append(w)
                continue
            start = pick(cands.get((ev.host, ev.proc.pid), []), ev.ts)
            done.append((msgspec.structs.replace(
                ev, proc=msgspec.structs.replace(ev.proc, start=start)), w.token))
        return done, later


def pick(candidates: list[tuple[int, int | None]], ts: int) -> int:
    """The start of the process alive at ts among (start, end) candidates, else 0."""
    best = 0
    for start, end in candidates:
        if start is None or start > ts + PRECISION:
            continue
        if end is not None and end < ts - PRECISION:
            continue
        if start > best:
            best = start
    return best


def resolve_now(store: GraphStore, events: list[Event]) -> list[Event]:
    """Resolve against what the store holds now, without waiting (local imports, where the
    audit data was loaded first)."""
    resolver = Resolver(store, wait=0.0)
    todo = [Waiting(ev, 0.0, i) for i, ev in enumerate(events) if needs_resolution(ev)]
    if not todo:
        return events
    out = list(events)
    done, _ = resolver.resolve(todo)
    for ev, i in done:
        assert isinstance(i, int)
        out[i] = ev
    return out
