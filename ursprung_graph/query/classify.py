"""The one rule for software environment versus data: which files are system files.

A run's inputs leave out the files of its software environment, and lineage lists them only
on request, by the same :class:`Classifier`:

* **ignored** files (``ignore_patterns``, fnmatch): caches, byte code, package trees, VCS
  internals; never a run's input or output;
* **system** files: under a system prefix (``system_prefixes``), shared libraries and the
  trees of Python installations (:data:`LIBRARY_PATTERNS`), and for a run also the
  installation trees of the interpreters it executed (``install_roots``).

The prefixes and patterns come from the ``[runs]`` configuration (defaults there).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import lru_cache

from ..config import DEFAULT_IGNORE_PATTERNS, DEFAULT_SYSTEM_PREFIXES

#: Libraries wherever they lie: shared objects and Python's standard library trees.
LIBRARY_PATTERNS = ("*.so", "*.so.*", "*/lib/python3*/*")


@lru_cache(maxsize=64)
def matcher(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regular expression that matches what any of the fnmatch ``patterns`` matches
    (case-sensitive, as ``fnmatch.fnmatchcase``)."""
    return re.compile("|".join(fnmatch.translate(p) for p in patterns) or "(?!)")


@dataclass(frozen=True, slots=True)
class Classifier:
    """What counts as software environment rather than data (see the module docstring)."""

    system_prefixes: tuple[str, ...] = DEFAULT_SYSTEM_PREFIXES
    ignore_patterns: tuple[str, ...] = DEFAULT_IGNORE_PATTERNS

    def ignored(self, path: str) -> bool:
        return matcher(self.ignore_patterns).match(path) is not None

    def system(self, path: str, install_roots: tuple[str, ...] = ()) -> bool:
        return (path.startswith(self.system_prefixes) or path.startswith(install_roots)
                or matcher(LIBRARY_PATTERNS).match(path) is not None)

    def environment(self, path: str) -> bool:
        """Ignored or a system file: what lineage lists only on request."""
        return self.ignored(path) or self.system(path)
