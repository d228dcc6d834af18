"""Streaming sha256 of a file with a size limit.

A file larger than the limit keeps only size and mtime (hashing a 50 GB dataset at the end of
every run would cost more than the run). A file that changes while it is hashed (size or
mtime differ before and after) gets no hash either: the hash would describe no real state.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

CHUNK = 1 << 20
DEFAULT_HASH_LIMIT = 256 << 20


@dataclass(frozen=True, slots=True)
class FileVersion:
    """What a file held: size, mtime (epoch ns) and sha256 (None above the limit)."""

    size: int
    mtime: int
    sha256: str | None


def hash_file(path: str, limit: int = DEFAULT_HASH_LIMIT) -> FileVersion | None:
    """The version of the regular file at ``path`` now; None if it is gone or not a regular
    file."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not _regular(st.st_mode):
                return None
            if st.st_size > limit:
                return FileVersion(st.st_size, st.st_mtime_ns, None)
            digest = hashlib.sha256()
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
            after = os.fstat(fh.fileno())
    except OSError:
        return None
    if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
        return FileVersion(after.st_size, after.st_mtime_ns, None)
    return FileVersion(st.st_size, st.st_mtime_ns, digest.hexdigest())


def _regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)
