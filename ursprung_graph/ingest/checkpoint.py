"""Checkpoints of file imports: where to resume, and the collector state at that point.

A checkpoint is written only after the store has the batch that ends at its offset, and is
replaced atomically (write, fsync, rename), so after a crash it names a point at or before
what the store holds: replaying from it is harmless because writes are idempotent.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import msgspec

HEAD_BYTES = 4096


class Checkpoint(msgspec.Struct):
    path: str
    inode: int
    head: str  # sha256 of the first HEAD_BYTES: tells a rotated or replaced file apart
    offset: int
    state: bytes  # the collector's state at offset
    records: int = 0
    events: int = 0
    dead_letters: int = 0


def file_head(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.sha256(fh.read(HEAD_BYTES)).hexdigest()


class CheckpointStore:
    """One checkpoint file per (stream, host) under a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _file(self, stream: str) -> Path:
        name = hashlib.sha256(stream.encode()).hexdigest()[:32]
        return self.directory / f"{name}.ckpt"

    def load(self, stream: str) -> Checkpoint | None:
        try:
            return msgspec.msgpack.decode(self._file(stream).read_bytes(), type=Checkpoint)
        except FileNotFoundError:
            return None
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # a torn or foreign file: start over rather than guess

    def save(self, stream: str, checkpoint: Checkpoint) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self._file(stream)
        tmp = target.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(msgspec.msgpack.encode(checkpoint))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self, stream: str) -> None:
        self._file(stream).unlink(missing_ok=True)
