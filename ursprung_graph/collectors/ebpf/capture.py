"""Running the generated bpftrace program: checks, start-up, reading, stopping.

:func:`check_ebpf` says (without running anything) why eBPF tracing cannot work here: not
root, no bpftrace, no tracefs. :class:`Capture` starts bpftrace on a :class:`~.program.Target`
and returns from :meth:`Capture.start` only once every probe is attached (the program prints
``R`` when this process calls ``getpgid``; see :mod:`.program`). A reader thread hands the
parsed calls, in time order, to a callback. :meth:`Capture.sync` waits until everything the
kernel has buffered so far has been read: it calls ``getpgid`` once on every CPU and waits
for the markers (each CPU's buffer is read in order). :meth:`Capture.stop` ends bpftrace.
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
from collections.abc import Callable

from .program import STRLEN, Target, generate
from .records import Call, Lost, RecordParser, Reorder

TRACEFS = "/sys/kernel/tracing"
#: Per-CPU ring buffer pages for bpftrace's output (4 KiB each): 16 MiB per CPU.
RING_PAGES = 4096
#: Entries per BPF map (threads followed, calls in flight).
MAP_KEYS = 65536
START_TIMEOUT = 120.0
#: bpftrace gets this long to end on SIGINT, then SIGKILL (its probes go with its descriptors)
STOP_SECONDS = 2.0
READ_BLOCK = 1 << 20
#: Calls wait this long for calls from other CPUs that came earlier (see Reorder).
REORDER_LAG_NS = 200_000_000

Deliver = Callable[[list[Call | Lost]], None]


class EbpfUnavailable(RuntimeError):
    """eBPF tracing cannot work here; nothing was run."""


def bpftrace_path() -> str | None:
    return shutil.which("bpftrace") or (
        "/usr/bin/bpftrace" if os.access("/usr/bin/bpftrace", os.X_OK) else None)


def mount_tracefs() -> None:
    """Tracepoints are found through tracefs; mount it when it is not."""
    if os.path.isdir(os.path.join(TRACEFS, "events")):
        return
    done = subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise EbpfUnavailable(f"tracefs is not mounted at {TRACEFS} and could not be: "
                              f"{done.stderr.strip()}")


def check_ebpf() -> str:
    """The bpftrace to use; EbpfUnavailable says why eBPF cannot work here."""
    if os.geteuid() != 0:
        raise EbpfUnavailable("eBPF tracing needs root")
    bpftrace = bpftrace_path()
    if bpftrace is None:
        raise EbpfUnavailable("bpftrace was not found (install it: apt-get install bpftrace)")
    mount_tracefs()
    return bpftrace


class Capture:
    """One bpftrace run on ``target``; ``deliver`` gets the calls in time order (from the
    reader thread; at the end, after :meth:`stop`, the rest)."""

    def __init__(self, target: Target, deliver: Deliver, *, bpftrace: str | None = None,
                 lag_ns: int = REORDER_LAG_NS, ring_pages: int = RING_PAGES) -> None:
        self.target = target
        self.bpftrace = bpftrace or check_ebpf()
        self.deliver = deliver
        offset = time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        self.parser = RecordParser(offset)
        self.reorder = Reorder(lag_ns)
        self.lost = 0
        self.ring_pages = ring_pages
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._markers = 0
        self._cond = threading.Condition()
        self._lock = threading.Lock()  # the parser and the reorder buffer
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self._error: BaseException | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start bpftrace; return once its probes are attached. Raises EbpfUnavailable
        (with bpftrace's words) if the program does not load."""
        program = generate(self.target)
        env = dict(os.environ, BPFTRACE_STRLEN=str(STRLEN),
                   BPFTRACE_PERF_RB_PAGES=str(self.ring_pages),
                   BPFTRACE_MAP_KEYS_MAX=str(MAP_KEYS))
        try:
            self._proc = subprocess.Popen(
                [self.bpftrace, "-e", program], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=self._stderr, env=env,
                start_new_session=True)  # the terminal's Ctrl-C is for the command
        except OSError as exc:
            raise EbpfUnavailable(f"bpftrace could not be started: {exc}") from exc
        self._reader = threading.Thread(target=self._read, name="ursprung-ebpf", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._wait_marker(1, 0.02):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                why = self.stderr_text() or f"exit status {self._proc.poll()}"
                self.stop()
                raise EbpfUnavailable(f"the eBPF program did not load: {why}")
            os.getpgid(0)

    def stderr_text(self) -> str:
        if self._stderr.closed:
            return ""
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").splitlines()
        return "; ".join(line.strip() for line in lines
                         if line.strip() and "RLIMIT_MEMLOCK" not in line)[-2000:]

    def _wait_marker(self, count: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._markers >= count or self._error is not None
                                       or (self._proc is not None
                                           and self._proc.poll() is not None), timeout) \
                and self._markers >= count

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        parser, reorder = self.parser, self.reorder
        try:
            while True:
                data = os.read(fd, READ_BLOCK)
                if not data:
                    break
                with self._lock:
                    items = parser.feed(data)
                    self._count_lost(items)
                    released = reorder.push(items)
                    if released:
                        self.deliver(released)
                if parser.markers != self._markers:
                    with self._cond:
                        self._markers = parser.markers
                        self._cond.notify_all()
        except BaseException as exc:
            self._error = exc
            with self._cond:
                self._cond.notify_all()

    def _count_lost(self, items: list[Call | Lost]) -> None:
        for item in items:
            if isinstance(item, Lost):
                self.lost += item.count

    def sync(self, timeout: float = 10.0) -> bool:
        """Wait until what the kernel buffered before this call has been read."""
        cpus = sorted(os.sched_getaffinity(0))
        with self._cond:
            want = self._markers
        saved = os.sched_getaffinity(0)
        try:
            for cpu in cpus:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(0, {cpu})
                    os.getpgid(0)
                    want += 1
        finally:
            os.sched_setaffinity(0, saved)
        return self._wait_marker(want, timeout)

    def flush(self) -> None:
        """Deliver everything read so far, without waiting for later calls (after
        :meth:`sync`, when nothing traced runs any more)."""
        with self._lock:
            items = self.parser.finish()
            self._count_lost(items)
            items = self.reorder.push(items) + self.reorder.drain()
            if items:
                self.deliver(items)

    def stop(self) -> None:
        """End bpftrace and deliver what is left. Raises what the reader met."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:  # it may hang detaching: the kernel cleans up
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join()
            self._reader = None
            rest = self.parser.finish()
            self._count_lost(rest)
            items = self.reorder.push(rest) + self.reorder.drain()
            if items:
                self.deliver(items)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if not self._stderr.closed:
            self._stderr.close()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
