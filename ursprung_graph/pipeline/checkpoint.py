"""Checkpoints of file imports: where to resume, and the collector state at that point.

A checkpoint is written only after the store has the batch that ends at its offset, and is
replaced atomically (write, fsync, rename), so after a crash it names a point at or before
what the store holds: replaying from it is harmless because writes are idempotent.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import msgspec

from ..home import private_dir

HEAD_BYTES = 4096


class Checkpoint(msgspec.Struct):
    path: str
    inode: int
    head: str  # head_of(file, offset): tells a rotated or replaced file apart
    offset: int
    state: bytes  # the collector's state at offset
    records: int = 0
    events: int = 0
    dead_letters: int = 0


def head_of(fh: BinaryIO, offset: int) -> str:
    """Hash of the file's first min(offset, HEAD_BYTES) bytes: the part already read, which
    stays the same while the file grows (so a small log that grows is still the same file)
    and differs when the file was replaced."""
    pos = fh.tell()
    fh.seek(0)
    data = fh.read(min(offset, HEAD_BYTES))
    fh.seek(pos)
    return hashlib.sha256(data).hexdigest()


def same_file(fh: BinaryIO, saved: Checkpoint) -> bool:
    """Whether the open file is the one ``saved`` was taken on, grown or not."""
    st = os.fstat(fh.fileno())
    return (st.st_ino == saved.inode and st.st_size >= saved.offset
            and head_of(fh, saved.offset) == saved.head)


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
        private_dir(self.directory)
        target = self._file(stream)
        # a name of its own (0600): two imports of one file may save at the same moment
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=target.stem + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(msgspec.msgpack.encode(checkpoint))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self, stream: str) -> None:
        self._file(stream).unlink(missing_ok=True)
