"""The node collector (`ursprung collect ebpf`): the eBPF program on the whole node, its
events published to the bus as they happen.

It is live, not checkpointed: the kernel keeps no log to resume from. Instead it notes in
a small state file (``ebpf-<host>.json`` in the checkpoint directory) until when it has
delivered, and a restart reports the window it missed (from that time to when its probes
were attached again). Records the kernel dropped are reported the same way, as gaps.

Which processes: the uids and cgroups of :class:`NodeFilter` are compiled into the
program's predicates (the kernel filters); command patterns (``fnmatch`` on the program's
file name or argv[0], e.g. ``python*``) are applied here, at exec: a matching process and
its descendants are followed. The collector itself and its bpftrace are never traced.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import posixpath
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...schema.event import Event, GapWindow
from .adapter import CallConverter
from .capture import Capture
from .program import Target
from .records import Call, Lost

log = logging.getLogger("ursprung.collect.ebpf")

#: How often the state file notes that the collector is alive (a crash loses at most this).
ALIVE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class NodeFilter:
    uids: tuple[int, ...] = ()
    cgroups: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()


@dataclass(slots=True)
class Window:
    """A time window (epoch ns) without events: the collector was not running, or the
    kernel dropped ``lost`` records."""

    start: int
    end: int
    lost: int | None = None

    def describe(self) -> str:
        def iso(ns: int) -> str:
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9)) + \
                f".{ns % 10**9 // 10**6:03d}Z"

        what = f"{self.lost} records lost" if self.lost is not None else "not collected"
        return f"{what} from {iso(self.start)} to {iso(self.end)} " \
               f"({(self.end - self.start) / 1e9:.1f} s)"


@dataclass
class NodeStats:
    calls: int = 0
    events: int = 0
    lost: int = 0
    missed: list[Window] = field(default_factory=list)


class CommandFilter:
    """Keeps the calls of processes whose program matches a pattern, and of their
    descendants; with no patterns, all."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self.kept: set[int] = set()
        self._asked: dict[int, Call] = {}

    def matches(self, call: Call) -> bool:
        names = [posixpath.basename(call.path or "")]
        if call.argv:
            names.append(posixpath.basename(call.argv[0]))
        return any(fnmatch.fnmatchcase(n, p) for n in names if n for p in self.patterns)

    def __call__(self, calls: list[Call]) -> list[Call]:
        if not self.patterns:
            return calls
        out = []
        kept = self.kept
        for call in calls:
            name = call.name
            if name in ("execve", "execveat"):
                self._asked[call.tid] = call
                if call.pid in kept:
                    out.append(call)
                continue
            if name == "exec":
                asked = self._asked.pop(call.old_tid or call.tid, None)
                if call.pid not in kept and asked is not None and self.matches(asked):
                    kept.add(call.pid)
                    out.append(asked)
                if call.pid in kept:
                    out.append(call)
                continue
            if call.pid in kept:
                out.append(call)
                if name == "clone" and call.child is not None:
                    kept.add(call.child)
                elif name == "exit" and call.group_dead:
                    kept.discard(call.pid)
        return out


class NodeCollector:
    """Runs until ``stop`` is set; ``emit`` gets event chunks (at most ``chunk_events``,
    at least every ``flush_seconds`` while there are any), from one thread."""

    def __init__(self, emit: Callable[[list[Event]], None], *, host: str,
                 state_dir: Path, node_filter: NodeFilter = NodeFilter(),
                 chunk_events: int = 2000, flush_seconds: float = 0.5,
                 stop: threading.Event | None = None,
                 on_window: Callable[[Window], None] | None = None,
                 on_ready: Callable[[], None] | None = None) -> None:
        self.emit = emit
        self.host = host
        self.filter = node_filter
        self.state = Path(state_dir) / f"ebpf-{host}.json"
        self.chunk_events = chunk_events
        self.flush_seconds = flush_seconds
        self.stop = stop or threading.Event()
        self.on_window = on_window or (lambda w: log.warning("ebpf: %s", w.describe()))
        self.on_ready = on_ready
        self.stats = NodeStats()
        self._queue: queue.Queue[list[Call | Lost]] = queue.Queue()
        self._alive = 0.0
        self.capture: Capture | None = None

    def _last_alive(self) -> int | None:
        try:
            return int(json.loads(self.state.read_text())["alive"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _note_alive(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._alive < ALIVE_SECONDS:
            return
        self._alive = now
        self.state.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"alive": time.time_ns()}))
        os.replace(tmp, self.state)

    def _window(self, window: Window) -> None:
        self.stats.missed.append(window)
        self.on_window(window)

    def run(self) -> NodeStats:
        target = Target(ready_pid=os.getpid(), uids=self.filter.uids,
                        cgroups=self.filter.cgroups, exclude=(os.getpid(),))
        converter = CallConverter(self.host)
        commands = CommandFilter(self.filter.commands)
        last = self._last_alive()
        self.capture = capture = Capture(target, self._queue.put)
        capture.start()
        if self.on_ready is not None:
            self.on_ready()
        pending: list[Event] = []
        if last is not None:
            missed = Window(last, time.time_ns())
            self._window(missed)
            pending.append(converter.gap(missed.start, missed.describe(), GapWindow(
                source="collector-restart", end=missed.end)))
        self._note_alive(force=True)
        since = time.monotonic()
        try:
            while True:
                stopping = self.stop.is_set()
                if stopping:
                    capture.stop()  # delivers the rest into the queue
                try:
                    items = self._queue.get(timeout=0.05)
                except queue.Empty:
                    items = []
                calls = []
                for item in items:
                    if isinstance(item, Lost):
                        self.stats.lost += item.count
                        window = Window(item.ts, item.ts, item.count)
                        self._window(window)
                        pending.append(converter.gap(item.ts, window.describe(), GapWindow(
                            source="ebpf-lost", end=item.ts, count=item.count)))
                    else:
                        calls.append(item)
                self.stats.calls += len(calls)
                pending.extend(converter.feed(commands(calls)))
                due = time.monotonic() - since >= self.flush_seconds
                if pending and (len(pending) >= self.chunk_events or due or stopping):
                    self.emit(pending)
                    self.stats.events += len(pending)
                    pending = []
                if due or not pending:
                    since = time.monotonic()
                self._note_alive()
                if stopping and self._queue.empty():
                    break
        finally:
            capture.stop()
            if pending:
                self.emit(pending)
                self.stats.events += len(pending)
            self._note_alive(force=True)
        return self.stats
