"""Streaming sha256 of a file with a size limit.

A file larger than the limit keeps only size and mtime (hashing a 50 GB dataset at the end of
every run would cost more than the run). A file that changes while it is hashed (size or
mtime differ before and after) gets no hash either: the hash would describe no real state.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from stat import S_ISREG

from ..config import RunsConfig
from ..schema.names import name_to_bytes

CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class FileVersion:
    """What a file held: size, mtime (epoch ns) and sha256 (None above the limit)."""

    size: int
    mtime: int
    sha256: str | None


def hash_file(path: str, limit: int = RunsConfig().hash_limit) -> FileVersion | None:
    """The version of the regular file at ``path`` (a name in the text form of
    :mod:`..schema.names`) now; None if it is gone or not a regular
    file. Plain descriptors, not file objects: a run can have thousands of small files, and
    this is on the way between the command's end and ``ursprung run``'s. ``O_NONBLOCK``
    makes opening a FIFO return at once (it is then skipped) instead of waiting for a
    writer."""
    try:
        fd = os.open(name_to_bytes(path), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not S_ISREG(st.st_mode):
            return None
        if st.st_size > limit:
            return FileVersion(st.st_size, st.st_mtime_ns, None)
        digest = hashlib.sha256()
        size, done = st.st_size, 0
        while True:
            # one read more than the size says, so that a small file takes one read and no
            # second one to find its end; a file that grew, or a pseudo-file whose size
            # says nothing, is read on until its end
            want = min(CHUNK, size + 1 - done) if done <= size else CHUNK
            chunk = os.read(fd, want)
            if not chunk:
                break
            digest.update(chunk)
            done += len(chunk)
            if done == size and len(chunk) < want:
                break
        after = os.fstat(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
        return FileVersion(after.st_size, after.st_mtime_ns, None)
    return FileVersion(st.st_size, st.st_mtime_ns, digest.hexdigest())
