"""What a collector knows it missed, as gap events in its own stream.

:class:`GapWatch` wraps a line source and adds to the chunks it fills:

* a **restart** gap when the source starts without a checkpoint (a stream that cannot be
  resumed, such as auditd's on stdin, or a lost checkpoint): from the host's last known time
  in the store to the earliest record read after the restart (``GapWindow.since_last_seen``:
  the ingest side knows that time; a host the store does not know, or whose last known time
  is not before that record, has no gap: a file re-read from its start misses nothing). It
  is emitted at the first clean point (no event half read), so it is keyed by that record's
  time and a collector restarted again before its first checkpoint marks the same gap;
* **lost-counter** gaps when following the live stream: the kernel's ``lost`` counter
  (``auditctl -s``, sampled when the watch starts and every ``every`` seconds after) grew
  between two samples: that many records are missing from the window between them. A
  counter that went down (reset) is a new baseline. Where ``auditctl -s`` does not work
  (not root, no auditd package) sampling stops after one warning.

Gap events go into the chunk the source is filling, so they are delivered (and
checkpointed) with it.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Iterator

from ..collectors.auditd.status import StatusError, parse_status
from ..collectors.source import Chunk, LineSource, Point
from ..schema.event import SCHEMA_VERSION, Event, GapWindow, Kind, ProcessInfo

log = logging.getLogger("ursprung.collect")

#: ``auditctl -s`` output, or an OSError / CalledProcessError / TimeoutExpired.
StatusReader = Callable[[], str]


def auditctl_status() -> str:
    return subprocess.run(["auditctl", "-s"], capture_output=True, text=True, check=True,
                          timeout=10).stdout


def _gap(source: str, host: str, ts: int, what: str, window: GapWindow) -> Event:
    return Event(v=SCHEMA_VERSION, source=source, host=host, ts=ts, seq=f"gap.{ts}",
                 kind=Kind.GAP, proc=ProcessInfo(pid=0), gap=what, window=window)


class LostCounter:
    """Samples of the kernel's lost counter; :meth:`sample` says what was lost since the
    previous one."""

    def __init__(self, host: str, every: float, *, read: StatusReader = auditctl_status,
                 clock: Callable[[], int] = time.time_ns,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.host = host
        self.every = every
        self.read = read
        self.clock = clock
        self.monotonic = monotonic
        self.working = True
        self._last: tuple[int, int] | None = None  # (time, lost)
        self._due = 0.0

    def _lost(self) -> int | None:
        try:
            return parse_status(self.read()).lost
        except (OSError, subprocess.SubprocessError, StatusError) as exc:
            log.warning("the kernel's lost-events counter cannot be read (auditctl -s: %s); "
                        "records the kernel drops will not be reported as gaps", exc)
            self.working = False
            return None

    def sample(self, *, force: bool = False) -> Event | None:
        """A gap event if the counter grew since the previous sample; samples only when
        due (``every`` seconds after the previous one) unless ``force``."""
        now = self.monotonic()
        if not self.working or (not force and now < self._due):
            return None
        self._due = now + self.every
        lost, ts = self._lost(), self.clock()
        if lost is None:
            return None
        last, self._last = self._last, (ts, lost)
        if last is None or lost <= last[1]:
            return None
        n = lost - last[1]
        return _gap("auditd", self.host, last[0], f"the kernel lost {n:,} audit records "
                    "(auditctl -s: lost counter)",
                    GapWindow(source="auditd-lost-counter", end=ts, count=n))


class GapWatch:
    """A line source with the gaps its collector knows of (module docstring)."""

    def __init__(self, inner: LineSource, host: str, *, restart: bool = False,
                 lost: LostCounter | None = None) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.host = host
        self.lost = lost
        self._restart = restart  # still to be marked (at the first clean point)
        self._first: int | None = None  # earliest record read since the start
        self._started = False

    def _watch(self, out: Chunk, *, force: bool = False) -> None:
        if not self._started:
            self._started = True
            force = True
        if self.lost is not None:
            gap = self.lost.sample(force=force)
            if gap is not None:
                out.events.append(gap)

    def _mark_restart(self, out: Chunk, since: int, pending: int) -> None:
        """The restart gap, at the earliest record read until the first clean point (no
        event half read, so the first record is among them; no checkpoint comes before that
        point). ``out.events`` from ``since`` on are new."""
        if not self._restart:
            return
        times = [e.ts for e in out.events[since:] if e.kind is not Kind.GAP]
        if times:
            self._first = min(times) if self._first is None else min(self._first, *times)
        if pending == 0 and self._first is not None:
            self._restart = False
            out.events.append(_gap(self.kind, self.host, self._first,
                                   f"{self.kind} collector started without a checkpoint",
                                   GapWindow(source="collector-restart", since_last_seen=True)))

    def feed_block(self, data: bytes, offset: int, where: str, out: Chunk) -> Iterator[Point]:
        self._watch(out)
        since = len(out.events)
        for point in self.inner.feed_block(data, offset, where, out):
            # before the point is handed on: the chunk delivered with this point's
            # checkpoint carries the gap
            self._mark_restart(out, since, point[1])
            yield point
            since = len(out.events)
        self._mark_restart(out, since, self.inner.pending)

    @property
    def records(self) -> int:
        return self.inner.records

    @property
    def pending(self) -> int:
        return self.inner.pending

    def idle(self, where: str, out: Chunk, quiet_seconds: float) -> None:
        self._watch(out)
        since = len(out.events)
        self.inner.idle(where, out, quiet_seconds)
        self._mark_restart(out, since, self.inner.pending)

    def flush(self, where: str, out: Chunk) -> None:
        self._watch(out)
        since = len(out.events)
        self.inner.flush(where, out)
        self._mark_restart(out, since, self.inner.pending)

    def snapshot(self) -> bytes:
        return self.inner.snapshot()
