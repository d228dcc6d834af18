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

import hashlib
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from ..collectors.auditd.records import line_blocks
from ..collectors.auditd.source import AuditdSource
from ..ingest.bus import Publisher, publish_events
from ..ingest.checkpoint import HEAD_BYTES, Checkpoint, CheckpointStore
from ..schema.event import DeadLetter, Event
from .scale import ScaleChunk, ScaleMapper

log = logging.getLogger("ursprung.collect")

READ_BYTES = 1 << 16  # lines are read in blocks of about this size
IDLE_FLUSH = 2.0  # quiet seconds after which half-read audit events are completed
MAX_FINISHED = 64  # rotated files remembered as read to their end (auditd keeps num_logs)


@dataclass(slots=True)
class FollowOptions:
    chunk_events: int = 2000
    flush_seconds: float = 0.5
    poll_seconds: float = 0.1
    pair_seconds: float = 2.0
    pair_events: int = 10000
    follow: bool = True  # False: read to the end once, finish every event, stop


@dataclass(slots=True)
class FollowStats:
    lines: int = 0
    events: int = 0
    dead_letters: int = 0
    chunks: int = 0
    rotations: int = 0
    resumed_from: int = 0
    files: list[str] = field(default_factory=list)  # each file read, by its name when opened
    inodes: list[int] = field(default_factory=list)  # ... and its inode


class Sink(Protocol):
    def emit(self, events: list[Event], dead: list[DeadLetter], host: str) -> None:
        """Deliver durably (return only when the bus has them), or raise."""


class InFlight:
    """Deliveries run in order in one background thread while the caller reads on.

    At most ``depth`` deliveries wait or run at once: `submit` blocks while that many are
    queued (memory stays bounded), and re-raises the error of a failed delivery, after
    which no later delivery runs, so what follows a delivery (its checkpoint) never
    happens out of order or after a failure. `wait` is the barrier at the end. Waiting for
    the bus's acknowledgements releases the GIL, so it overlaps with parsing in CPython;
    the depth covers a slow first acknowledgement (a new idempotent producer's set-up).
    """

    def __init__(self, depth: int = 16) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, deliver: Callable[[], None]) -> None:
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ursprung-deliver",
                                            daemon=True)
            self._thread.start()
        self._queue.put(deliver)

    def _run(self) -> None:
        while (deliver := self._queue.get()) is not None:
            try:
                if self._error is None:  # after a failure, later deliveries are dropped
                    deliver()
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
                self._error = exc
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def wait(self) -> None:
        """Until every submitted delivery has run; re-raise the first failure."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


class BusSink:
    """Publish chunks to a bus topic, one message per key and ``per_message`` events."""

    def __init__(self, publisher: Publisher, topic: str, source: str, *,
                 per_message: int = 1000, buckets: int = 1) -> None:
        self.publisher = publisher
        self.topic = topic
        self.source = source
        self.per_message = per_message
        self.buckets = buckets
        self.messages = 0

    def emit(self, events: list[Event], dead: list[DeadLetter], host: str) -> None:
        self.messages += publish_events(self.publisher, self.topic, self.source, events, dead,
                                        host, per_message=self.per_message,
                                        buckets=self.buckets)
        self.publisher.flush()


# ------------------------------------------------------------------------ sources


class _Chunk:
    __slots__ = ("events", "dead", "skipped")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.dead: list[DeadLetter] = []
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.events) + len(self.dead)


class LineSource(Protocol):
    kind: str

    def feed(self, line: bytes, offset: int, where: str, out: _Chunk) -> bool:
        """Take one line; True if ``out`` may have grown."""

    @property
    def pending(self) -> int: ...

    def flush(self, where: str, out: _Chunk) -> None: ...

    def snapshot(self) -> bytes: ...


class AuditLines:
    kind = "auditd"

    def __init__(self, host: str, state: bytes | None) -> None:
        self.source = AuditdSource(host, state)

    def feed(self, line: bytes, offset: int, where: str, out: _Chunk) -> bool:
        items = self.source.parser.feed(line, offset)
        if items:
            self.source.take(items, out, where)
            return True
        return False

    @property
    def pending(self) -> int:
        return self.source.parser.pending

    def flush(self, where: str, out: _Chunk) -> None:
        self.source.take(self.source.parser.flush(), out, where)

    def snapshot(self) -> bytes:
        return self.source.snapshot()


class ScaleLines:
    kind = "scale"

    def __init__(self, state: bytes | None, pair_seconds: float = 2.0,
                 pair_events: int = 10000) -> None:
        self.mapper = ScaleMapper(state, pair_seconds=pair_seconds, pair_events=pair_events)

    def feed(self, line: bytes, offset: int, where: str, out: _Chunk) -> bool:
        chunk = ScaleChunk(out.events, out.dead)
        self.mapper.feed_line(line, f"{where}:{offset}", chunk)
        out.skipped += chunk.skipped
        return True

    @property
    def pending(self) -> int:
        return 0  # pending move halves are part of the saved state

    def flush(self, where: str, out: _Chunk) -> None:
        self.mapper.flush(ScaleChunk(out.events, out.dead))

    def expire_idle(self, out: _Chunk) -> None:
        self.mapper.expire(ScaleChunk(out.events, out.dead), everything=True)

    def snapshot(self) -> bytes:
        return self.mapper.snapshot()


# ------------------------------------------------------------------------ the follower


def head_of(fh: BinaryIO, offset: int) -> str:
    """Hash of the file's first min(offset, HEAD_BYTES) bytes: what was read is stable."""
    pos = fh.tell()
    fh.seek(0)
    data = fh.read(min(offset, HEAD_BYTES))
    fh.seek(pos)
    return hashlib.sha256(data).hexdigest()


def stream_name(kind: str, host: str, path: Path) -> str:
    # Not the importer's name: a local import and a collector keep separate checkpoints.
    return f"collect-{kind}:{host}:{path}"


class Follower:
    def __init__(self, path: Path, source_factory: Callable[[bytes | None], LineSource],
                 sink: Sink, *, host: str, checkpoints: CheckpointStore | None,
                 options: FollowOptions | None = None,
                 stop: threading.Event | None = None) -> None:
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
        self.stream = stream_name(self.kind, host, self.path)
        # (st_dev, st_ino) -> (size, head hash) of files read to their end, oldest first
        self._finished: OrderedDict[tuple[int, int], tuple[int, str]] = OrderedDict()
        self._inflight = InFlight()

    # checkpoint ---------------------------------------------------------------

    def _clean_point(self, fh: BinaryIO, offset: int) -> Checkpoint:
        """A resume point: here no event is half read, and this is the collector's state."""
        st = os.fstat(fh.fileno())
        return Checkpoint(path=self.where, inode=st.st_ino, head=head_of(fh, offset),
                          offset=offset, state=self.source.snapshot(),
                          events=self.stats.events, dead_letters=self.stats.dead_letters)

    def _resume(self) -> tuple[BinaryIO | None, int]:
        """(open file, offset) to continue from, or (None, 0) for a fresh start."""
        saved = self.checkpoints.load(self.stream) if self.checkpoints else None
        if saved is None:
            self.source = self.make_source(None)
            return None, 0
        candidates = [self.path] + sorted(self.path.parent.glob(self.path.name + ".*"))
        for cand in candidates:
            try:
                fh = cand.open("rb")
            except OSError:
                continue
            st = os.fstat(fh.fileno())
            if (st.st_ino == saved.inode and st.st_size >= saved.offset
                    and head_of(fh, saved.offset) == saved.head):
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
        chunk = _Chunk()
        self._candidate: Checkpoint | None = None  # clean point not yet published
        want_point = True
        last_data = last_emit = time.monotonic()
        try:
            while True:
                lines = fh.readlines(READ_BYTES)
                partial = lines and not lines[-1].endswith(b"\n") and self.opt.follow
                if partial:  # a half-written last line: read it again when complete
                    lines.pop()
                if lines:
                    source, feed, where = self.source, self.source.feed, self.where
                    limit = self.opt.chunk_events
                    for line in lines:
                        grew = feed(line, offset, where, chunk)
                        offset += len(line)
                        if not grew:
                            continue
                        if want_point and source.pending == 0:
                            self._candidate = self._clean_point(fh, offset)
                            want_point = False
                        if len(chunk) >= limit:
                            self._emit(chunk, fh, offset)
                            chunk, last_emit, want_point = _Chunk(), time.monotonic(), True
                    self.stats.lines += len(lines)
                    last_data = time.monotonic()
                    if partial:
                        fh.seek(offset)
                    if self.stop.is_set():
                        break
                    if not partial:
                        continue
                elif partial:
                    fh.seek(offset)
                # at the end of what is there
                if not self.opt.follow:
                    self.source.flush(self.where, chunk)
                    self._emit(chunk, fh, offset, force=True)
                    self._inflight.wait()
                    return self.stats
                nxt = self._rotated(fh, offset)
                if nxt is not None:
                    # The old file is finished (read to its end above): same stream goes on.
                    if len(chunk):
                        self._emit(chunk, fh, offset)
                        chunk, last_emit, want_point = _Chunk(), time.monotonic(), True
                    fh.close()
                    fh, offset = nxt, 0
                    self.stats.rotations += 1
                    self._opened(fh)
                    log.info("followed rotation of %s: now reading %s", self.path, fh.name)
                    continue
                now = time.monotonic()
                if self.source.pending and now - last_data >= IDLE_FLUSH:
                    self.source.flush(self.where, chunk)
                if isinstance(self.source, ScaleLines) and now - last_data >= max(
                        self.opt.pair_seconds, self.opt.flush_seconds):
                    self.source.expire_idle(chunk)
                if len(chunk) and now - last_emit >= self.opt.flush_seconds:
                    self._emit(chunk, fh, offset)
                    chunk, last_emit, want_point = _Chunk(), now, True
                if self.stop.is_set():
                    break
                self.stop.wait(self.opt.poll_seconds)
            # stopping: publish what was read; events still half read are re-read later
            self._emit(chunk, fh, offset)
            self._inflight.wait()
            return self.stats
        finally:
            fh.close()

    def _emit(self, chunk: _Chunk, fh: BinaryIO, offset: int, force: bool = False) -> None:
        """Hand the chunk to the delivering thread; its checkpoint follows its delivery."""
        self.stats.events += len(chunk.events)
        self.stats.dead_letters += len(chunk.dead)
        self.stats.chunks += 1
        # Once this chunk is delivered, everything read is: the best resume point is here if
        # it is clean, else the latest clean point seen since the previous chunk.
        point = self._clean_point(fh, offset) if self.source.pending == 0 else self._candidate
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


def audit_factory(host: str) -> Callable[[bytes | None], LineSource]:
    return lambda state: AuditLines(host, state)


def scale_factory(pair_seconds: float = 2.0, pair_events: int = 10000
                  ) -> Callable[[bytes | None], LineSource]:
    return lambda state: ScaleLines(state, pair_seconds, pair_events)


def read_stream(fh: BinaryIO, source: LineSource, sink: Sink, host: str, *, where: str = "-",
                chunk_events: int = 2000, stop: threading.Event | None = None) -> FollowStats:
    """A stream that cannot be re-read (stdin as an audisp plugin): no checkpoint. Chunks
    go out when full and whenever the input pauses (audisp writes whole events)."""
    stats = FollowStats()
    chunk = _Chunk()
    offset = 0
    inflight = InFlight()

    def emit() -> None:
        nonlocal chunk
        if len(chunk):
            full = chunk
            inflight.submit(lambda: sink.emit(full.events, full.dead, host))
            stats.events += len(chunk.events)
            stats.dead_letters += len(chunk.dead)
            stats.chunks += 1
            chunk = _Chunk()

    for lines in _line_blocks(fh):
        for line in lines:
            source.feed(line, offset, where, chunk)
            offset += len(line)
            stats.lines += 1
            if len(chunk) >= chunk_events and source.pending == 0:
                emit()
        if source.pending == 0:
            emit()  # the input paused: what we have goes out now
        if stop is not None and stop.is_set():
            break
    source.flush(where, chunk)
    emit()
    inflight.wait()
    return stats


def _line_blocks(fh: BinaryIO):  # noqa: ANN202
    """Lists of complete lines as they arrive; a list ends where the input paused (each
    ``os.read`` returns what the writer wrote so far)."""
    try:
        fd = fh.fileno()
    except (AttributeError, OSError, ValueError):
        yield fh.readlines()  # an in-memory stream: one block
        return
    for block in line_blocks(lambda size: os.read(fd, size)):
        yield block.splitlines(keepends=True)
