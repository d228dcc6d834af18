"""Pipeline runs in the query layer: list, find, and the facts of one run.

A run is a ``PipelineRun`` node with ``INCLUDES`` edges to its processes, however it was
recorded (``ursprung run`` or ``ursprung runs define`` on audit data). Its file facts are
derived here, from what its processes did, so that both kinds of runs get one definition:

* **inputs**: files the run read before it wrote them (or never wrote), not executed, not
  part of the software environment (system prefixes, the installation tree of an executed
  interpreter, ignore patterns from the config);
* **outputs**: files the run wrote (or renamed into place) and did not delete or rename away
  afterwards;
* **intermediates**: files the run wrote and then deleted or renamed away;
* **programs**: files the run executed, and scripts it handed to an interpreter.

Each file carries the content version the run observed (``OBSERVED`` -> ``Version``) when
there is one, and, for inputs, ``prior_write``: the last time anyone wrote the file at or
before the run first read it (None if no write was seen). Runs defined on audit data have no
hashes; equal ``prior_write`` then means "the same bytes as far as the graph knows".
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..schema import graph as g
from ..schema.times import FOREVER
from ..store.base import GraphStore, Row
from ..store.cypher import Cypher
from .classify import Classifier
from .gaps import runs_gaps
from .types import (
    CandidateProcess,
    FileVersion,
    GapInfo,
    ProcessFact,
    Rename,
    RunFacts,
    RunFileFact,
    RunProcess,
    RunSummary,
)

_RUN, _PROC, _FILE, _VERSION = g.PIPELINE_RUN, g.PROCESS, g.FILE, g.VERSION
_INCLUDES, _FORKED, _RENAMED = g.INCLUDES.name, g.FORKED.name, g.RENAMED_TO.name

LIST_RUNS = Cypher(
    f"MATCH (r:{_RUN}) WHERE $pipeline IS NULL OR r.pipeline = $pipeline "
    "RETURN properties(r) AS run ORDER BY r.start, r.id"
)

FIND_RUN = Cypher(
    f"MATCH (r:{_RUN}) WHERE r.id = $ref OR r.id STARTS WITH $ref "
    "RETURN properties(r) AS run ORDER BY r.id"
)

# The statements of run facts take many runs at once (``$keys``, or items that name their
# run), so that the facts of a page of runs are a few statements, not a few per run.
RUN_FILE_EDGES = Cypher(
    f"UNWIND $keys AS k MATCH (r:{_RUN} {{key: k}})-[:{_INCLUDES}]->(p:{_PROC})"
    f"-[e:{g.READ.name}|{g.WROTE.name}|{g.DELETED.name}|{g.EXECUTED.name}]->(f:{_FILE}) "
    "RETURN k AS run, f.key AS key, f.path AS path, type(e) AS rel, min(e.first) AS first, "
    "max(e.last) AS last"
)

RUN_PROCESSES = Cypher(
    f"UNWIND $keys AS k MATCH (r:{_RUN} {{key: k}})-[:{_INCLUDES}]->(p:{_PROC}) "
    "RETURN k AS run, p.key AS key, p.pid AS pid, p.start AS start, p.end AS end, "
    "p.exit_code AS exit_code, p.exe AS exe, p.argv AS argv, p.cmdline AS cmdline, "
    "p.cwd AS cwd ORDER BY p.start, p.pid"
)

RENAMES_FROM = Cypher(
    "UNWIND $items AS it UNWIND it.keys AS k "
    f"MATCH (f:{_FILE} {{key: k}})-[e:{_RENAMED}]->(t:{_FILE}) "
    "WHERE e.first <= it.end AND e.last >= it.start "
    "RETURN it.run AS run, f.key AS src, t.key AS key, t.path AS path, e.first AS first, "
    "e.last AS last"
)

PRIOR_WRITES = Cypher(
    f"UNWIND $items AS it MATCH (f:{_FILE} {{key: it.key}})<-[e:{g.WROTE.name}]-(:{_PROC}) "
    "WHERE e.first <= it.t RETURN it.run AS run, it.key AS key, max(e.last) AS t"
)

PRIOR_RENAMES = Cypher(
    f"UNWIND $items AS it MATCH (f:{_FILE} {{key: it.key}})<-[e:{_RENAMED}]-(:{_FILE}) "
    "WHERE e.first <= it.t RETURN it.run AS run, it.key AS key, max(e.first) AS t"
)

RUN_VERSIONS = Cypher(
    f"UNWIND $keys AS k MATCH (r:{_RUN} {{key: k}})-[o:{g.OBSERVED.name}]->(v:{_VERSION})"
    f"<-[:{g.HAS_VERSION.name}]-(f:{_FILE}) "
    "RETURN k AS run, f.key AS file, v.sha256 AS sha256, v.size AS size, v.mtime AS mtime, "
    "v.stored AS stored, o.at AS at"
)

CANDIDATE_PROCESSES = Cypher(
    f"MATCH (p:{_PROC}) WHERE p.cmdline IS NOT NULL AND ($host IS NULL OR p.host = $host) "
    "RETURN p.key AS key, p.cmdline AS cmdline, p.argv AS argv, p.cwd AS cwd, "
    "p.host AS host, p.pid AS pid, p.start AS start, p.end AS end, "
    "p.exit_code AS exit_code, p.uid AS uid, p.first AS first, p.last AS last"
)

PROCESS_PARENTS = Cypher(
    f"UNWIND $keys AS k MATCH (a:{_PROC})-[:{_FORKED}]->(b:{_PROC} {{key: k}}) "
    "RETURN b.key AS key, a.key AS parent"
)

PROCESS_CHILDREN = Cypher(
    f"UNWIND $keys AS k MATCH (a:{_PROC} {{key: k}})-[:{_FORKED}]->(b:{_PROC}) "
    "RETURN b.key AS key, b.pid AS pid, b.start AS start, b.last AS last"
)

#: How deep process trees are walked (ancestors of a candidate root, a root's subtree).
MAX_TREE_DEPTH = 200

#: Interpreters whose script arguments count as programs of the run.
INTERPRETERS = ("python", "sh", "bash", "dash", "zsh", "ksh", "Rscript", "R", "perl",
                "ruby", "node", "julia", "php", "lua", "tclsh")



class AmbiguousRun(LookupError):
    def __init__(self, ref: str, ids: list[str]) -> None:
        super().__init__(f"run {ref!r} is ambiguous: {', '.join(ids[:5])}")
        self.ids = ids


@dataclass(slots=True)
class RunFile:
    key: str
    path: str
    first_read: int | None = None
    first_write: int | None = None
    last_write: int | None = None
    deleted: int | None = None
    executed: int | None = None
    renamed_away: int | None = None
    script: bool = False
    version: FileVersion | None = None
    prior_write: int | None = None

    def written(self) -> bool:
        return self.first_write is not None

    def fact(self, cwd: str | None) -> RunFileFact:
        """What the run's facts say of this file (``cwd``: the run's)."""
        v = self.version
        read = self.first_read is not None
        return RunFileFact(
            path=self.path, rel=relative(self.path, cwd),
            sha256=msgspec.UNSET if v is None else v.sha256,
            size=msgspec.UNSET if v is None else v.size,
            mtime=msgspec.UNSET if v is None else v.mtime,
            stored=msgspec.UNSET if v is None else v.stored,
            first_read=self.first_read,
            prior_write=self.prior_write if read else msgspec.UNSET,
            written=self.last_write)


@dataclass(slots=True)
class RunFiles:
    inputs: list[RunFile] = field(default_factory=list)
    outputs: list[RunFile] = field(default_factory=list)
    intermediates: list[RunFile] = field(default_factory=list)
    programs: list[RunFile] = field(default_factory=list)
    environment: list[RunFile] = field(default_factory=list)
    ignored: list[RunFile] = field(default_factory=list)

    def observed(self) -> list[RunFile]:
        """Files whose content version the recorder should take: programs, inputs, outputs
        (each once, in this order)."""
        seen: dict[str, RunFile] = {}
        for f in (*self.programs, *self.inputs, *self.outputs):
            seen.setdefault(f.key, f)
        return list(seen.values())


def relative(path: str, cwd: str | None) -> str | None:
    """``path`` relative to ``cwd`` when it lies under it, else None."""
    if not cwd:
        return None
    root = cwd.rstrip("/") + "/"
    return path[len(root):] if path.startswith(root) else None


def _run_props(row: Row) -> dict[str, Any]:
    run = dict(row["run"])
    for name in ("params", "environment", "metrics"):
        try:
            run[name] = json.loads(run.get(name) or "{}")
        except (TypeError, ValueError):
            run[name] = {}
    return run


def list_runs(store: GraphStore, pipeline: str | None = None) -> list[RunSummary]:
    """All runs (of one pipeline), oldest first, as summaries."""
    return [_summary(_run_props(r)) for r in store.read(LIST_RUNS, {"pipeline": pipeline})]


def _summary(run: dict[str, Any]) -> RunSummary:
    start, end = run.get("start"), run.get("end")
    duration = (end - start) / 1e9 if start and end else None
    return RunSummary(
        id=run["id"], pipeline=run.get("pipeline"), command=run.get("command"),
        argv=run.get("argv") or [], cwd=run.get("cwd"), host=run.get("host"),
        user=run.get("user"), start=start, end=end, duration=duration,
        exit_code=run.get("exit_code"), origin=run.get("origin"),
        params=run.get("params") or {}, environment=run.get("environment") or {},
        metrics=run.get("metrics") or {}, key=run["key"], root=run.get("root"),
    )


def find_run(store: GraphStore, ref: str) -> RunSummary:
    """The run with id ``ref``, or the only run whose id starts with ``ref``."""
    rows = [_run_props(r) for r in store.read(FIND_RUN, {"ref": ref})]
    exact = [r for r in rows if r.get("id") == ref]
    if exact:
        return _summary(exact[0])
    if not rows:
        raise LookupError(f"no run {ref!r} (ursprung runs list shows the runs)")
    if len(rows) > 1:
        raise AmbiguousRun(ref, [r["id"] for r in rows])
    return _summary(rows[0])


def run_processes(store: GraphStore, run: RunSummary) -> list[RunProcess]:
    """The run's processes, by start and pid."""
    return runs_processes(store, [run])[run.key]


def runs_processes(store: GraphStore, runs: Sequence[RunSummary]
                   ) -> dict[str, list[RunProcess]]:
    """The processes of each of ``runs`` (by run key), by start and pid: one statement."""
    out: dict[str, list[RunProcess]] = {run.key: [] for run in runs}
    for r in store.read(RUN_PROCESSES, {"keys": list(out)}):
        out[r["run"]].append(RunProcess(
            key=r["key"], pid=r["pid"], start=r["start"], end=r["end"],
            exit_code=r["exit_code"], exe=r["exe"], argv=r["argv"], cmdline=r["cmdline"],
            cwd=r["cwd"]))
    return out


def run_files(store: GraphStore, run: RunSummary,
              classifier: Classifier | None = None,
              processes: Sequence[RunProcess] | None = None) -> RunFiles:
    """Inputs, outputs, intermediates, programs and environment files of ``run``."""
    procs = {run.key: processes} if processes is not None else None
    return runs_files(store, [run], classifier, procs)[run.key]


def runs_files(store: GraphStore, runs: Sequence[RunSummary],
               classifier: Classifier | None = None,
               processes: dict[str, Sequence[RunProcess]] | None = None
               ) -> dict[str, RunFiles]:
    """:func:`run_files` of each of ``runs`` (by run key), in a fixed number of statements
    however many runs there are (``processes`` by run key when the caller has them)."""
    keys = list(dict.fromkeys(run.key for run in runs))
    edges: dict[str, list[Row]] = {k: [] for k in keys}
    for row in store.read(RUN_FILE_EDGES, {"keys": keys}):
        edges[row["run"]].append(row)
    files = {k: _files_from_edges(rows) for k, rows in edges.items()}
    by_key = {run.key: run for run in runs}
    followers = {k: RenameFollower(files[k], by_key[k].start, by_key[k].end) for k in keys}
    while asked := {k: ks for k, f in followers.items() if (ks := f.next_keys())}:
        items = [{"run": k, "keys": ks, "start": followers[k].start, "end": followers[k].end}
                 for k, ks in asked.items()]
        found: dict[str, list[Rename]] = {k: [] for k in asked}
        for r in store.read(RENAMES_FROM, {"items": items}):
            found[r["run"]].append(Rename(src=r["src"], key=r["key"], path=r["path"],
                                          first=r["first"], last=r["last"]))
        for k, rows in found.items():
            followers[k].apply(rows)
    procs: dict[str, Sequence[RunProcess]] = dict(
        processes if processes is not None else runs_processes(store, runs))
    out = {k: classify_files(files[k], procs[k], by_key[k].cwd, classifier) for k in keys}
    _prior_writes(store, {k: o.inputs for k, o in out.items()})
    _versions(store, out)
    return out


def _files_from_edges(rows: Iterable[Row]) -> dict[str, RunFile]:
    """The run's files from its processes' file edges, grouped by file and relation
    (``key``, ``path``, ``rel`` READ/WROTE/DELETED/EXECUTED, min ``first``, max ``last``:
    the rows of ``RUN_FILE_EDGES``)."""
    files: dict[str, RunFile] = {}
    for row in rows:
        f = files.get(row["key"])
        if f is None:
            f = files[row["key"]] = RunFile(row["key"], row["path"])
        first, last = row["first"], row["last"]
        rel = row["rel"]
        if rel == g.READ.name:
            f.first_read = _min(f.first_read, first)
        elif rel == g.WROTE.name:
            f.first_write = _min(f.first_write, first)
            f.last_write = _max(f.last_write, last)
        elif rel == g.DELETED.name:
            f.deleted = _max(f.deleted, last)
        elif rel == g.EXECUTED.name:
            f.executed = _min(f.executed, first)
    return files


def classify_files(files: dict[str, RunFile], procs: Sequence[RunProcess], cwd: str | None,
                   classifier: Classifier | None = None) -> RunFiles:
    """Sort a run's files (renames already followed) into inputs, outputs, intermediates,
    programs, environment and ignored files. ``procs`` are the run's processes (``exe``,
    ``argv``, ``cwd``). The one definition for runs read from the graph and for the run
    ``ursprung run`` has just traced (which knows its files without asking the store)."""
    classifier = classifier or Classifier()
    roots = _install_roots(procs, files, cwd)
    _mark_scripts(procs, files)
    out = RunFiles()
    for f in sorted(files.values(), key=lambda f: f.path):
        if classifier.ignored(f.path):
            if f.executed is not None and is_interpreter(f.path):
                out.programs.append(f)  # the interpreter itself, wherever it lives
            out.ignored.append(f)
            continue
        if f.executed is not None or f.script:
            out.programs.append(f)
        system = classifier.system(f.path, roots)
        if f.written():
            gone = max(f.deleted or -1, f.renamed_away or -1)
            if gone >= (f.last_write or 0):
                out.intermediates.append(f)
            else:
                out.outputs.append(f)
            if f.first_read is not None and f.first_read < (f.first_write or 0) and not system:
                out.inputs.append(f)
        elif f.first_read is not None and f.executed is None:
            (out.environment if system else out.inputs).append(f)
    return out


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


#: The RENAMED_TO edges from files ``keys`` that overlap [start, end] (``RENAMES_FROM``).
Renames = Callable[[list[str], int, int], Iterable[Rename]]


def follow_renames(renames: Renames, files: dict[str, RunFile], start: int | None,
                   end: int | None) -> None:
    """A file the run (from ``start`` to ``end``) wrote and renamed during the run: the new
    name is written (at the rename), the old one is gone. Chains (a -> b -> c) are
    followed (:class:`RenameFollower`, one round per link)."""
    follower = RenameFollower(files, start, end)
    while keys := follower.next_keys():
        follower.apply(renames(keys, follower.start, follower.end))


class RenameFollower:
    """:func:`follow_renames` one round at a time, so that the rounds of many runs can be
    one statement each: ``next_keys`` (the files to look up, empty when done), then
    ``apply`` the renames found from them."""

    ROUNDS = 8

    def __init__(self, files: dict[str, RunFile], start: int | None,
                 end: int | None) -> None:
        self.files = files
        self.start = start or 0
        self.end = end or FOREVER
        self.frontier = [f.key for f in files.values() if f.written()]
        self.seen: set[str] = set()
        self.rounds = 0

    def next_keys(self) -> list[str]:
        if self.rounds == self.ROUNDS:
            return []
        self.frontier = [k for k in self.frontier if k not in self.seen]
        if self.frontier:
            self.rounds += 1
            self.seen.update(self.frontier)
        return self.frontier

    def apply(self, found: Iterable[Rename]) -> None:
        nxt = []
        for row in found:
            src = self.files[row.src]
            at = _rename_time(row.first, row.last, self.start, self.end, src.last_write)
            src.renamed_away = _max(src.renamed_away, at)
            dst = self.files.get(row.key)
            if dst is None:
                dst = self.files[row.key] = RunFile(row.key, row.path)
            dst.first_write = _min(dst.first_write, at)
            dst.last_write = _max(dst.last_write, at)
            nxt.append(row.key)
        self.frontier = nxt


def _rename_time(first: int, last: int, start: int, end: int, written: int | None) -> int:
    """When this run renamed: a RENAMED_TO edge keeps only the first and last rename of
    the pair over all time, so a rename repeated by several runs of a pipeline is known
    exactly only for the first and the last of them; for the others it is taken to follow
    the run's last write of the source (one renames what one has just written)."""
    if start <= first <= end:
        return first
    if start <= last <= end:
        return last
    return min(max(written or start, start), end)


def _install_roots(procs: Sequence[RunProcess], files: dict[str, RunFile],
                   cwd: str | None) -> tuple[str, ...]:
    """The trees interpreters and tools were installed in (:func:`install_root` of each
    executed program)."""
    exes = {f.path for f in files.values() if f.executed is not None}
    exes.update(p.exe for p in procs if p.exe)
    roots = {root for exe in exes if (root := install_root(exe, cwd)) is not None}
    return tuple(sorted(roots))


def install_root(exe: str, cwd: str | None) -> str | None:
    """The tree the program ``exe`` was installed in: the parent of its ``bin`` dir
    (``/opt/x/bin/python`` -> ``/opt/x/``), unless the run's working directory lies inside
    it (then it is the project, not an installation)."""
    parent = posixpath.dirname(exe)
    if posixpath.basename(parent) not in ("bin", "sbin", "libexec", "shims"):
        return None
    root = posixpath.dirname(parent).rstrip("/") + "/"
    here = (cwd or "/nonexistent").rstrip("/") + "/"
    if root == "/" or here.startswith(root):
        return None
    return root


def is_interpreter(name: str) -> bool:
    """Whether the program ``name`` (a path or a name) is one of :data:`INTERPRETERS`
    (a versioned name too: ``python3.11``)."""
    base = posixpath.basename(name)
    return any(base == i or (base.startswith(i) and base[len(i):].replace(".", "").isdigit())
               for i in INTERPRETERS)


def _mark_scripts(procs: Sequence[RunProcess], files: dict[str, RunFile]) -> None:
    """A file read by the run that an interpreter got as a command-line argument."""
    by_path = {f.path: f for f in files.values() if f.first_read is not None}
    for p in procs:
        argv = p.argv or []
        if not argv or not (is_interpreter(argv[0]) or is_interpreter(p.exe or "")):
            continue
        cwd = p.cwd or "/"
        for arg in argv[1:]:
            if arg.startswith("-") or "/" not in arg and "." not in arg:
                continue
            path = posixpath.normpath(posixpath.join(cwd, arg))
            f = by_path.get(path)
            if f is not None:
                f.script = True
                break  # the first file argument is the script; later ones are data


def _prior_writes(store: GraphStore, inputs: dict[str, list[RunFile]]) -> None:
    """Each input's last write at or before the run first read it (inputs by run key)."""
    items = [{"run": k, "key": f.key, "t": f.first_read} for k, files in inputs.items()
             for f in files if f.first_read is not None]
    if not items:
        return
    by_key = {(k, f.key): f for k, files in inputs.items() for f in files}
    for statement in (PRIOR_WRITES, PRIOR_RENAMES):
        for row in store.read(statement, {"items": items}):
            f = by_key[(row["run"], row["key"])]
            f.prior_write = _max(f.prior_write, row["t"])


def latest_versions(rows: Iterable[Row]) -> dict[tuple[str, str], tuple[int, FileVersion]]:
    """(run, file) -> (time, version) of the latest version the run observed of the file
    (``RUN_VERSIONS`` rows, in any order; equal times: the greater hash)."""
    out: dict[tuple[str, str], tuple[int, FileVersion]] = {}
    for row in rows:
        at = row["at"] if row["at"] is not None else -1
        seen = out.get((row["run"], row["file"]))
        if seen is None or (at, row["sha256"] or "") > (seen[0], seen[1].sha256 or ""):
            out[(row["run"], row["file"])] = (at, FileVersion(
                sha256=row["sha256"], size=row["size"], mtime=row["mtime"],
                stored=bool(row["stored"])))
    return out


def _versions(store: GraphStore, runs: dict[str, RunFiles]) -> None:
    """Each file's version in the run: the latest the run observed (``ursprung run`` stores
    the hashes it takes while the command runs; one that no longer held at the end is
    superseded by the end's), none if the run deleted or renamed the file after it."""
    versions = latest_versions(store.read(RUN_VERSIONS, {"keys": list(runs)}))
    for k, out in runs.items():
        for group in (out.inputs, out.outputs, out.programs, out.intermediates):
            for f in group:
                seen = versions.get((k, f.key))
                gone = max(f.deleted or -1, f.renamed_away or -1)
                f.version = None if seen is None or seen[0] <= gone else seen[1]


def run_facts(store: GraphStore, ref: str | RunSummary,
              classifier: Classifier | None = None) -> RunFacts:
    """Everything about one run (an id, a unique prefix of one, or its summary): the
    summary, parameters, environment, metrics, inputs, outputs, intermediates, programs and
    the processes (steps)."""
    run = find_run(store, ref) if isinstance(ref, str) else ref
    return runs_facts(store, [run], classifier)[0]


def runs_facts(store: GraphStore, runs: Sequence[RunSummary],
               classifier: Classifier | None = None) -> list[RunFacts]:
    """:func:`run_facts` of each of ``runs``, in order, in a fixed number of statements
    however many runs there are (what the API's loader asks for a page of runs)."""
    procs = runs_processes(store, runs)
    files = runs_files(store, runs, classifier, dict(procs))
    gaps = runs_gaps(store, runs)
    return [_facts(run, procs[run.key], files[run.key], found)
            for run, found in zip(runs, gaps, strict=True)]


def _facts(run: RunSummary, procs: Sequence[RunProcess], files: RunFiles,
           gaps: list[GapInfo]) -> RunFacts:
    cwd = run.cwd
    return RunFacts(
        **{name: getattr(run, name) for name in run.__struct_fields__},
        inputs=[f.fact(cwd) for f in files.inputs],
        outputs=[f.fact(cwd) for f in files.outputs],
        intermediates=[f.fact(cwd) for f in files.intermediates],
        programs=[f.fact(cwd) for f in files.programs],
        environment_files=len(files.environment),
        processes=[ProcessFact(pid=p.pid, start=p.start, end=p.end, exit_code=p.exit_code,
                               command=p.cmdline or p.exe, cwd=p.cwd) for p in procs],
        complete=not gaps, gaps=gaps,
    )


# --------------------------------------------------------------------------- run roots


@dataclass(slots=True)
class RunRoot:
    """A process that roots a run, the (pid, start) of every process of its subtree and
    the last time any of them was seen."""

    process: CandidateProcess
    members: list[tuple[int, int]]
    last: int


def _candidate(r: Row) -> CandidateProcess:
    return CandidateProcess(key=r["key"], host=r["host"], pid=r["pid"], cmdline=r["cmdline"],
                            argv=r["argv"], cwd=r["cwd"], start=r["start"], end=r["end"],
                            exit_code=r["exit_code"], uid=r["uid"], first=r["first"],
                            last=r["last"])


def run_roots(store: GraphStore, pattern: str, host: str | None = None) -> list[RunRoot]:
    """The processes whose command line matches ``pattern`` (a Python regex, searched) and
    that have no matching ancestor (a match inside another match's subtree belongs to that
    one's run), with their subtrees; by host, start and pid."""
    regex = re.compile(pattern)
    candidates = {r["key"]: _candidate(r)
                  for r in store.read(CANDIDATE_PROCESSES, {"host": host})
                  if regex.search(r["cmdline"] or "")}
    roots = [r for k, r in candidates.items() if not has_ancestor_in(store, k, candidates)]
    out = []
    for root in sorted(roots, key=lambda r: (r.host, r.start or 0, r.pid)):
        members, last = subtree(store, root)
        out.append(RunRoot(root, members, last))
    return out


def has_ancestor_in(store: GraphStore, key: str, keys: Container[str]) -> bool:
    """Whether an ancestor (by ``FORKED``) of process ``key`` is one of ``keys``."""
    seen = {key}
    frontier = [key]
    for _ in range(MAX_TREE_DEPTH):
        rows = store.read(PROCESS_PARENTS, {"keys": frontier})
        frontier = [r["parent"] for r in rows if r["parent"] not in seen]
        if not frontier:
            return False
        if any(k in keys for k in frontier):
            return True
        seen.update(frontier)
    return False


def subtree(store: GraphStore, root: CandidateProcess) -> tuple[list[tuple[int, int]], int]:
    """The (pid, start) of ``root`` and of its descendants, sorted, and the last time any of
    them was seen."""
    members = {root.key: (root.pid, root.start or 0)}
    last = root.last or 0
    frontier = [root.key]
    for _ in range(MAX_TREE_DEPTH):
        rows = store.read(PROCESS_CHILDREN, {"keys": frontier})
        frontier = []
        for r in rows:
            if r["key"] not in members:
                members[r["key"]] = (r["pid"], r["start"])
                frontier.append(r["key"])
                last = max(last, r["last"] or 0)
        if not frontier:
            break
    return sorted(members.values()), last


def run_key_of(run_id: str) -> str:
    return g.run_key(run_id)
