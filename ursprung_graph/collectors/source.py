"""What every streaming collector offers the pipeline: blocks of raw lines in, chunks of
normalized events and dead letters out, and a state that a checkpoint can save.

A source is fed whole lines in blocks (``feed_block``); for each line that produced output
it yields the offset just after that line and how many events are still half read there,
so a caller can cut the stream where nothing is pending and save :meth:`snapshot` as the
state at that offset. The caller (``pipeline.follow``) owns files, checkpoints and sinks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from ..schema.event import DeadLetter, Event


@dataclass(slots=True)
class Chunk:
    """Events and dead letters produced by a source; ``skipped`` counts records that were
    understood but carry no provenance."""

    events: list[Event] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.events) + len(self.dead)

    def take(self) -> Chunk:
        """What the chunk holds, as a chunk of its own; this one is empty again (a source
        may still be writing into it)."""
        out = Chunk(self.events, self.dead, self.skipped)
        self.events, self.dead, self.skipped = [], [], 0
        return out


#: (offset just after a line that produced output, events still half read there)
Point = tuple[int, int]


class LineSource(Protocol):
    kind: str

    def feed_block(self, data: bytes, offset: int, where: str, out: Chunk) -> Iterator[Point]:
        """Take the lines of ``data`` (``data[0]`` is at byte ``offset`` of ``where``); a
        last line without a newline is taken as a whole line. Output goes to ``out`` as
        the generator advances, so at each point yielded the state matches that offset."""
        ...

    @property
    def records(self) -> int:
        """Records read so far."""
        ...

    @property
    def pending(self) -> int:
        """Events half read now (not part of the saved state)."""
        ...

    def idle(self, where: str, out: Chunk, quiet_seconds: float) -> None:
        """The input has been quiet this long: complete what waits for more input."""

    def flush(self, where: str, out: Chunk) -> None:
        """End of input: complete or dead-letter everything pending."""

    def snapshot(self) -> bytes:
        """The state to resume from, at a point where nothing is pending."""
        ...
