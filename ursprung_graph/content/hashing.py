"""Streaming sha256 of a file with a size limit.

A file larger than the limit keeps only size and mtime (hashing a 50 GB dataset at the end of
every run would cost more than the run). A file that changes while it is hashed (size or
mtime differ before and after) gets no hash either: the hash would describe no real state.

A version also carries the file's identity when it was read (:class:`Identity`: device,
inode, size, mtime, ctime), so that a later ``stat`` can tell whether the file is provably
still what was hashed (:func:`still`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from stat import S_ISREG
from typing import NamedTuple

from ..config import RunsConfig
from ..schema.names import name_to_bytes

CHUNK = 1 << 20


class Identity(NamedTuple):
    """What ``stat`` says of a file; any write, truncation, rename over it or change of its
    metadata changes ``ctime`` (and a replaced file has another inode). A tuple: it is
    compared for thousands of files while the user waits."""

    dev: int
    ino: int
    size: int
    mtime: int  # epoch ns
    ctime: int  # epoch ns


def identity(st: os.stat_result) -> Identity:
    return Identity(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class FileVersion:
    """What a file held: size, mtime (epoch ns) and sha256 (None above the limit), and the
    file's identity when it was hashed (None if it changed meanwhile)."""

    size: int
    mtime: int
    sha256: str | None
    identity: Identity | None = field(default=None, compare=False)


#: File systems stamp times from a coarse clock (a scheduler tick: 1-10 ms); one with
#: whole-second times (FAT, ext3, some NFS servers) is recognised by them.
TICK_NS = 20_000_000
COARSE_TICK_NS = 2_000_000_000


def still(version: FileVersion, hashed_at: int, now: os.stat_result) -> bool:
    """Whether a file that ``stat`` describes as ``now`` provably still holds ``version``,
    which was read from it starting at ``hashed_at`` (epoch ns): the same identity, and
    its last change older than the reading by more than a clock tick. A write within the
    tick of the reading could leave size and times as they were (git calls such an entry
    "racily clean" and hashes it again; so do we)."""
    ident = version.identity
    if ident is None or version.sha256 is None or identity(now) != ident:
        return False
    coarse = ident.mtime % 1_000_000_000 == 0 and ident.ctime % 1_000_000_000 == 0
    return max(ident.mtime, ident.ctime) + (COARSE_TICK_NS if coarse else TICK_NS) < hashed_at


def open_unobtrusively(path: str, flags: int = 0) -> int | None:
    """A read-only descriptor of ``path`` (a name in the text form of
    :mod:`..schema.names`) that leaves its access time alone where the system lets us
    (``O_NOATIME``: the file's owner, or root): looking at a run's files must not change
    what other tools see of them. None if it cannot be opened."""
    name = name_to_bytes(path)
    flags |= os.O_RDONLY | os.O_CLOEXEC
    try:
        return os.open(name, flags | os.O_NOATIME)
    except PermissionError:  # not the owner: O_NOATIME is refused, the file may be readable
        pass
    except OSError:
        return None
    try:
        return os.open(name, flags)
    except OSError:
        return None


def hash_file(path: str, limit: int = RunsConfig().hash_limit) -> FileVersion | None:
    """The version of the regular file at ``path`` (a name in the text form of
    :mod:`..schema.names`) now; None if it is gone or not a regular
    file. Plain descriptors, not file objects: a run can have thousands of small files, and
    this is on the way between the command's end and ``ursprung run``'s. ``O_NONBLOCK``
    makes opening a FIFO return at once (it is then skipped) instead of waiting for a
    writer."""
    fd = open_unobtrusively(path, os.O_NONBLOCK)
    if fd is None:
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
    read = identity(st)
    return FileVersion(st.st_size, st.st_mtime_ns, digest.hexdigest(),
                       read if read == identity(after) else None)
