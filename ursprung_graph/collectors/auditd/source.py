"""The auditd collector as a source of chunks: parse, normalize, and cut the stream only
where no event is half read, so that (offset, model state) is a clean point to resume from.

The parser's ``AuditEvent`` is a syscall record of the shape the shared OS model reads
(``collectors/os_model``), so parsed events go to the model as they are."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ...schema.event import DeadLetter, Event, raw_text
from ..os_model import OSModel
from .records import AuditEvent, AuditParser, Completed, Output, line_blocks
from .records import DeadLetter as RawDeadLetter

SOURCE = "auditd"

#: Cut a chunk after this much input even if an event is still open (a pathological log
#: that never pauses between events): memory stays bounded, at the price of that event.
FORCE_CUT_BYTES = 256 * 2**20


@dataclass(slots=True)
class Chunk:
    events: list[Event] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    offset: int = 0  # resume point: just after this chunk's last line
    records: int = 0


def dead_letter(raw: RawDeadLetter, where: str) -> DeadLetter:
    return DeadLetter(
        source=SOURCE, reason=raw.reason,
        raw=raw_text(raw.raw),
        where=f"{where}:{raw.offset}",
    )


class AuditdSource:
    """Parser plus OS model for one stream of audit records."""

    def __init__(self, host: str, state: bytes | None = None) -> None:
        self.parser = AuditParser(default_node=host)
        self.model = (OSModel.restore(host, state, source=SOURCE) if state
                      else OSModel(host, source=SOURCE))

    def snapshot(self) -> bytes:
        return self.model.snapshot()

    def take(self, items: list[Output], chunk: Chunk | Any, where: str) -> None:
        """Parsed items into ``chunk`` (anything with ``events`` and ``dead`` lists)."""
        apply, events = self.model.apply, chunk.events
        for item in items:
            if type(item) is AuditEvent:
                events += apply(item)
            elif isinstance(item, RawDeadLetter):
                chunk.dead.append(dead_letter(item, where))

    def chunks(self, lines: Iterable[bytes], offset: int, where: str,
               min_events: int = 5000) -> Iterator[Chunk]:
        """Chunks of at least ``min_events`` events (the last may be smaller), each ending
        where no event is pending. The source's state matches a chunk while it is held.

        ``lines``: raw lines, or a binary file (read in blocks: the same chunks, faster).
        """
        parser = self.parser
        take = self.take
        chunk = Chunk(offset=offset)
        records_before = parser.records
        end = offset
        for end, pending, records, items in self._completed(lines, offset):
            if items is None:
                break  # end of input
            take(items, chunk, where)
            if len(chunk.events) >= min_events and (
                    pending == 0 or end - chunk.offset > FORCE_CUT_BYTES):
                chunk.records = records - records_before
                records_before = records
                chunk.offset = end
                yield chunk
                chunk = Chunk(offset=end)
        take(parser.flush(), chunk, where)
        chunk.records = parser.records - records_before
        chunk.offset = end
        yield chunk

    def _completed(self, lines: Iterable[bytes], offset: int) -> Iterator[Completed]:
        """What ``feed_block`` returns, over all the input; then (end offset, 0, 0, None).

        The parser may read ahead of the last group taken: only the model's state is a
        chunk's, and a chunk ends where the parser had nothing pending."""
        parser = self.parser
        if isinstance(lines, io.BufferedIOBase):
            feed_block = parser.feed_block
            for data in line_blocks(lines.read1):
                if data[-1:] == b"\n":
                    yield from feed_block(data, offset)
                else:  # the last line, cut off: fed as it is, like an iterated line
                    items = parser.feed(data, offset)
                    if items:
                        yield offset + len(data), parser.pending, parser.records, items
                offset += len(data)
        else:
            feed = parser.feed
            for line in lines:
                items = feed(line, offset)
                offset += len(line)
                if items:
                    yield offset, parser.pending, parser.records, items
        yield offset, 0, 0, None  # type: ignore[misc]


def normalize_file(path: str, host: str) -> Iterator[Event | DeadLetter]:
    """Every normalized event and dead letter of an audit log (benchmarks, tests)."""
    source = AuditdSource(host)
    with open(path, "rb") as fh:
        for chunk in source.chunks(fh, 0, path):
            yield from chunk.events
            yield from chunk.dead

