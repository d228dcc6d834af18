"""Running a command traced by eBPF, with the strace tracer's interface: :class:`EbpfTracer`
has ``run``, ``put`` and ``wait_stored`` like ``collectors.trace.runner.Tracer``.

The command is followed from its first instruction: a gate (``/bin/sh`` that stops itself
with SIGSTOP) is started first, its pid becomes the root of the traced subtree, the eBPF
back end (:mod:`.capture`) is started on that subtree, and only once every probe is attached
does the gate get SIGCONT and exec the command (the same process: exec keeps the pid). No
descriptor is handed to the gate, so the command inherits exactly the caller's. The
command's stdin, stdout, stderr, environment and exit status are untouched; the back end
runs in a session of its own, so the terminal's Ctrl-C reaches the command only.

When the command has ended, :meth:`~.capture.Capture.sync` waits until the back end has
read everything the kernel buffered, then it is stopped without waiting for it. Records the
kernel dropped (``Lost`` items) are counted in ``TraceResult.lost``, their times in ``gaps``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

from ...schema.event import Event, GapWindow
from ..trace.launch import ForwardSignals, TraceUnavailable
from ..trace.runner import (
    CHUNK_EVENTS,
    CHUNK_SECONDS,
    HURRY_EVENTS,
    ChunkWriter,
    Sink,
    TraceResult,
)
from .adapter import CallConverter
from .capture import RING_KB, Capture, EbpfUnavailable, check_ebpf
from .program import Target
from .records import Call, Lost

#: The gate: stop until continued, then become the command.
GATE = 'kill -STOP $$; exec "$@"'


def start_gated(argv: Sequence[str], *, cwd: str | None = None,
                env: dict[str, str] | None = None,
                stdout: int | None = None) -> subprocess.Popen:
    """Start ``argv`` behind the gate; return once the gate has stopped (SIGCONT runs the
    command)."""
    try:
        child = subprocess.Popen(["/bin/sh", "-c", GATE, "sh", *argv], cwd=cwd, env=env,
                                 stdout=stdout)
    except OSError as exc:
        raise TraceUnavailable(f"the command could not be started: {exc}") from exc
    _, status = os.waitpid(child.pid, os.WUNTRACED)
    if not os.WIFSTOPPED(status):
        child.returncode = os.waitstatus_to_exitcode(status)
        raise TraceUnavailable("the command could not be started: its gate ended "
                               f"(status {child.returncode})")
    return child


class EbpfTracer:
    """One command traced by eBPF (see the module docstring)."""

    source = "ebpf"

    def __init__(self, argv: Sequence[str], sink: Sink, *, host: str, cwd: str | None = None,
                 env: dict[str, str] | None = None, chunk_events: int = CHUNK_EVENTS,
                 chunk_seconds: float = CHUNK_SECONDS, check: bool = True,
                 observe: Sink | None = None,
                 prepare: Callable[[], object] | None = None,
                 stdout: int | None = None, ring_kb: int = RING_KB) -> None:
        """``stdout``: the command's stdout (None: ours, untouched); ``ring_kb``: the
        loader's ring buffer."""
        if not argv:
            raise ValueError("no command to run")
        self.argv = list(argv)
        try:
            self.backend = check_ebpf()
        except EbpfUnavailable as exc:
            raise TraceUnavailable(f"{exc}; the command was not run") from exc
        del check  # the back end is checked by loading the program, before the command runs
        self.env = env
        self.stdout = stdout
        self.cwd = os.path.abspath(cwd or os.getcwd())
        self.host = host
        self.observe = observe
        self.gaps: list[tuple[int, int]] = []  # (ts, records lost)
        self._writer = ChunkWriter(sink, min_events=chunk_events, max_delay=chunk_seconds)
        self._prepare = prepare
        self._ring_kb = ring_kb
        self._lock = threading.Lock()
        self.converter: CallConverter | None = None
        self.started: int | None = None  # when run() began (the run's start), epoch ns
        self._flushed = False

    def _deliver(self, items: list[Call | Lost]) -> None:
        if self._flushed:
            return  # the command has ended and its trace is complete
        calls: list[Call] = []
        gaps: list[Event] = []
        assert self.converter is not None
        for item in items:
            if isinstance(item, Lost):
                self.gaps.append((item.ts, item.count))
                gaps.append(self.converter.gap(
                    item.ts, f"{item.count} records lost by the eBPF tracer (buffer full)",
                    GapWindow(source="ebpf-lost", end=item.ts, count=item.count)))
            else:
                calls.append(item)
        with self._lock:
            events = self.converter.feed(calls) + gaps
        if events:
            if self.observe is not None:
                self.observe(events)
            self._writer.put(events)

    def run(self) -> TraceResult:
        start = self.started = time.time_ns()
        capture: Capture | None = None
        try:
            with ForwardSignals() as forward:
                child = start_gated(self.argv, cwd=self.cwd, env=self.env, stdout=self.stdout)
                forward.child = child
                self.converter = CallConverter(self.host, root=child.pid, cwd=self.cwd,
                                               parent_pid=os.getpid())
                self.converter.adopt_root(time.time_ns())
                capture = Capture(Target(ready_pid=os.getpid(), root=child.pid),
                                  self._deliver, backend=self.backend,
                                  ring_kb=self._ring_kb)
                try:
                    capture.start()
                except BaseException as exc:
                    child.kill()  # the gate ends without running the command
                    child.wait()
                    if isinstance(exc, EbpfUnavailable):
                        raise TraceUnavailable(f"{exc}; the command was not run") from exc
                    raise
                if capture.fell_back is not None:
                    print(f"ursprung run: eBPF: the compiled loader did not load "
                          f"({capture.fell_back}); tracing with bpftrace", file=sys.stderr)
                self.backend = capture.backend
                os.kill(child.pid, signal.SIGCONT)
                if self._prepare is not None:
                    threading.Thread(target=self._prepare_quietly, name="ursprung-prepare",
                                     daemon=True).start()
                while True:
                    try:
                        code = child.wait()
                        break
                    except KeyboardInterrupt:
                        continue
            end = time.time_ns()
            capture.sync()
            capture.flush()
            self._flushed = True
            parser = capture.parser
            capture.detach()  # the probes go while the caller hashes the run's files
            capture = None
            self._writer.hurry(unless_below=HURRY_EVENTS)
        except BaseException:
            self._writer.close()
            raise
        finally:
            if capture is not None:
                capture.stop()
        returncode = 128 - code if code < 0 else code
        conv = self.converter
        return TraceResult(
            returncode=returncode, start=start, end=end, root_pid=conv.root,
            root_start=conv.root_start, members=list(conv.members), calls=conv.calls,
            events=0, bad_lines=parser.bad,
            lost=sum(n for _, n in self.gaps), gaps=list(self.gaps),
            tracer=f"ebpf ({self.backend.describe()})",
        )

    def _prepare_quietly(self) -> None:
        with contextlib.suppress(BaseException):  # the sink reports the same failure
            self._prepare()  # type: ignore[misc]

    def root(self) -> tuple[int, int] | None:
        """The command's process (pid, start) once it has started."""
        conv = self.converter
        if conv is None or conv.root is None or conv.root_start is None:
            return None
        return conv.root, conv.root_start

    def put(self, events: list[Event]) -> None:
        """More events for the sink, in order with the trace's; from any thread."""
        self._writer.put(events)

    def wait_stored(self, result: TraceResult) -> TraceResult:
        self._writer.join()
        result.events = self._writer.delivered
        result.sink_error = self._writer.error
        return result
