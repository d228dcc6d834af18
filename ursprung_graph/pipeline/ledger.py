"""What a traced run did to files, kept in memory while its events go to the store.

`ursprung run` needs the run's inputs, outputs and programs as soon as the command has
ended, to hash them. Asking the graph for them (:func:`ursprung_graph.query.runs.run_files`)
means waiting until the store has every event, then reading thousands of rows back. The
recorder has seen those events already, so the ledger folds them as they pass by into the
same rows the graph would give: per file and relation the first and last time
(``RUN_FILE_EDGES``), the renames (``RENAMES_FROM``) and the processes' programs, command
lines and working directories (``RUN_PROCESSES``). The classification itself is the query
layer's (:func:`~ursprung_graph.query.runs.classify_files`): one definition of inputs and
outputs for traced runs, stored runs and runs defined on audit data.

Renames are the run's own, with their exact times; the graph would also show a rename made
by a process outside the run during it, which the tracer cannot see anyway.
"""

from __future__ import annotations

from typing import Any

from ..ingest.upserts import info_rank
from ..query.classify import Classifier
from ..query.runs import RunFile, RunFiles, classify_files, follow_renames
from ..query.types import Rename, RunProcess
from ..schema import graph as g
from ..schema.event import Event, Kind

_READ, _WRITE, _UNLINK, _EXEC, _RENAME = (Kind.READ, Kind.WRITE, Kind.UNLINK, Kind.EXEC,
                                          Kind.RENAME)


class RunLedger:
    """Feed it the run's events (in any chunks); ask it for the run's files at the end."""

    def __init__(self) -> None:
        self.files: dict[str, RunFile] = {}
        self.renamed: dict[tuple[str, str], list[int]] = {}  # (src, dst) -> [first, last]
        self.paths: dict[str, str] = {}  # rename targets
        self.processes: dict[tuple[str, int, int], dict[str, Any]] = {}

    def add(self, events: list[Event]) -> None:
        files = self.files
        for ev in events:
            kind = ev.kind
            if ev.proc.exe is not None or ev.proc.argv is not None or ev.child is not None:
                self._process(ev.host, ev.proc, info_rank(ev))
                if ev.child is not None:
                    self._process(ev.host, ev.child, info_rank(ev, child=True))
            else:
                self._process(ev.host, ev.proc, None)
            ref = ev.file
            if ref is None:
                continue
            ts = ev.ts
            if kind is _RENAME:
                if ev.dst is not None:
                    self._renamed(g.file_key(ev.host, ref), g.file_key(ev.host, ev.dst),
                                  ev.dst.path, ts)
                continue
            if kind is not _READ and kind is not _WRITE and kind is not _UNLINK \
                    and kind is not _EXEC:
                continue
            key = g.file_key(ev.host, ref)
            f = files.get(key)
            if f is None:
                f = files[key] = RunFile(key, ref.path)
            if kind is _READ:
                if f.first_read is None or ts < f.first_read:
                    f.first_read = ts
            elif kind is _WRITE:
                if f.first_write is None or ts < f.first_write:
                    f.first_write = ts
                if f.last_write is None or ts > f.last_write:
                    f.last_write = ts
            elif kind is _UNLINK:
                if f.deleted is None or ts > f.deleted:
                    f.deleted = ts
            elif f.executed is None or ts < f.executed:
                f.executed = ts

    def _renamed(self, src: str, dst: str, path: str, ts: int) -> None:
        self.paths[dst] = path
        span = self.renamed.get((src, dst))
        if span is None:
            self.renamed[(src, dst)] = [ts, ts]
        else:
            span[0], span[1] = min(span[0], ts), max(span[1], ts)

    def _process(self, host: str, info: Any, rank: tuple[int, int, int] | None) -> None:
        ident = (host, info.pid, info.start)
        proc = self.processes.get(ident)
        if proc is None:
            proc = self.processes[ident] = {
                "key": g.process_key(host, info.pid, info.start), "pid": info.pid,
                "start": info.start, "exe": None, "argv": None, "cwd": None, "rank": None}
        if rank is not None and (info.exe is not None or info.argv is not None) and (
                proc["rank"] is None or rank >= proc["rank"]):
            # the latest exec wins, ranked as the graph ranks it (UPDATE_PROCESS_INFO)
            proc.update(rank=rank, exe=info.exe, argv=info.argv or [], cwd=info.cwd)

    def renames(self, keys: list[str], start: int, end: int) -> list[Rename]:
        wanted = set(keys)
        return [Rename(src=src, key=dst, path=self.paths[dst], first=first, last=last)
                for (src, dst), (first, last) in self.renamed.items()
                if src in wanted and first <= end and last >= start]

    def run_files(self, start: int, end: int, cwd: str | None,
                  classifier: Classifier | None = None) -> RunFiles:
        """The files of the run over [start, end] in ``cwd`` as
        :func:`~ursprung_graph.query.runs.run_files` would find them in the graph, without
        versions and prior writes."""
        # copies (renames and classification mark them), of the fields ``add`` fills: the
        # constructor, ten times faster than dataclasses.replace for a run's thousands
        files = {key: RunFile(f.key, f.path, f.first_read, f.first_write, f.last_write,
                              f.deleted, f.executed) for key, f in self.files.items()}
        follow_renames(self.renames, files, start, end)
        procs = [RunProcess(key=p["key"], pid=p["pid"], start=p["start"], exe=p["exe"],
                            argv=p["argv"], cwd=p["cwd"])
                 for p in sorted(self.processes.values(),
                                 key=lambda p: (p["start"] or 0, p["pid"]))]
        return classify_files(files, procs, cwd, classifier)
