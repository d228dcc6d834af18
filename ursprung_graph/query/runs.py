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
from .gaps import run_gaps
from .types import (
    CandidateProcess,
    FileVersion,
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

RUN_FILE_EDGES = Cypher(
    f"MATCH (r:{_RUN} {{key: $key}})-[:{_INCLUDES}]->(p:{_PROC})"
    f"-[e:{g.READ.name}|{g.WROTE.name}|{g.DELETED.name}|{g.EXECUTED.name}]->(f:{_FILE}) "
    "RETURN f.key AS key, f.path AS path, type(e) AS rel, min(e.first) AS first, "
    "max(e.last) AS last"
)

RUN_PROCESSES = Cypher(
    f"MATCH (r:{_RUN} {{key: $key}})-[:{_INCLUDES}]->(p:{_PROC}) "
    "RETURN p.key AS key, p.pid AS pid, p.start AS start, p.end AS end, "
    "p.exit_code AS exit_code, p.exe AS exe, p.argv AS argv, p.cmdline AS cmdline, "
    "p.cwd AS cwd ORDER BY p.start, p.pid"
)

RENAMES_FROM = Cypher(
    f"UNWIND $keys AS k MATCH (f:{_FILE} {{key: k}})-[e:{_RENAMED}]->(t:{_FILE}) "
    "WHERE e.first <= $end AND e.last >= $start "
    "RETURN f.key AS src, t.key AS key, t.path AS path, e.first AS first, e.last AS last"
)

PRIOR_WRITES = Cypher(
    f"UNWIND $items AS it MATCH (f:{_FILE} {{key: it.key}})<-[e:{g.WROTE.name}]-(:{_PROC}) "
    "WHERE e.first <= it.t RETURN it.key AS key, max(e.last) AS t"
)

PRIOR_RENAMES = Cypher(
    f"UNWIND $items AS it MATCH (f:{_FILE} {{key: it.key}})<-[e:{_RENAMED}]-(:{_FILE}) "
    "WHERE e.first <= it.t RETURN it.key AS key, max(e.first) AS t"
)

RUN_VERSIONS = Cypher(
    f"MATCH (r:{_RUN} {{key: $key}})-[o:{g.OBSERVED.name}]->(v:{_VERSION})"
    f"<-[:{g.HAS_VERSION.name}]-(f:{_FILE}) "
    "RETURN f.key AS file, v.sha256 AS sha256, v.size AS size, v.mtime AS mtime, "
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
    return [RunProcess(key=r["key"], pid=r["pid"], start=r["start"], end=r["end"],
                       exit_code=r["exit_code"], exe=r["exe"], argv=r["argv"],
                       cmdline=r["cmdline"], cwd=r["cwd"])
            for r in store.read(RUN_PROCESSES, {"key": run.key})]


def run_files(store: GraphStore, run: RunSummary,
              classifier: Classifier | None = None,
              processes: Sequence[RunProcess] | None = None) -> RunFiles:
    """Inputs, outputs, intermediates, programs and environment files of ``run``."""
    files = _files_from_edges(store.read(RUN_FILE_EDGES, {"key": run.key}))

    def renames(keys: list[str], start: int, end: int) -> list[Rename]:
        return [Rename(src=r["src"], key=r["key"], path=r["path"], first=r["first"],
                       last=r["last"])
                for r in store.read(RENAMES_FROM, {"keys": keys, "start": start, "end": end})]

    follow_renames(renames, files, run.start, run.end)
    procs = processes if processes is not None else run_processes(store, run)
    out = classify_files(files, procs, run.cwd, classifier)
    _prior_writes(store, out.inputs)
    _versions(store, run, out)
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
    followed."""
    start = start or 0
    end = end or FOREVER
    frontier = [f.key for f in files.values() if f.written()]
    seen: set[str] = set()
    for _ in range(8):
        frontier = [k for k in frontier if k not in seen]
        if not frontier:
            break
        seen.update(frontier)
        nxt = []
        for row in renames(frontier, start, end):
            src = files[row.src]
            at = _rename_time(row.first, row.last, start, end, src.last_write)
            src.renamed_away = _max(src.renamed_away, at)
            dst = files.get(row.key)
            if dst is None:
                dst = files[row.key] = RunFile(row.key, row.path)
            dst.first_write = _min(dst.first_write, at)
            dst.last_write = _max(dst.last_write, at)
            nxt.append(row.key)
        frontier = nxt


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
    """The trees interpreters and tools were installed in: the parent of the ``bin`` dir of
    each executed program (``/opt/x/bin/python`` -> ``/opt/x/``), unless the run's working
    directory lies inside it (then it is the project, not an installation)."""
    exes = {f.path for f in files.values() if f.executed is not None}
    exes.update(p.exe for p in procs if p.exe)
    here = (cwd or "/nonexistent").rstrip("/") + "/"
    roots = set()
    for exe in exes:
        parent = posixpath.dirname(exe)
        if posixpath.basename(parent) not in ("bin", "sbin", "libexec", "shims"):
            continue
        root = posixpath.dirname(parent).rstrip("/") + "/"
        if root != "/" and not here.startswith(root):
            roots.add(root)
    return tuple(sorted(roots))


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


def _prior_writes(store: GraphStore, inputs: list[RunFile]) -> None:
    items = [{"key": f.key, "t": f.first_read} for f in inputs if f.first_read is not None]
    if not items:
        return
    by_key = {f.key: f for f in inputs}
    for statement in (PRIOR_WRITES, PRIOR_RENAMES):
        for row in store.read(statement, {"items": items}):
            f = by_key[row["key"]]
            f.prior_write = _max(f.prior_write, row["t"])


def _versions(store: GraphStore, run: RunSummary, out: RunFiles) -> None:
    versions: dict[str, FileVersion] = {}
    for row in store.read(RUN_VERSIONS, {"key": run.key}):
        versions[row["file"]] = FileVersion(sha256=row["sha256"], size=row["size"],
                                            mtime=row["mtime"], stored=bool(row["stored"]))
    for group in (out.inputs, out.outputs, out.programs, out.intermediates):
        for f in group:
            f.version = versions.get(f.key)


def run_facts(store: GraphStore, ref: str | RunSummary,
              classifier: Classifier | None = None) -> RunFacts:
    """Everything about one run (an id, a unique prefix of one, or its summary): the
    summary, parameters, environment, metrics, inputs, outputs, intermediates, programs and
    the processes (steps)."""
    run = find_run(store, ref) if isinstance(ref, str) else ref
    procs = run_processes(store, run)
    files = run_files(store, run, classifier, procs)
    cwd = run.cwd
    gaps = run_gaps(store, run)
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
