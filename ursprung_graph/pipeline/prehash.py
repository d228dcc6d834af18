"""Hashing a traced run's files while it runs, so that few are left for after its end.

Every version `ursprung run` records is the file's content when the command has ended, and
hashing thousands of files then is time the user waits for. So while the command runs, a
thread hashes each file the run wrote or read once no event has named it for
:data:`SETTLE` seconds. When the command has ended, :meth:`EarlyHashes.version` gives a
file's version: the early one if ``stat`` proves the file unchanged since
(:func:`ursprung_graph.content.hashing.still`: same inode, size and times, and those
older than the reading by more than a clock tick), else a fresh hash. A file changed after
its early hash, however briefly, is hashed again: the recorded version is always the
content at the end.

A file is queued when the run writes it (again after every write, up to :data:`MAX_EARLY`
times: a log written all along is hashed once, at the end) or first reads or runs it; the
thread hashes in slices only what has settled, and stops as soon as the command has ended
(what it did not reach is hashed then).

Each slice's hashes are handed to ``publish`` (``ursprung run`` stores them as versions
the run observed at the time of the hash, while the command still runs); the end then
stores only what is new: a file whose early version still holds is not written again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence

from ..content.hashing import FileVersion, hash_file, still
from ..query.classify import Classifier
from ..query.runs import install_root
from ..schema.event import Event, Kind
from ..schema.names import name_to_bytes

#: A file is hashed once no event has named it for this long (its writer is likely done).
SETTLE = 0.2
#: Files hashed per slice before the thread looks at the clock and the queue again.
SLICE = 64
#: A file written again after this many early hashes (a log) is left for the end.
MAX_EARLY = 3

_KINDS = frozenset({Kind.READ, Kind.WRITE, Kind.EXEC})

#: An early hash: the file's path, its version, and when the hash began (epoch ns).
Hashed = tuple[str, FileVersion, int]
#: Takes a slice of early hashes while the command runs; True if they were stored (queued
#: for the store), False if they could not be yet (then the end stores them).
Publish = Callable[[list[Hashed]], bool]


class EarlyHashes:
    """Feed it the run's events (:meth:`observe`, from the thread that parses the trace);
    ask it for versions at the end (:meth:`version`). Files of the software environment
    (``classifier``, and the installation trees of the programs the run executed, as the
    run's classification finds them) are left alone: they get no version. ``limit`` is the
    hashing size limit; ``publish`` takes each slice of early hashes (:data:`Publish`)."""

    def __init__(self, limit: int, classifier: Classifier, cwd: str | None, *,
                 settle: float = SETTLE, publish: Publish | None = None) -> None:
        self._limit = limit
        self._classifier = classifier
        self._cwd = cwd
        self._roots: tuple[str, ...] = ()  # installation trees of executed programs
        self._settle = settle
        self._publish = publish
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._pending: dict[str, float] = {}  # path -> when an event last named it
        self._done: dict[str, tuple[FileVersion, int]] = {}  # path -> (version, hashed at)
        self._published: dict[str, FileVersion] = {}  # path -> its early version, stored
        self._skipped: set[str] = set()  # paths ``wanted`` refused, and logs
        self._times: dict[str, int] = {}  # path -> early hashes taken
        self.taken = 0  # early hashes taken
        self.reused = 0  # of them, used at the end
        self.hashed_late = 0
        self._thread = threading.Thread(target=self._run, name="ursprung-prehash",
                                        daemon=True)
        self._thread.start()

    def observe(self, events: Sequence[Event]) -> None:
        now = time.monotonic()
        written: list[str] = []
        read: list[str] = []
        for ev in events:
            if ev.file is not None and ev.kind in _KINDS:
                (written if ev.kind is Kind.WRITE else read).append(ev.file.path)
                if ev.kind is Kind.EXEC:
                    self._learn(ev.file.path)
        if not written and not read:
            return
        pending, done, skipped = self._pending, self._done, self._skipped
        with self._lock:
            for path in written:  # (again) once its writes have settled
                if path not in skipped:
                    pending.pop(path, None)  # to the end: the queue is by last event
                    pending[path] = now
            for path in read:  # reading changes nothing: once is enough
                if path not in skipped and path not in done and path not in pending:
                    pending[path] = now
        self._wake.set()

    def stop(self) -> None:
        """The command has ended: no more hashing ahead of time."""
        with self._lock:
            self._stopped = True
        self._wake.set()
        self._thread.join()

    def version(self, path: str) -> FileVersion | None:
        """The file's version now (after :meth:`stop`): the early hash when it provably
        still holds, else a fresh one; None if the file is gone or not a regular file."""
        early = self._done.get(path)
        if early is not None:
            try:
                now = os.stat(name_to_bytes(path))
            except OSError:
                return None
            if still(early[0], early[1], now):
                self.reused += 1
                return early[0]
        self.hashed_late += 1
        return hash_file(path, self._limit)

    def stored(self, path: str, version: FileVersion) -> bool:
        """Whether ``version`` of ``path`` was stored while the command ran."""
        return self._published.get(path) is version

    def _run(self) -> None:
        while True:
            self._wake.wait(self._settle)
            self._wake.clear()
            while (batch := self._settled()) is not None:
                hashed = [h for path in batch if (h := self._hash(path)) is not None]
                if hashed and self._publish is not None and self._publish(hashed):
                    for path, version, _ in hashed:
                        self._published[path] = version
            if self._stopped:
                return

    def _settled(self) -> list[str] | None:
        """Up to SLICE paths quiet for SETTLE seconds, taken off the queue; None if none
        (or the command has ended)."""
        cutoff = time.monotonic() - self._settle
        batch: list[str] = []
        with self._lock:
            if self._stopped:
                return None
            for path, seen in self._pending.items():  # oldest first
                if seen > cutoff or len(batch) == SLICE:
                    break
                batch.append(path)
            for path in batch:
                del self._pending[path]
        return batch or None

    def _learn(self, exe: str) -> None:
        root = install_root(exe, self._cwd)
        if root is not None and root not in self._roots:
            with self._lock:
                self._roots = (*self._roots, root)

    def _wanted(self, path: str) -> bool:
        return not (self._classifier.environment(path) or path.startswith(self._roots))

    def _hash(self, path: str) -> Hashed | None:
        if not self._wanted(path):
            with self._lock:
                self._skipped.add(path)
            return None
        started = time.time_ns()
        version = hash_file(path, self._limit)
        if version is None or version.identity is None:
            return None
        with self._lock:  # a write meanwhile is caught by the check at the end
            self._done[path] = (version, started)
            self.taken += 1
            times = self._times[path] = self._times.get(path, 0) + 1
            if times >= MAX_EARLY:
                self._skipped.add(path)
        return path, version, started
