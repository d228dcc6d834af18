"""Running a command under strace, transparently, and turning its trace into events.

The command runs as strace's child with the caller's stdin, stdout and stderr untouched;
strace writes its trace to a file in a private temporary directory (``-o``), never to the
command's streams (:mod:`.launch` starts them, and checks first that tracing works). Two
threads work while the command runs: one tails that file, parses and converts it (and
shows every event to an observer, the run ledger); the other hands the events to a sink
(the store) in chunks. So a long pipeline is in the graph while it runs, the parser never
waits for the store, and the tracee never waits for either (a file, unlike a pipe, does
not push back).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ...schema.event import Event
from ...schema.names import name_from_os
from .convert import TraceConverter
from .launch import Launched, TraceUnavailable, check_tracing, launch, strace_path
from .strace import StraceParser

Sink = Callable[[list[Event]], None]

#: While the command runs, events go to the store when this many have gathered or the
#: oldest has waited this long. The store works on the core the command leaves free, so
#: that little is left to store when the command ends (what is waiting then is what the
#: user waits for); each write upserts every file its events name once, so a file written
#: in one chunk and read in the next is two rows, which is cheaper than storing it after
#: the end.
CHUNK_EVENTS = 10000
CHUNK_SECONDS = 0.25
POLL_SECONDS = 0.02
HURRY_EVENTS = 500
MAX_WAIT = 3600.0  # longer delays (no chunking by time) wait for a notification


@dataclass(slots=True)
class TraceResult:
    returncode: int  # as a shell reports it: 128+N when killed by signal N
    start: int  # epoch ns, just before the command started
    end: int  # epoch ns, when it (and strace) ended
    root_pid: int | None
    root_start: int | None
    members: list[tuple[int, int]] = field(default_factory=list)
    calls: int = 0
    events: int = 0
    bad_lines: int = 0
    sink_error: BaseException | None = None
    lost: int = 0  # records the tracer dropped (eBPF: the kernel's buffer was full)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (ts, records lost)
    tracer: str = "strace"  # what traced it (eBPF: which back end)


class ChunkWriter:
    """Hands event chunks to the sink from a thread of its own, in order, so that the thread
    parsing the trace never waits for the store. What arrives while a chunk is being written
    is delivered with the next one (fewer, larger writes when the store is the slower side);
    a chunk goes out when it has ``min_events`` events, when its oldest event waited
    ``max_delay`` seconds, or at the end. After a sink error the rest is dropped (the error
    is reported when the command has ended)."""

    def __init__(self, sink: Sink, *, min_events: int, max_delay: float) -> None:
        self._sink = sink
        self._min_events = min_events
        self._max_delay = max_delay
        self._cond = threading.Condition()
        self._buffer: list[Event] = []
        self._since = 0.0
        self._closed = False
        self._eager = False
        self.delivered = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ursprung-store", daemon=True)
        self._thread.start()

    def put(self, events: list[Event]) -> None:
        if not events:
            return
        with self._cond:
            first = not self._buffer
            if first:
                self._since = time.monotonic()
            self._buffer.extend(events)
            if first or len(self._buffer) >= self._min_events:
                self._cond.notify()  # a first event starts the writer's clock

    def hurry(self, unless_below: int = 0) -> None:
        """From now on, deliver what comes without waiting for more; unless fewer than
        ``unless_below`` events wait (then they can as well go with what comes next)."""
        with self._cond:
            if len(self._buffer) >= unless_below:
                self._eager = True
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = self._eager = True
            self._cond.notify()

    def join(self) -> None:
        self.close()
        self._thread.join()

    def _next(self) -> list[Event] | None:
        with self._cond:
            while True:
                if self._buffer:
                    waited = time.monotonic() - self._since
                    if (self._eager or len(self._buffer) >= self._min_events
                            or waited >= self._max_delay):
                        chunk, self._buffer = self._buffer, []
                        return chunk
                    left = self._max_delay - waited
                    self._cond.wait(left if left < MAX_WAIT else None)
                elif self._closed:
                    return None
                else:
                    self._cond.wait()

    def _run(self) -> None:
        while (chunk := self._next()) is not None:
            if self.error is not None:
                continue
            try:
                self._sink(chunk)
                self.delivered += len(chunk)
            except BaseException as exc:
                self.error = exc


class Tracer:
    """One traced command. :meth:`run` runs it and returns when it has ended and its whole
    trace is parsed (``observe`` has seen every event); events may still be on their way to
    the sink, which :meth:`wait_stored` waits for. This lets the caller work on the run
    (hash its files) while the last chunk is being stored."""

    source = "strace"

    def __init__(self, argv: Sequence[str], sink: Sink, *, host: str, cwd: str | None = None,
                 env: dict[str, str] | None = None, strace: str | None = None,
                 chunk_events: int = CHUNK_EVENTS, chunk_seconds: float = CHUNK_SECONDS,
                 check: bool = True, observe: Sink | None = None,
                 prepare: Callable[[], object] | None = None,
                 stdout: int | None = None) -> None:
        """``prepare`` runs in a thread of its own as soon as the command has started
        (connecting to the store there costs the command nothing); if it fails, the sink
        is expected to fail the same way, which is reported as the sink's error."""
        if not argv:
            raise ValueError("no command to run")
        self.argv = list(argv)
        search = (env or os.environ).get("PATH")
        self.strace = strace or strace_path(search)
        if check:
            check_tracing(self.strace, env)
        self.env = env
        self.cwd = os.path.abspath(cwd or os.getcwd())
        self.converter = TraceConverter(host, name_from_os(self.cwd))
        self.parser = StraceParser()
        self.observe = observe
        self._writer = ChunkWriter(sink, min_events=chunk_events, max_delay=chunk_seconds)
        self._prepare: Callable[[], object] | None = prepare
        self._stdout = stdout  # the command's stdout (None: ours, untouched)
        self._done = threading.Event()
        self.started: int | None = None  # when run() began (the run's start), epoch ns

    def _pump(self, output: str) -> None:
        """Tail the trace file until the command has ended and the file is read."""
        parser, converter, writer, observe = (self.parser, self.converter, self._writer,
                                              self.observe)
        with open(output, encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
            rest = ""
            while True:
                finished = self._done.is_set()
                chunk = fh.read(1 << 20)
                if not chunk:
                    if finished:
                        break
                    self._done.wait(POLL_SECONDS)
                    continue
                lines = (rest + chunk).split("\n")
                rest = lines.pop()
                events: list[Event] = []
                for line in lines:
                    call = parser.feed(line)
                    if call is not None:
                        events.extend(converter.feed(call))
                self._emit(events, observe, writer)
            events = []
            if rest:
                call = parser.feed(rest)
                if call is not None:
                    events.extend(converter.feed(call))
        events.extend(converter.finish())
        self._emit(events, observe, writer)

    @staticmethod
    def _emit(events: list[Event], observe: Sink | None, writer: ChunkWriter) -> None:
        if events:
            if observe is not None:
                observe(events)
            writer.put(events)

    def run(self, launched: Launched | None = None) -> TraceResult:
        """Run the command (or follow it, when ``launched`` already started it with this
        tracer's argv, cwd and environment) until it has ended and its trace is parsed."""
        if launched is None:
            launched = launch(self.strace, self.argv, cwd=self.cwd, env=self.env,
                              stdout=self._stdout)
        pumper = threading.Thread(target=self._pump, args=(launched.output,),
                                  name="ursprung-trace", daemon=True)
        start = self.started = launched.start
        try:
            pumper.start()
            if self._prepare is not None:
                threading.Thread(target=self._prepare_quietly, name="ursprung-prepare",
                                 daemon=True).start()
            code = launched.wait()
            end = time.time_ns()
            self._done.set()
            pumper.join()
            # The run is over: what is left of its trace goes now (the caller hashes
            # meanwhile), unless it is little; then it goes with what the caller adds.
            self._writer.hurry(unless_below=HURRY_EVENTS)
        except BaseException:
            self._writer.close()
            raise
        finally:
            self._done.set()
            launched.close()
        returncode = 128 - code if code < 0 else code
        conv = self.converter
        if conv.calls == 0 and code != 0:
            # strace traced nothing: it could not start or attach, and then it kills the
            # command before its first instruction. Its own message is on stderr.
            self._writer.close()
            raise TraceUnavailable(
                f"strace could not trace the command (exit status {returncode}; its message "
                "is above); the command was not run")
        return TraceResult(
            returncode=returncode, start=start, end=end, root_pid=conv.root,
            root_start=conv.root_start, members=list(conv.members), calls=conv.calls,
            events=0, bad_lines=self.parser.bad,
        )

    def _prepare_quietly(self) -> None:
        with contextlib.suppress(BaseException):
            self._prepare()  # type: ignore[misc]

    def root(self) -> tuple[int, int] | None:
        """The command's process (pid, start) once the trace has shown it."""
        conv = self.converter
        pid, start = conv.root, conv.root_start
        return None if pid is None or start is None else (pid, start)

    def put(self, events: list[Event]) -> None:
        """More events for the sink, in order with the trace's (before
        :meth:`wait_stored`); from any thread."""
        self._writer.put(events)

    def wait_stored(self, result: TraceResult) -> TraceResult:
        """Wait until every event reached the sink; fills in ``events`` and
        ``sink_error``."""
        self._writer.join()
        result.events = self._writer.delivered
        result.sink_error = self._writer.error
        return result


def trace(argv: Sequence[str], sink: Sink, *, host: str, cwd: str | None = None,
          env: dict[str, str] | None = None, strace: str | None = None,
          live: bool = True, chunk_events: int = CHUNK_EVENTS,
          check: bool = True) -> TraceResult:
    """Run ``argv`` under strace; events go to ``sink`` in chunks while it runs (``live``;
    else in one go after it ended). Returns when every event was delivered. Raises
    TraceUnavailable before running anything if tracing cannot work."""
    if live:
        tracer = Tracer(argv, sink, host=host, cwd=cwd, env=env, strace=strace,
                        chunk_events=chunk_events, check=check)
        return tracer.wait_stored(tracer.run())
    collected: list[Event] = []
    tracer = Tracer(argv, collected.extend, host=host, cwd=cwd, env=env, strace=strace,
                    chunk_events=1 << 62, chunk_seconds=float("inf"), check=check)
    result = tracer.wait_stored(tracer.run())
    result.events = 0
    for i in range(0, len(collected), chunk_events):
        chunk = collected[i:i + chunk_events]
        try:
            sink(chunk)
        except BaseException as exc:
            result.sink_error = exc
            break
        result.events += len(chunk)
    return result
