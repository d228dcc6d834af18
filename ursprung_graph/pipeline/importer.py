"""Local imports: an audit log (or stdin) through the follower's loop straight into the
store, checkpointed, so a rerun resumes where the store's data ends."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from ..collectors.auditd import AuditdSource
from ..collectors.scale import map_file
from ..config import CollectConfig
from ..ingest.resolve import resolve_now
from ..schema.event import Event
from ..store.base import GraphStore
from .checkpoint import CheckpointStore
from .follow import Follower, FollowOptions, FollowStats, Progress, read_stream
from .sinks import StoreSink, write_events

DEFAULT_CHUNK_EVENTS = 5000

#: The counts of one import (and the totals of several).
ImportStats = FollowStats
#: Sees each chunk's events once the store has them (the rule engine's observe).
Observer = Callable[[Sequence[Event]], None]


def import_file(store: GraphStore, path: Path, *, host: str,
                checkpoints: CheckpointStore | None = None, from_start: bool = False,
                progress: Progress | None = None,
                chunk_events: int = DEFAULT_CHUNK_EVENTS,
                observe: Observer | None = None) -> ImportStats:
    """Import an audit log, resuming from its checkpoint when there is one."""
    path = path.resolve()
    follower = Follower(path, lambda state: AuditdSource(host, state),
                        StoreSink(store, observe),
                        host=host, checkpoints=checkpoints,
                        options=FollowOptions(chunk_events=chunk_events, follow=False),
                        stream=f"auditd:{host}:{path}", resume=not from_start,
                        progress=progress)
    stats = follower.run()
    if progress is not None and stats.resumed_from:
        progress(stats.resumed_from)
    return stats


def import_stream(store: GraphStore, fh: BinaryIO, *, host: str, where: str = "-",
                  progress: Progress | None = None,
                  chunk_events: int = DEFAULT_CHUNK_EVENTS,
                  observe: Observer | None = None) -> ImportStats:
    """Import records from a stream (stdin): no checkpoint, since it cannot be re-read."""
    return read_stream(fh, AuditdSource(host), StoreSink(store, observe), host, where=where,
                       chunk_events=chunk_events, progress=progress)


def import_scale_file(store: GraphStore, path: Path, *, host: str,
                      collect: CollectConfig) -> tuple[int, int]:
    """A file of Scale JSON lines straight into the store (one machine, no bus): events
    resolved against the processes the store holds now (so import the nodes' audit logs
    first). Returns (events, dead letters)."""
    out = map_file(str(path), pair_seconds=collect.pair_seconds,
                   pair_events=collect.pair_events)
    write_events(store, resolve_now(store, out.events), out.dead, host)
    return len(out.events), len(out.dead)


def default_host() -> str:
    return os.uname().nodename
