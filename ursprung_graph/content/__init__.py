"""Content versions: hashing files a run touched, and a small content-addressed store of the
bytes of some of them (scripts, configs, small data) for later diffs."""

from .hashing import FileVersion, hash_file
from .store import ContentStore

__all__ = ["ContentStore", "FileVersion", "hash_file"]
