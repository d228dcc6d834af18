"""Running a command under strace, transparently, and turning its trace into events.

The command runs as strace's child with the caller's stdin, stdout and stderr untouched;
strace writes its trace to a file in a private temporary directory (``-o``), never to the
command's streams. A thread tails that file while the command runs and hands normalized
events to a sink in chunks, so a long pipeline is in the graph while it runs and the
tracee never waits for the parser (a file, unlike a pipe, does not push back).

Before anything runs, :func:`check_tracing` makes sure strace exists and may trace here
(it traces ``true``): a missing strace or a ptrace ban fails clearly and runs nothing.

strace flags: ``-f`` (children and threads), ``--seccomp-bpf`` (only the traced syscalls
stop the tracee), ``-ttt`` (epoch times in microseconds), ``-q`` (no attach notes, but exit
lines, which tell how processes ended), ``-s 4096`` (whole paths and arguments),
``-e signal=none`` (no signal lines) and ``-e trace=`` the syscalls of
:data:`~ursprung_graph.collectors.trace.strace.TRACED_SYSCALLS`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...schema.event import Event
from .convert import TraceConverter
from .strace import TRACED_SYSCALLS, StraceParser

Sink = Callable[[list[Event]], None]

STRING_LIMIT = 4096
CHUNK_EVENTS = 5000
CHUNK_SECONDS = 1.0


class TraceUnavailable(RuntimeError):
    """Tracing cannot work here; nothing was run."""


def strace_path(path: str | None = None) -> str:
    found = shutil.which("strace", path=path)
    if found is None:
        raise TraceUnavailable(
            "strace was not found on PATH, so the command cannot be traced and was not run "
            "(install it: apt-get install strace)")
    return found


def strace_args(strace: str, output: str) -> list[str]:
    return [strace, "-f", "--seccomp-bpf", "-ttt", "-q", "-s", str(STRING_LIMIT),
            "-e", "signal=none", "-e", "trace=" + ",".join(TRACED_SYSCALLS), "-o", output]


def check_tracing(strace: str, env: dict[str, str] | None = None) -> None:
    """Trace ``true`` once; raise TraceUnavailable with strace's own words if that fails
    (ptrace forbidden by a seccomp profile, Yama, a container...)."""
    true = shutil.which("true") or "/bin/true"
    with tempfile.TemporaryDirectory(prefix="ursprung-probe-") as tmp:
        out = os.path.join(tmp, "probe.trace")
        try:
            probe = subprocess.run([*strace_args(strace, out), "--", true],
                                   capture_output=True, text=True, timeout=30, env=env,
                                   stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TraceUnavailable(f"strace could not be started: {exc}; nothing was run") \
                from exc
        traced = os.path.exists(out) and "execve(" in Path(out).read_text(errors="replace")
    if probe.returncode != 0 or not traced:
        why = (probe.stderr or probe.stdout).strip() or f"exit status {probe.returncode}"
        raise TraceUnavailable(
            f"strace cannot trace processes here (is ptrace forbidden?): {why}; "
            "the command was not run")


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


class _Forward:
    """While the command runs, Ctrl-C and friends are for the command (it gets them from the
    terminal itself); ursprung keeps going so that it can record how the run ended. A Python
    handler, unlike SIG_IGN, is reset by exec, so the command does not inherit it."""

    SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.saved: dict[int, object] = {}
        self.child: subprocess.Popen | None = None

    def __enter__(self) -> _Forward:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        # SIGTERM/SIGHUP sent to ursprung alone: pass them on to strace (which passes them
        # to the command); SIGINT/SIGQUIT come from the terminal, which told the command.
        if signum in (signal.SIGTERM, signal.SIGHUP) and self.child is not None:
            with contextlib.suppress(OSError):
                self.child.send_signal(signum)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def trace(argv: Sequence[str], sink: Sink, *, host: str, cwd: str | None = None,
          env: dict[str, str] | None = None, strace: str | None = None,
          live: bool = True, chunk_events: int = CHUNK_EVENTS,
          check: bool = True) -> TraceResult:
    """Run ``argv`` under strace; events go to ``sink`` in chunks (from a thread when
    ``live``, else after the command ended). Raises TraceUnavailable before running
    anything if tracing cannot work."""
    if not argv:
        raise ValueError("no command to run")
    search = (env or os.environ).get("PATH")
    strace = strace or strace_path(search)
    if check:
        check_tracing(strace, env)
    cwd = os.path.abspath(cwd or os.getcwd())
    converter = TraceConverter(host, cwd)
    parser = StraceParser()
    tmp = tempfile.mkdtemp(prefix="ursprung-trace-")
    output = os.path.join(tmp, "trace")
    Path(output).touch(mode=0o600)
    done = threading.Event()
    state = {"events": 0, "error": None}

    def deliver(events: list[Event]) -> None:
        if not events or state["error"] is not None:
            return
        try:
            sink(events)
            state["events"] += len(events)
        except BaseException as exc:  # noqa: BLE001 - reported after the command ended
            state["error"] = exc

    def pump() -> None:
        pending: list[Event] = []
        last = time.monotonic()
        with open(output, encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
            rest = ""
            while True:
                finished = done.is_set()
                chunk = fh.read(1 << 20)
                if not chunk:
                    if finished:
                        break
                    if pending and time.monotonic() - last >= CHUNK_SECONDS:
                        deliver(pending)
                        pending, last = [], time.monotonic()
                    time.sleep(0.02)
                    continue
                lines = (rest + chunk).split("\n")
                rest = lines.pop()
                for line in lines:
                    call = parser.feed(line)
                    if call is not None:
                        pending.extend(converter.feed(call))
                if len(pending) >= chunk_events:
                    deliver(pending)
                    pending, last = [], time.monotonic()
            if rest:
                call = parser.feed(rest)
                if call is not None:
                    pending.extend(converter.feed(call))
        pending.extend(converter.finish())
        deliver(pending)

    pumper = threading.Thread(target=pump, name="ursprung-trace", daemon=True) if live else None
    start = time.time_ns()
    try:
        with _Forward() as forward:
            try:
                child = subprocess.Popen([*strace_args(strace, output), "--", *argv], cwd=cwd,
                                         env=env)
            except OSError as exc:
                raise TraceUnavailable(f"strace could not be started: {exc}") from exc
            forward.child = child
            if pumper is not None:
                pumper.start()
            while True:
                try:
                    code = child.wait()
                    break
                except KeyboardInterrupt:  # a second Ctrl-C before our handler was in place
                    continue
        end = time.time_ns()
        done.set()
        if pumper is not None:
            pumper.join()
        else:
            pump()
    finally:
        done.set()
        shutil.rmtree(tmp, ignore_errors=True)
    returncode = 128 - code if code < 0 else code
    return TraceResult(
        returncode=returncode, start=start, end=end, root_pid=converter.root,
        root_start=converter.root_start, members=list(converter.members), calls=converter.calls,
        events=state["events"], bad_lines=parser.bad, sink_error=state["error"],
    )
