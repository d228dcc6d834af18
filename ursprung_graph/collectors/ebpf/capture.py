"""Running the eBPF tracer: checks, start-up, reading, stopping.

Two back ends give the same :class:`~.records.Call` items. ``libbpf``: the compiled loader
(``ursprung-ebpf``, built by ``make ebpf`` from ``ursprung.bpf.c`` and ``loader.c``: a CO-RE
program, loaded in ~0.1 s, binary records through one BPF ring buffer, parsed by
:mod:`.binary`). ``bpftrace``: the generated bpftrace program (:mod:`.program`; compiled by
LLVM at every start, text output parsed by :mod:`.records`), used where the loader is not
built or does not load. ``URSPRUNG_EBPF_BACKEND=libbpf|bpftrace`` picks one.

:func:`check_ebpf` says (without running anything) why eBPF tracing cannot work here: not
root, neither back end, no tracefs. :class:`Capture` starts the back end on a
:class:`~.program.Target` and returns from :meth:`Capture.start` only once every probe is
attached (the loader says so; the bpftrace program prints ``R`` when this process calls
``getpgid``). A reader thread hands the parsed calls, in time order, to a callback.
:meth:`Capture.sync` waits until everything the kernel has buffered so far has been read: it
calls ``getpgid`` once on every CPU and waits for the markers (each buffer is read in
order). :meth:`Capture.stop` ends the back end.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .binary import BinaryParser
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
#: Calls wait this long for calls from other CPUs that came earlier (see Reorder): bpftrace
#: reads one buffer per CPU; the loader's one ring buffer is nearly in time order.
REORDER_LAG_NS = 200_000_000
LOADER_LAG_NS = 20_000_000
#: When the back end's output has been quiet this long, the calls older than the reorder lag
#: plus SETTLED_NS go out without waiting for a later call (the loader consumes its ring
#: every 50 ms, bpftrace its buffers more often: by then every earlier call has come).
QUIET_SECONDS = 0.25
SETTLED_NS = 1_000_000_000
#: A marker not seen this long after it was sent was dropped (the ring was full): again.
SYNC_RETRY_SECONDS = 0.5
#: The loader's ring buffer (KiB, a power of 2), shared by all CPUs.
RING_KB = 32768
#: Where `make ebpf` puts the loader.
LOADER = Path(__file__).resolve().parent / "build" / "ursprung-ebpf"
BACKEND_ENV = "URSPRUNG_EBPF_BACKEND"

Deliver = Callable[[list[Call | Lost]], None]


class EbpfUnavailable(RuntimeError):
    """eBPF tracing cannot work here; nothing was run."""


@dataclass(frozen=True, slots=True)
class Backend:
    """The eBPF back end to run: ``libbpf`` (the compiled loader at ``path``; ``fallback``:
    bpftrace's path, if it is there) or ``bpftrace``."""

    kind: str
    path: str
    fallback: str | None = None

    def describe(self) -> str:
        return ("the compiled libbpf loader" if self.kind == "libbpf"
                else "bpftrace (slower start: it compiles its program)")


def loader_path() -> str | None:
    return str(LOADER) if os.access(LOADER, os.X_OK) else None


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


def check_ebpf(kind: str | None = None) -> Backend:
    """The back end to use (``kind``: libbpf or bpftrace; by default $URSPRUNG_EBPF_BACKEND,
    else the loader if it is built, else bpftrace); EbpfUnavailable says why eBPF cannot
    work here."""
    if os.geteuid() != 0:
        raise EbpfUnavailable("eBPF tracing needs root")
    kind = kind or os.environ.get(BACKEND_ENV) or None
    if kind not in (None, "libbpf", "bpftrace"):
        raise EbpfUnavailable(f"{BACKEND_ENV}={kind}: not libbpf or bpftrace")
    loader, bpftrace = loader_path(), bpftrace_path()
    if kind == "libbpf" and loader is None:
        raise EbpfUnavailable(f"the eBPF loader is not built ({LOADER}; run make ebpf)")
    if kind == "bpftrace" and bpftrace is None:
        raise EbpfUnavailable("bpftrace was not found (install it: apt-get install bpftrace)")
    if loader is None and bpftrace is None:
        raise EbpfUnavailable("neither the eBPF loader (make ebpf) nor bpftrace "
                              "(apt-get install bpftrace) is there")
    mount_tracefs()
    if kind != "bpftrace" and loader is not None:
        return Backend("libbpf", loader, bpftrace if kind is None else None)
    assert bpftrace is not None
    return Backend("bpftrace", bpftrace)


def loader_argv(loader: str, target: Target, ring_kb: int = RING_KB) -> list[str]:
    """The loader's command line for ``target``."""
    argv = [loader, "--ready", str(target.ready_pid), "--ring-kb", str(ring_kb)]
    if target.root is not None:
        return [*argv, "--root", str(target.root)]
    for uid in target.uids:
        argv += ["--uid", str(int(uid))]
    for path in target.cgroups:
        try:
            argv += ["--cgroup", str(os.stat(path).st_ino)]  # a cgroup v2 directory's id
        except OSError as exc:
            raise EbpfUnavailable(f"cgroup {path}: {exc.strerror}") from exc
    for pid in target.exclude:
        argv += ["--exclude", str(int(pid))]
    return argv


class Capture:
    """One run of the back end on ``target``; ``deliver`` gets the calls in time order (from the
    reader thread; at the end, after :meth:`stop`, the rest)."""

    def __init__(self, target: Target, deliver: Deliver, *, backend: Backend | None = None,
                 lag_ns: int | None = None, ring_pages: int = RING_PAGES,
                 ring_kb: int = RING_KB) -> None:
        """``ring_pages``: bpftrace's per-CPU buffer; ``ring_kb``: the loader's one."""
        self.target = target
        self.backend = backend or check_ebpf()
        self.deliver = deliver
        self._offset = time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        self._lag_ns = lag_ns
        self.parser: RecordParser | BinaryParser = self._parser()
        self.reorder = Reorder(self._lag())
        self.lost = 0
        self.ring_pages = ring_pages
        self.ring_kb = ring_kb
        #: why the loader did not load, when bpftrace was started instead
        self.fell_back: str | None = None
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

    def _parser(self) -> RecordParser | BinaryParser:
        if self.backend.kind == "libbpf":
            return BinaryParser(self._offset)
        return RecordParser(self._offset)

    def _lag(self) -> int:
        if self._lag_ns is not None:
            return self._lag_ns
        return LOADER_LAG_NS if self.backend.kind == "libbpf" else REORDER_LAG_NS

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the back end; return once its probes are attached. Raises EbpfUnavailable
        (with the back end's words) if the program does not load. If the loader does not
        load and bpftrace is there, bpftrace is started instead (``fell_back`` says why)."""
        try:
            self._start(timeout)
        except EbpfUnavailable as exc:
            fallback = self.backend.fallback
            if self.backend.kind != "libbpf" or fallback is None:
                raise
            self.fell_back = str(exc)
            self.backend = Backend("bpftrace", fallback)
            self.parser = self._parser()
            self.reorder = Reorder(self._lag())
            self._markers = 0
            self._error = None
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
            self._start(timeout)

    def _command(self) -> tuple[list[str], dict[str, str]]:
        if self.backend.kind == "libbpf":
            return loader_argv(self.backend.path, self.target, self.ring_kb), dict(os.environ)
        env = dict(os.environ, BPFTRACE_STRLEN=str(STRLEN),
                   BPFTRACE_PERF_RB_PAGES=str(self.ring_pages),
                   BPFTRACE_MAP_KEYS_MAX=str(MAP_KEYS))
        return [self.backend.path, "-e", generate(self.target)], env

    def _start(self, timeout: float) -> None:
        argv, env = self._command()
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=self._stderr, env=env,
                start_new_session=True)  # the terminal's Ctrl-C is for the command
        except OSError as exc:
            raise EbpfUnavailable(f"{self.backend.kind} could not be started: {exc}") from exc
        self._reader = threading.Thread(target=self._read, name="ursprung-ebpf", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._wait_marker(1, 0.02):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                why = self.stderr_text() or f"exit status {self._proc.poll()}"
                self.stop()
                raise EbpfUnavailable(f"the eBPF program did not load ({self.backend.kind}): "
                                      f"{why}")
            if self.backend.kind == "bpftrace":
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
        settled_ns = SETTLED_NS + reorder.lag_ns
        try:
            while True:
                if not select.select([fd], [], [], QUIET_SECONDS)[0]:
                    with self._lock:  # quiet: what came before it is all here
                        released = reorder.release_until(
                            time.clock_gettime_ns(time.CLOCK_MONOTONIC) + self._offset
                            - settled_ns)
                        if released:
                            self.deliver(released)
                    continue
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
        if self.backend.kind == "libbpf":
            return self._sync_ring(timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            want = self._markers
        want += self._mark_each_cpu()
        while not self._wait_marker(want, SYNC_RETRY_SECONDS):
            if time.monotonic() > deadline:
                return False
            self._mark_each_cpu()  # one was dropped (its CPU's buffer was full): again
        return True

    def _mark_each_cpu(self) -> int:
        """A marker call on each CPU we may run on (bpftrace: one buffer per CPU); how
        many were made."""
        saved = os.sched_getaffinity(0)
        made = 0
        try:
            for cpu in sorted(saved):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(0, {cpu})
                    os.getpgid(0)
                    made += 1
        finally:
            os.sched_setaffinity(0, saved)
        return made

    def _sync_ring(self, timeout: float) -> bool:
        """One ring buffer for all CPUs: one marker read means all before it was; a marker
        the kernel dropped (the ring was full) is sent again."""
        deadline = time.monotonic() + timeout
        with self._cond:
            want = self._markers + 1
        while True:
            os.getpgid(0)
            if self._wait_marker(want, SYNC_RETRY_SECONDS):
                return True
            if time.monotonic() > deadline:
                return False

    def flush(self) -> None:
        """Deliver everything read so far, without waiting for later calls (after
        :meth:`sync`, when nothing traced runs any more)."""
        with self._lock:
            items = self.parser.finish()
            self._count_lost(items)
            items = self.reorder.push(items) + self.reorder.drain()
            if items:
                self.deliver(items)

    def detach(self) -> None:
        """End the back end without waiting for it (after :meth:`sync` and :meth:`flush`,
        when everything wanted has been delivered): detaching its probes takes the kernel
        ~0.5 s, which nobody needs to wait for. A daemon thread reaps it."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        threading.Thread(target=self._stop_quietly, name="ursprung-ebpf-stop",
                         daemon=True).start()

    def _stop_quietly(self) -> None:
        with contextlib.suppress(BaseException):  # nothing is delivered any more
            self.stop()

    def stop(self) -> None:
        """End the back end and deliver what is left. Raises what the reader met."""
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
