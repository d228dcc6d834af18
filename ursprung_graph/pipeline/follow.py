"""Checkpointed following of a growing log (audit log, or Scale JSON lines) into a sink.

The loop reads complete lines, turns them into events (auditd: parser + OS model; Scale:
`ScaleMapper`), and every ``chunk_events`` events, or when nothing new came for
``flush_seconds``, hands the chunk to the sink (publish to the bus and wait for the acks),
then saves the checkpoint: file identity (inode + hash of its head), offset, and the
collector's state at that offset. The order is the contract: a checkpoint never runs ahead
of what the bus has, so a collector killed at any point and restarted resends at most one
chunk (harmless: upserts are idempotent) and loses nothing.

A checkpoint is taken only where no audit event is half read (``pending == 0``), so the
saved model state is exact. Events that never complete (single records without EOE) are
flushed from the parser after ``IDLE_FLUSH`` quiet seconds, like the end of a file import.

Rotation (auditd renames ``audit.log.N`` to ``audit.log.N+1``, ``audit.log`` to
``audit.log.1``, and starts a new file): at the end of the file the follower checks whether
the path still names its inode; if not, it reads the old file (still open) to its end, then
goes on with the oldest file of the rotation set (``audit.log`` and ``audit.log.<digits>``
in the same directory) that it has not read and that is newer than the one it finished
(``st_mtime_ns``, ties broken by rotation number: a higher number is older), and with the
file at the path only when there is none. So a follower several rotations behind (slow, or
paused) reads every file in between, in order; files older than the one it started with
(the history before a fresh start) are not read. The inodes (with their size and head
hash, against inode reuse) of the last ``MAX_FINISHED`` finished files are remembered and
never read again. The parser and model carry on across the switches, as if the files were
one stream. After a restart, a checkpoint whose inode is no longer at the path is looked
for among the rotated siblings (``audit.log.*``); that file is finished first and the
follower continues the same way. A file that shrank below the checkpoint (truncated in
place) is read again from 0.

Publishing does not wait for a clean point (a busy log may have a half-read event at any
moment): the checkpoint moves to the latest clean point at or before what is published, so
a restart may publish a little again, never less.

Delivery is pipelined (:class:`InFlight`): while the sink delivers chunk N and waits for the
bus's acknowledgement (a third of a collector's time when it waited in line), the follower
already reads and parses the next chunks; chunk N's checkpoint is saved by the delivering
thread once the sink has returned, and chunk N+1 is delivered only after that. So the order
"delivered, then checkpointed" holds chunk by chunk, and a failed delivery stops the
follower with that error before anything later is checkpointed.

SIGTERM or SIGINT (``stop``): what was read is published, the checkpoint saved, and it
exits; events still half read are read again after the restart.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..collectors.auditd.records import line_blocks
from ..collectors.source import Chunk, LineSource
from ..config import CollectConfig
from .checkpoint import Checkpoint, CheckpointStore, head_of, same_file
from .sinks import InFlight, Sink

log = logging.getLogger("ursprung.collect")

READ_BYTES = 1 << 16  # lines are read in blocks of about this size
MAX_FINISHED = 64  # rotated files remembered as read to their end (auditd keeps num_logs)

_COLLECT = CollectConfig()


@dataclass(slots=True)
class FollowOptions:
    """How a follower reads and delivers (defaults: the ``[collect]`` configuration's)."""

    chunk_events: int = _COLLECT.chunk_events
    flush_seconds: float = _COLLECT.flush_seconds
    poll_seconds: float = _COLLECT.poll_seconds
    follow: bool = True  # False: read to the end once, finish every event, stop

    @classmethod
    def from_config(cls, collect: CollectConfig, *, follow: bool) -> FollowOptions:
        return cls(chunk_events=collect.chunk_events, flush_seconds=collect.flush_seconds,
                   poll_seconds=collect.poll_seconds, follow=follow)


@dataclass(slots=True)
class FollowStats:
    lines: int = 0
    records: int = 0
    events: int = 0
    dead_letters: int = 0
    chunks: int = 0
    bytes: int = 0
    rotations: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)  # each file read, by its name when opened
    inodes: list[int] = field(default_factory=list)  # ... and its inode

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def add(self, other: FollowStats) -> None:
        """Totals over several inputs."""
        for name in ("lines", "records", "events", "dead_letters", "chunks", "bytes",
                     "rotations", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


SourceFactory = Callable[[bytes | None], LineSource]
#: Called with the number of bytes consumed since the last call (a progress bar).
Progress = Callable[[int], None]


def stream_name(kind: str, host: str, path: Path) -> str:
    """A collector's checkpoint name. A local import keeps its own (``import_file``): the
    two deliver to different places."""
    return f"collect-{kind}:{host}:{path}"


def read_lines(fh: BinaryIO, offset: int) -> tuple[bytes, bool]:
    """Whole lines from ``offset`` (where ``fh`` is), about ``READ_BYTES`` of them, leaving
    ``fh`` just after the last newline; and whether the data is instead a last line without
    its newline (the file ends there, for now)."""
    data = fh.read(READ_BYTES)
    while True:
        cut = data.rfind(b"\n") + 1
        if cut:
            if cut < len(data):
                fh.seek(offset + cut)
            return data[:cut], False
        more = fh.read(READ_BYTES)  # a line longer than a block, or the end of the file
        if not more:
            return data, bool(data)
        data += more


class Follower:
    """Reads one file (and, when following, its rotations) into a sink, checkpointed.

    ``stream`` names the checkpoint (default :func:`stream_name`); ``resume=False`` ignores
    a saved one; ``progress`` is told the bytes consumed."""

    def __init__(self, path: Path, source_factory: SourceFactory, sink: Sink, *, host: str,
                 checkpoints: CheckpointStore | None, options: FollowOptions | None = None,
                 stop: threading.Event | None = None, stream: str | None = None,
                 resume: bool = True, progress: Progress | None = None) -> None:
        self.path = Path(os.path.abspath(path))
        self.where = str(self.path)
        self.make_source = source_factory
        self.sink = sink
        self.host = host
        self.checkpoints = checkpoints
        self.opt = options or FollowOptions()
        self.stop = stop or threading.Event()
        self.stats = FollowStats()
        self.source: LineSource | None = None
        self.kind = source_factory(None).kind
        self.stream = stream or stream_name(self.kind, host, self.path)
        self.resume = resume
        self.progress = progress
        # (st_dev, st_ino) -> (size, head hash) of files read to their end, oldest first
        self._finished: OrderedDict[tuple[int, int], tuple[int, str]] = OrderedDict()
        self._inflight = InFlight()

    # checkpoint ---------------------------------------------------------------

    def _clean_point(self, fh: BinaryIO, offset: int) -> Checkpoint:
        """A resume point: here no event is half read, and this is the collector's state."""
        assert self.source is not None
        st = os.fstat(fh.fileno())
        return Checkpoint(path=self.where, inode=st.st_ino, head=head_of(fh, offset),
                          offset=offset, state=self.source.snapshot(),
                          events=self.stats.events, dead_letters=self.stats.dead_letters)

    def _resume(self) -> tuple[BinaryIO | None, int]:
        """(open file, offset) to continue from, or (None, 0) for a fresh start."""
        saved = self.checkpoints.load(self.stream) if self.checkpoints and self.resume else None
        if saved is None:
            self.source = self.make_source(None)
            return None, 0
        candidates = [self.path]
        if self.opt.follow:  # a follower goes on in the file its checkpoint was rotated to
            candidates += sorted(self.path.parent.glob(self.path.name + ".*"))
        for cand in candidates:
            try:
                fh = cand.open("rb")
            except OSError:
                continue
            if same_file(fh, saved):
                self.source = self.make_source(saved.state)
                self.stats.resumed_from = saved.offset
                if cand != self.path:
                    log.info("resuming in rotated file %s at %d", cand, saved.offset)
                fh.seek(saved.offset)
                return fh, saved.offset
            fh.close()
        log.warning("checkpoint names a file that is gone or changed: starting over")
        self.source = self.make_source(None)
        return None, 0

    # loop -----------------------------------------------------------------------

    def run(self) -> FollowStats:
        """Publishing and checkpointing are decoupled: a chunk is published when it is full
        or the file is quiet, wherever the parser is; the checkpoint moves to the latest
        clean point (no half-read event) that is already published. On a busy log a clean
        point may be rare, but publishing never waits for one."""
        fh, offset = self._resume()
        if fh is None:
            fh = self._open_current(wait=self.opt.follow)
            if fh is None:
                return self.stats
        self._opened(fh)
        started = time.monotonic()
        chunk = Chunk()
        self._candidate: Checkpoint | None = None  # clean point not yet published
        want_point = True
        last_data = last_emit = time.monotonic()
        limit, where, follow = self.opt.chunk_events, self.where, self.opt.follow
        try:
            while True:
                source = self.source
                assert source is not None
                data, partial = read_lines(fh, offset)
                if partial and follow:  # a half-written last line: read it when complete
                    fh.seek(offset)
                    data = b""
                if data:
                    for end, pending in source.feed_block(data, offset, where, chunk):
                        if want_point and pending == 0:
                            self._candidate = self._clean_point(fh, end)
                            want_point = False
                        if len(chunk) >= limit:
                            self._emit(chunk, fh, end, pending)
                            last_emit, want_point = time.monotonic(), True
                    offset += len(data)
                    self._consumed(len(data), data.count(b"\n") + partial)
                    last_data = time.monotonic()
                    if self.stop.is_set():
                        break
                    continue
                # at the end of what is there
                if not follow:
                    source.flush(where, chunk)
                    self._emit(chunk, fh, offset, 0, force=True)
                    self._inflight.wait()
                    return self.stats
                nxt = self._rotated(fh, offset)
                if nxt is not None:
                    # The old file is finished (read to its end above): same stream goes on.
                    if len(chunk):
                        self._emit(chunk, fh, offset, source.pending)
                        last_emit, want_point = time.monotonic(), True
                    fh.close()
                    fh, offset = nxt, 0
                    self.stats.rotations += 1
                    self._opened(fh)
                    log.info("followed rotation of %s: now reading %s", self.path, fh.name)
                    continue
                now = time.monotonic()
                source.idle(where, chunk, now - last_data)
                if len(chunk) and now - last_emit >= self.opt.flush_seconds:
                    self._emit(chunk, fh, offset, source.pending)
                    last_emit, want_point = now, True
                if self.stop.is_set():
                    break
                self.stop.wait(self.opt.poll_seconds)
            # stopping: publish what was read; events still half read are re-read later
            self._emit(chunk, fh, offset, source.pending)
            self._inflight.wait()
            return self.stats
        finally:
            fh.close()
            self.stats.seconds += time.monotonic() - started

    def _consumed(self, size: int, lines: int) -> None:
        assert self.source is not None
        self.stats.bytes += size
        self.stats.lines += lines
        self.stats.records = self.source.records
        if self.progress is not None:
            self.progress(size)

    def _emit(self, chunk: Chunk, fh: BinaryIO, offset: int, pending: int,
              force: bool = False) -> None:
        """Hand what the chunk holds to the delivering thread; its checkpoint follows its
        delivery. ``pending``: events half read at ``offset``."""
        chunk = chunk.take()
        self.stats.events += len(chunk.events)
        self.stats.dead_letters += len(chunk.dead)
        self.stats.chunks += 1
        # Once this chunk is delivered, everything read is: the best resume point is here if
        # it is clean, else the latest clean point seen since the previous chunk.
        point = self._clean_point(fh, offset) if pending == 0 else self._candidate
        self._candidate = None
        send = bool(len(chunk) or force)
        if not send and point is None:
            return

        def deliver() -> None:
            if send:
                self.sink.emit(chunk.events, chunk.dead, self.host)
            if point is not None and self.checkpoints is not None:
                self.checkpoints.save(self.stream, point)

        self._inflight.submit(deliver)

    def _open_current(self, wait: bool) -> BinaryIO | None:
        while True:
            try:
                return self.path.open("rb")
            except FileNotFoundError:
                if not wait or self.stop.is_set():
                    return None
                self.stop.wait(self.opt.poll_seconds)

    def _opened(self, fh: BinaryIO) -> None:
        self.stats.files.append(os.path.realpath(fh.name))
        self.stats.inodes.append(os.fstat(fh.fileno()).st_ino)

    def _rotated(self, fh: BinaryIO, offset: int) -> BinaryIO | None:
        """The next file to read if the one we read (to its end) was rotated away; None
        otherwise. A file truncated in place is reopened from the start."""
        mine = os.fstat(fh.fileno())
        try:
            st = self.path.stat()
        except FileNotFoundError:
            st = None  # rotated, the new one not yet created: maybe a rotated one to read
        if st is not None and _same(st, mine):
            if mine.st_size < offset:
                log.warning("%s was truncated: reading it again from the start", self.path)
                return self.path.open("rb")
            return None
        # Rotated: anything appended to the old file before the switch must be read first.
        if mine.st_size > offset:
            return None
        nxt = self._next_file(mine)
        if nxt is not None:
            self._finish(fh, mine, offset)
        return nxt

    def _finish(self, fh: BinaryIO, st: os.stat_result, offset: int) -> None:
        self._finished[(st.st_dev, st.st_ino)] = (offset, head_of(fh, offset))
        self._finished.move_to_end((st.st_dev, st.st_ino))
        while len(self._finished) > MAX_FINISHED:
            self._finished.popitem(last=False)

    def _was_finished(self, fh: BinaryIO, st: os.stat_result) -> bool:
        """A file read to its end before (not merely a new file on a reused inode)."""
        known = self._finished.get((st.st_dev, st.st_ino))
        if known is None:
            return False
        size, head = known
        return st.st_size >= size and head_of(fh, size) == head

    def _rotation_set(self) -> list[tuple[int, BinaryIO, os.stat_result]]:
        """(rotation number, open file, its stat) of the path (0) and ``path.N``, each
        file once. Opened in increasing N: auditd renames from the highest N down, so a
        file renamed while we look is met at its new, higher number, never missed."""
        base = self.path.name
        numbers = {0}
        try:
            names = os.listdir(self.path.parent)
        except OSError:
            names = []
        for name in names:
            if name.startswith(base + ".") and name[len(base) + 1:].isdigit():
                numbers.add(int(name[len(base) + 1:]))
        out: list[tuple[int, BinaryIO, os.stat_result]] = []
        seen: set[tuple[int, int]] = set()
        for n in range(max(numbers) + 2):  # +1: the top one may move up while we look
            path = self.path if n == 0 else self.path.with_name(f"{base}.{n}")
            try:
                f = path.open("rb")
            except OSError:
                continue
            st = os.fstat(f.fileno())
            if (st.st_dev, st.st_ino) in seen:
                f.close()
                continue
            seen.add((st.st_dev, st.st_ino))
            out.append((n, f, st))
        return out

    def _next_file(self, done: os.stat_result) -> BinaryIO | None:
        """After ``done`` (read to its end, no longer at the path): the oldest rotated file
        newer than it that was not read yet; else the file at the path; else None."""
        files = self._rotation_set()
        chosen: BinaryIO | None = None
        try:
            where = next((n for n, _, st in files if _same(st, done)), None)
            # Not found (deleted): it was the oldest, so equal times count as newer.
            done_key = (done.st_mtime_ns, -where if where is not None else float("-inf"))
            best: tuple[tuple[int, int], BinaryIO] | None = None
            current: BinaryIO | None = None
            for n, f, st in files:
                if _same(st, done):
                    continue
                if n == 0:
                    current = f
                    continue
                key = (st.st_mtime_ns, -n)
                if key <= done_key or self._was_finished(f, st):
                    continue  # older than what we read (history), or read already
                if best is None or key < best[0]:
                    best = (key, f)
            chosen = best[1] if best is not None else current
            if chosen is not None and chosen is not current and current is not None:
                log.info("%s is more than one rotation behind", self.path)
            return chosen
        finally:
            for _, f, _ in files:
                if f is not chosen:
                    f.close()


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return a.st_ino == b.st_ino and a.st_dev == b.st_dev


def read_stream(fh: BinaryIO, source: LineSource, sink: Sink, host: str, *, where: str = "-",
                chunk_events: int = _COLLECT.chunk_events,
                stop: threading.Event | None = None,
                progress: Progress | None = None) -> FollowStats:
    """A stream that cannot be re-read (stdin as an audisp plugin): no checkpoint. Chunks
    go out when full and whenever the input pauses (audisp writes whole events)."""
    started = time.monotonic()
    stats = FollowStats()
    chunk = Chunk()
    offset = 0
    inflight = InFlight()

    def emit() -> None:
        if len(chunk):
            full = chunk.take()
            inflight.submit(lambda: sink.emit(full.events, full.dead, host))
            stats.events += len(full.events)
            stats.dead_letters += len(full.dead)
            stats.chunks += 1

    for data in _blocks(fh):
        for _, pending in source.feed_block(data, offset, where, chunk):
            if len(chunk) >= chunk_events and pending == 0:
                emit()
        offset += len(data)
        stats.bytes += len(data)
        stats.lines += data.count(b"\n") + (not data.endswith(b"\n"))
        if progress is not None:
            progress(len(data))
        if source.pending == 0:
            emit()  # the input paused: what we have goes out now
        if stop is not None and stop.is_set():
            break
    source.flush(where, chunk)
    emit()
    inflight.wait()
    stats.records = source.records
    stats.seconds = time.monotonic() - started
    return stats


def _blocks(fh: BinaryIO) -> Iterator[bytes]:
    """Blocks of complete lines as they arrive; a block ends where the input paused (each
    ``os.read`` returns what the writer wrote so far)."""
    try:
        fd = fh.fileno()
    except (AttributeError, OSError, ValueError):
        yield fh.read()  # an in-memory stream: one block
        return
    yield from line_blocks(lambda size: os.read(fd, size))
