"""A content-addressed store of file contents under ``$URSPRUNG_HOME/content``.

``sha256/ab/cdef...`` holds the bytes whose sha256 is ``abcdef...``; the same content is
stored once whatever its paths and runs. A file is copied to a temporary name, its hash
checked, then renamed into place, so a concurrent reader never sees half a blob and a file
that changed since it was hashed is not stored under the wrong name. The store is private
(directories 0700, blobs 0400: :mod:`ursprung_graph.home`): it holds copies of files that
only their owner may read.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import tempfile
from pathlib import Path

from ..home import private_dir
from .hashing import CHUNK, open_unobtrusively

#: Stored content is read-only and readable by its owner only.
BLOB_MODE = 0o400


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_of(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / "sha256" / sha256[:2] / sha256[2:]

    def has(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def put(self, path: str, sha256: str) -> bool:
        """Store the file at ``path`` if its content still has ``sha256``; True when the
        store has that content afterwards."""
        target = self.path_of(sha256)
        if target.is_file():
            return True
        src_fd = open_unobtrusively(path)
        if src_fd is None:
            return False
        try:
            fd, tmp = tempfile.mkstemp(dir=private_dir(target.parent), prefix=".tmp-")
        except OSError:
            os.close(src_fd)
            return False
        try:
            digest = hashlib.sha256()
            with open(src_fd, "rb") as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
            if digest.hexdigest() != sha256:
                return False
            os.chmod(tmp, BLOB_MODE)
            os.replace(tmp, target)
            tmp = ""
            return True
        except OSError:
            return False
        finally:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def get(self, sha256: str) -> bytes | None:
        try:
            return self.path_of(sha256).read_bytes()
        except (OSError, ValueError):
            return None

    def diff(self, a: str, b: str, *, name_a: str = "a", name_b: str = "b") -> str | None:
        """A unified diff of two stored texts; None if either is missing or not text."""
        old, new = self.get(a), self.get(b)
        if old is None or new is None:
            return None
        try:
            old_lines = old.decode("utf-8").splitlines(keepends=True)
            new_lines = new.decode("utf-8").splitlines(keepends=True)
        except UnicodeDecodeError:
            return None
        return "".join(difflib.unified_diff(old_lines, new_lines, name_a, name_b))
