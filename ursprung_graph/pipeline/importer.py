"""Local imports: an audit log (or stdin) through the follower's loop straight into the
store, checkpointed, so a rerun resumes where the store's data ends. Gzip files (rotated
audit logs) are read decompressed, as a stream. What cannot be read, an import the store
cut short and a file of which nothing was understood are errors that say so."""

from __future__ import annotations

import gzip
import os
import shutil
import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from ..collectors.auditd import AuditdSource
from ..collectors.linux import default_host as default_host  # re-exported: its users
from ..collectors.scale import map_file
from ..config import CollectConfig
from ..errors import UrsprungError
from ..ingest.resolve import resolve_now
from ..schema.event import Event
from ..store.base import GraphStore, StoreUnavailable
from .checkpoint import CheckpointStore
from .follow import Follower, FollowOptions, FollowStats, Progress, read_stream
from .sinks import StoreSink, write_events

DEFAULT_CHUNK_EVENTS = 5000

#: The counts of one import (and the totals of several).
ImportStats = FollowStats
#: Sees each chunk's events once the store has them (the rule engine's observe).
Observer = Callable[[Sequence[Event]], None]

GZIP_MAGIC = b"\x1f\x8b"


class InputError(UrsprungError):
    """The input cannot be read: missing, a directory, not readable, closed, corrupt."""

    exit_code = 9


class ImportInterrupted(UrsprungError):
    """The store went away during an import; what it acknowledged is kept."""

    retryable = True
    exit_code = 8


class NothingUnderstood(UrsprungError):
    """Nothing in an input was an audit record: every line became a dead letter."""

    exit_code = 12


def check_input(path: Path) -> None:
    """Raise :class:`InputError` unless ``path`` is a readable regular file."""
    name = str(path)
    try:
        if path.is_dir():
            raise InputError(f"{name}: is a directory (name the log files in it, e.g. "
                             f"{os.path.join(name, '*')})")
        with path.open("rb"):
            pass
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied (run as a user who may read it)") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read: {exc.strerror or exc}") from None
    if not path.is_file():
        raise InputError(f"{name}: not a regular file")


def check_stream(fh: object | None) -> None:
    """Raise :class:`InputError` if the stream is missing (``sys.stdin`` of a process
    started with its standard input closed)."""
    if fh is None:
        raise InputError("standard input is closed: nothing to import from -")


def is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def _stream_of(host: str, path: Path) -> str:
    return f"auditd:{host}:{path}"


def import_file(store: GraphStore, path: Path, *, host: str,
                checkpoints: CheckpointStore | None = None, from_start: bool = False,
                progress: Progress | None = None,
                chunk_events: int = DEFAULT_CHUNK_EVENTS,
                observe: Observer | None = None) -> ImportStats:
    """Import an audit log, resuming from its checkpoint when there is one (a gzip file
    is read again from its start: it cannot be resumed, and a replay changes nothing).
    Raises :class:`InputError`, and :class:`ImportInterrupted` when the store goes away
    (saying how far the import got)."""
    check_input(path)
    path = path.resolve()
    if is_gzip(path):
        return _import_gzip(store, path, host=host, progress=progress,
                            chunk_events=chunk_events, observe=observe)
    follower = Follower(path, lambda state: AuditdSource(host, state),
                        StoreSink(store, observe),
                        host=host, checkpoints=checkpoints,
                        options=FollowOptions(chunk_events=chunk_events, follow=False),
                        stream=_stream_of(host, path), resume=not from_start,
                        progress=progress)
    try:
        stats = follower.run()
    except StoreUnavailable as exc:
        saved = checkpoints.load(_stream_of(host, path)) if checkpoints else None
        done = (f"{saved.offset:,} of {path.stat().st_size:,} bytes ({saved.events:,} events) "
                "are stored" if saved else "nothing of it was checkpointed")
        raise ImportInterrupted(f"the store went away while importing {path}: {done}; run "
                                f"the same command again to resume ({exc})") from exc
    if progress is not None and stats.resumed_from:
        progress(stats.resumed_from)
    return stats


def _import_gzip(store: GraphStore, path: Path, *, host: str, progress: Progress | None,
                 chunk_events: int, observe: Observer | None) -> ImportStats:
    """Decompress in a thread into a pipe that the stream reader reads."""
    read_end, write_end = os.pipe()
    failed: list[BaseException] = []

    def pump() -> None:
        try:
            with gzip.open(path, "rb") as gz, os.fdopen(write_end, "wb") as out:
                shutil.copyfileobj(gz, out, 1 << 16)
        except (OSError, EOFError, zlib.error) as exc:
            failed.append(exc)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        with os.fdopen(read_end, "rb") as fh:
            stats = import_stream(store, fh, host=host, where=str(path), progress=progress,
                                  chunk_events=chunk_events, observe=observe)
    finally:
        thread.join()
    if failed:
        raise InputError(f"{path}: the gzip data is corrupt after what was imported "
                         f"({failed[0]})")
    return stats


def import_stream(store: GraphStore, fh: BinaryIO | None, *, host: str, where: str = "-",
                  progress: Progress | None = None,
                  chunk_events: int = DEFAULT_CHUNK_EVENTS,
                  observe: Observer | None = None) -> ImportStats:
    """Import records from a stream (stdin): no checkpoint, since it cannot be re-read."""
    check_stream(fh)
    assert fh is not None
    try:
        return read_stream(fh, AuditdSource(host), StoreSink(store, observe), host, where=where,
                           chunk_events=chunk_events, progress=progress)
    except StoreUnavailable as exc:
        raise ImportInterrupted(f"the store went away while importing {where} ({exc}); a "
                                "stream is not checkpointed: run the same command again to "
                                "import it again (what is stored already does not double)"
                                ) from exc


def import_scale_file(store: GraphStore, path: Path, *, host: str,
                      collect: CollectConfig) -> tuple[int, int]:
    """A file of Scale JSON lines straight into the store (one machine, no bus): events
    resolved against the processes the store holds now (so import the nodes' audit logs
    first). Returns (events, dead letters)."""
    out = map_file(str(path), pair_seconds=collect.pair_seconds,
                   pair_events=collect.pair_events)
    write_events(store, resolve_now(store, out.events), out.dead, host)
    return len(out.events), len(out.dead)
