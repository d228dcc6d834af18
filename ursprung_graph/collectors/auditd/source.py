"""The auditd collector as a line source (:class:`..source.LineSource`): audit records
are parsed, replayed into the OS model, and the stream can be cut wherever no event is half
read, so that (offset, model state) is a clean point to resume from.

The parser's ``AuditEvent`` is a syscall record of the shape the shared OS model reads
(``collectors/os_model``), so parsed events go to the model as they are."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

from ...schema.event import (
    SCHEMA_VERSION,
    DeadLetter,
    Event,
    GapWindow,
    Kind,
    ProcessInfo,
    raw_text,
)
from ..os_model import OSModel
from ..source import Chunk, Point
from .daemon import DaemonRecord, daemon_lines, record_time
from .records import AuditEvent, AuditParser, CaptureGap, Completed, Output, Rejected, line_blocks

SOURCE = "auditd"

#: What the source takes from a block: the parser's outputs and auditd's own records, per
#: (offset after a line, events pending there, records so far) as the parser groups them.
Item = Output | DaemonRecord
Group = tuple[int, int, int, list[Item]]

#: Cut a chunk after this much input even if an event is still open (a pathological log
#: that never pauses between events): memory stays bounded, at the price of that event.
FORCE_CUT_BYTES = 256 * 2**20
#: Quiet seconds after which half-read events are completed (single records without EOE).
IDLE_FLUSH = 2.0


@dataclass(slots=True)
class ResumableChunk:
    """A chunk of a whole input with the resume point after it (:meth:`AuditdSource.chunks`)."""

    events: list[Event] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    offset: int = 0  # resume point: just after this chunk's last line
    records: int = 0


def dead_letter(raw: Rejected, where: str) -> DeadLetter:
    return DeadLetter(
        source=SOURCE, reason=raw.reason,
        raw=raw_text(raw.raw),
        where=f"{where}:{raw.offset}", ts=record_time(raw.raw[:200]),
    )


class AuditdSource:
    """Parser plus OS model for one stream of audit records."""

    kind = "auditd"

    def __init__(self, host: str, state: bytes | None = None) -> None:
        self.parser = AuditParser(default_node=host)
        self.model = (OSModel.restore(host, state, source=SOURCE) if state
                      else OSModel(host, source=SOURCE))

    def snapshot(self) -> bytes:
        return self.model.snapshot()

    @property
    def records(self) -> int:
        return self.parser.records

    @property
    def pending(self) -> int:
        return self.parser.pending

    def feed_block(self, data: bytes, offset: int, where: str, out: Chunk) -> Iterator[Point]:
        for end, pending, _, items in self._parse(data, offset):
            self.take(items, out, where)
            yield end, pending

    def idle(self, where: str, out: Chunk, quiet_seconds: float) -> None:
        if self.parser.pending and quiet_seconds >= IDLE_FLUSH:
            self.take(self.parser.flush(), out, where)

    def flush(self, where: str, out: Chunk) -> None:
        self.take(self.parser.flush(), out, where)

    def _parse(self, data: bytes, offset: int) -> list[Group]:
        """The parser's completed groups for a block; a last line without a newline (the
        end of the input, cut off) is fed as it is. auditd's own records (which the parser
        skips) join the group of the first line at or after theirs."""
        parser = self.parser
        if data[-1:] == b"\n":
            done = parser.feed_block(data, offset)
        else:
            body = data.rfind(b"\n") + 1
            done = parser.feed_block(data[:body], offset) if body else []
            items = parser.feed(data[body:], offset + body)
            if items:
                done.append((offset + len(data), parser.pending, parser.records, items))
        daemon = list(daemon_lines(data, offset))
        if not daemon:
            return cast(list[Group], done)  # a list of Output is a list of Item
        return _with_daemon(done, daemon, offset + len(data), parser.pending, parser.records)

    def take(self, items: Sequence[Item], chunk: Chunk | ResumableChunk, where: str) -> None:
        """Parsed items into ``chunk``."""
        apply, events = self.model.apply, chunk.events
        made: list[Event] = []
        for item in items:
            if type(item) is AuditEvent:
                made = apply(item)
                events += made
            elif isinstance(item, Rejected):
                chunk.dead.append(dead_letter(item, where))
            elif isinstance(item, CaptureGap):  # follows its event, whose events are `made`
                events.append(self._gap(item, len(made)))
            elif isinstance(item, DaemonRecord):
                events.append(self._daemon(item))

    def _gap(self, gap: CaptureGap, after: int) -> Event:
        """A capture gap as an event of the process the incomplete syscall belongs to."""
        sc = gap.event
        host = sc.node or self.model.default_host
        proc = self.model.process(host, sc.pid)
        info = (ProcessInfo(pid=proc.pid, start=proc.start, ppid=proc.ppid) if proc
                else ProcessInfo(pid=sc.pid, ppid=sc.ppid))
        return Event(v=SCHEMA_VERSION, source=SOURCE, host=host, ts=sc.ts,
                     seq=f"{sc.serial}.{after}", kind=Kind.GAP, proc=info,
                     gap=f"{gap.reason} ({sc.syscall})",
                     window=GapWindow(source="truncated-event", end=sc.ts))

    def _daemon(self, record: DaemonRecord) -> Event:
        """auditd stopped (a gap, open until it records again), resumed (the end of its
        host's open gaps) or rotated its log (a note)."""
        host = record.node or self.model.default_host
        window = GapWindow(source="auditd-daemon", note=record.kind == "note",
                           resumes=record.kind == "resume",
                           end=record.ts if record.kind == "note" else None)
        return Event(v=SCHEMA_VERSION, source=SOURCE, host=host, ts=record.ts,
                     seq=f"daemon.{record.serial}", kind=Kind.GAP, proc=ProcessInfo(pid=0),
                     gap=record.what, window=window)

    def chunks(self, lines: Iterable[bytes], offset: int, where: str,
               min_events: int = 5000) -> Iterator[ResumableChunk]:
        """A whole input in chunks of at least ``min_events`` events (the last may be
        smaller), each ending where no event is pending; the source's state matches a chunk
        while it is held. ``lines``: raw lines, or a binary file (read in blocks)."""
        chunk = ResumableChunk(offset=offset)
        records_before = self.parser.records
        end = offset
        for data in _blocks(lines):
            for end, pending, records, items in self._parse(data, offset):
                self.take(items, chunk, where)
                if len(chunk.events) >= min_events and (
                        pending == 0 or end - chunk.offset > FORCE_CUT_BYTES):
                    chunk.records = records - records_before
                    records_before = records
                    chunk.offset = end
                    yield chunk
                    chunk = ResumableChunk(offset=end)
            offset += len(data)
        self.take(self.parser.flush(), chunk, where)
        chunk.records = self.parser.records - records_before
        chunk.offset = offset
        yield chunk


def _with_daemon(done: list[Completed], daemon: list[DaemonRecord], block_end: int,
                 pending: int, records: int) -> list[Group]:
    """``done`` with each DAEMON_* record in the group of the first line at or after it, or
    in a group at the end of the block (where the parser's counts, given, are exact)."""
    out: list[Group] = []
    i = 0
    for end, at_end, count, items in done:
        first: list[Item] = []
        while i < len(daemon) and daemon[i].end <= end:
            first.append(daemon[i])
            i += 1
        out.append((end, at_end, count, [*first, *items]))
    if i < len(daemon):
        out.append((block_end, pending, records, list(daemon[i:])))
    return out


def _blocks(lines: Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(lines, io.BufferedIOBase):
        yield from line_blocks(lines.read1)
    else:
        yield from lines


def normalize_file(path: str, host: str) -> Iterator[Event | DeadLetter]:
    """Every normalized event and dead letter of an audit log (benchmarks, tests)."""
    source = AuditdSource(host)
    with open(path, "rb") as fh:
        for chunk in source.chunks(fh, 0, path):
            yield from chunk.events
            yield from chunk.dead

