"""File imports: chunks from a collector -> upserts -> store -> checkpoint.

The loop is the one place that orders the contract: the store has a chunk durably before
the checkpoint moves past it. Memory stays bounded by the chunk size whatever the log size.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..collectors.auditd import AuditdSource
from ..store.base import GraphStore
from .checkpoint import Checkpoint, CheckpointStore, file_head
from .upserts import Batch

DEFAULT_CHUNK_EVENTS = 5000


@dataclass(slots=True)
class ImportStats:
    records: int = 0
    events: int = 0
    dead_letters: int = 0
    bytes: int = 0
    seconds: float = 0.0
    resumed_from: int = 0

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[int], None]  # called with the number of bytes consumed since last call


def write_chunk(store: GraphStore, chunk, host: str) -> None:  # noqa: ANN001
    batch = Batch()
    for event in chunk.events:
        batch.add(event)
    for dead in chunk.dead:
        batch.add_dead(dead, host)
    store.write(batch.statements())


def _run(store: GraphStore, source: AuditdSource, lines: Iterable[bytes], start: int,
         where: str, host: str, stats: ImportStats, progress: Progress | None,
         on_chunk: Callable[[int], None] | None, chunk_events: int) -> None:
    position = start
    for chunk in source.chunks(lines, start, where, min_events=chunk_events):
        write_chunk(store, chunk, host)
        stats.records += chunk.records
        stats.events += len(chunk.events)
        stats.dead_letters += len(chunk.dead)
        stats.bytes += chunk.offset - position
        if progress is not None:
            progress(chunk.offset - position)
        position = chunk.offset
        if on_chunk is not None:
            on_chunk(chunk.offset)


def import_file(store: GraphStore, path: Path, *, host: str,
                checkpoints: CheckpointStore | None = None, from_start: bool = False,
                progress: Progress | None = None,
                chunk_events: int = DEFAULT_CHUNK_EVENTS) -> ImportStats:
    """Import an audit log, resuming from its checkpoint when there is one."""
    started = time.monotonic()
    path = path.resolve()
    stream = f"auditd:{host}:{path}"
    st = path.stat()
    head = file_head(path)
    stats = ImportStats()
    saved = None if (checkpoints is None or from_start) else checkpoints.load(stream)
    if saved is not None and (saved.inode != st.st_ino or saved.head != head
                              or saved.offset > st.st_size):
        saved = None  # rotated or replaced: this is another file now
    source = AuditdSource(host, saved.state if saved else None)
    start = saved.offset if saved else 0
    stats.resumed_from = start
    if progress is not None and start:
        progress(start)

    def save(offset: int) -> None:
        if checkpoints is not None:
            checkpoints.save(stream, Checkpoint(
                path=str(path), inode=st.st_ino, head=head, offset=offset,
                state=source.snapshot()))

    with path.open("rb") as fh:
        fh.seek(start)
        _run(store, source, fh, start, str(path), host, stats, progress, save, chunk_events)
    stats.seconds = time.monotonic() - started
    return stats


def import_stream(store: GraphStore, fh: BinaryIO, *, host: str, where: str = "-",
                  progress: Progress | None = None,
                  chunk_events: int = DEFAULT_CHUNK_EVENTS) -> ImportStats:
    """Import records from a stream (stdin): no checkpoint, since it cannot be re-read."""
    started = time.monotonic()
    stats = ImportStats()
    _run(store, AuditdSource(host), fh, 0, where, host, stats, progress, None, chunk_events)
    stats.seconds = time.monotonic() - started
    return stats


def default_host() -> str:
    return os.uname().nodename
