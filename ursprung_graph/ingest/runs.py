"""Upserts for pipeline runs and file versions (event kinds ``run`` and ``version``).

A ``run`` event becomes a ``PipelineRun`` node (keyed by run id; its facts as properties,
parameter/environment/metric maps as JSON text since neither backend stores maps) with an
``INCLUDES`` edge to each member process. A ``version`` event becomes a ``Version`` node
(keyed by file and content hash, or by size and mtime above the hashing limit) linked from
its ``File`` (``HAS_VERSION``) and from the run that observed it (``OBSERVED``, with the
time). All statements are MERGEs with SETs of values that only depend on the event, so a
replayed batch changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import subprocess
from pathlib import Path
from typing import Any

from ..schema import graph as g
from ..schema.event import Event, Kind
from ..store.cypher import Cypher

UPSERT_RUNS = Cypher(
    "UNWIND $rows AS r "
    "MERGE (x:PipelineRun {key: r.key}) "
    "SET x.id = r.id, x.pipeline = r.pipeline, x.host = r.host, x.argv = r.argv, "
    "x.command = r.command, x.cwd = r.cwd, x.user = r.user, x.start = r.start, "
    "x.end = r.end, x.exit_code = r.exit_code, x.origin = r.origin, x.params = r.params, "
    "x.environment = r.environment, x.metrics = r.metrics, x.root = r.root"
)

LINK_RUN_PROCESSES = Cypher(
    "UNWIND $rows AS r "
    "MATCH (x:PipelineRun {key: r.run}) "
    "MATCH (p:Process {key: r.proc}) "
    "MERGE (x)-[:INCLUDES]->(p)"
)

#: The file of a version is seen at the version's time, as any event's file is (the same
#: node and span ``UPSERT_FILES`` gives it), so a version needs no separate file row.
UPSERT_VERSIONS = Cypher(
    "UNWIND $rows AS r "
    "MERGE (f:File {key: r.file}) "
    "ON CREATE SET f.path = r.path, f.host = r.host, f.fs = r.fs, f.name = r.name "
    "SET f.first = CASE WHEN f.first IS NULL OR r.at < f.first THEN r.at ELSE f.first END, "
    "f.last = CASE WHEN f.last IS NULL OR r.at > f.last THEN r.at ELSE f.last END "
    "MERGE (v:Version {key: r.key}) "
    "ON CREATE SET v.path = r.path, v.sha256 = r.sha256, v.size = r.size, v.mtime = r.mtime "
    "SET v.stored = CASE WHEN r.stored THEN true ELSE coalesce(v.stored, false) END, "
    "v.first = CASE WHEN v.first IS NULL OR r.at < v.first THEN r.at ELSE v.first END, "
    "v.last = CASE WHEN v.last IS NULL OR r.at > v.last THEN r.at ELSE v.last END "
    "MERGE (f)-[:HAS_VERSION]->(v) "
    "WITH v, r "
    "MATCH (x:PipelineRun {key: r.run}) "
    "MERGE (x)-[o:OBSERVED]->(v) "
    "SET o.at = r.at"
)

ROWS_PER_STATEMENT = 2000


class RunRows:
    """Rows of run and version events in one batch (the latest event of a run wins)."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.members: dict[tuple[str, str], dict[str, Any]] = {}
        self.versions: dict[tuple[str, str], dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.runs) + len(self.versions)

    def add(self, ev: Event) -> None:
        if ev.kind is Kind.RUN and ev.run is not None:
            self._run(ev)
        elif ev.kind is Kind.VERSION and ev.version is not None and ev.file is not None:
            self._version(ev)

    def _run(self, ev: Event) -> None:
        run = ev.run
        assert run is not None
        key = g.run_key(run.id)
        self.runs[key] = {
            "key": key, "id": run.id, "pipeline": run.pipeline, "host": ev.host,
            "argv": list(run.argv), "command": " ".join(run.argv), "cwd": run.cwd,
            "user": run.user, "start": run.start, "end": run.end,
            "exit_code": run.exit_code, "origin": run.origin,
            "params": json.dumps(run.params, sort_keys=True),
            "environment": json.dumps(run.environment, sort_keys=True),
            "metrics": json.dumps(run.metrics, sort_keys=True),
            "root": g.process_key(ev.host, ev.proc.pid, ev.proc.start),
        }
        for pid, start in run.members:
            proc = g.process_key(ev.host, pid, start)
            self.members[(key, proc)] = {"run": key, "proc": proc}

    def _version(self, ev: Event) -> None:
        version, ref = ev.version, ev.file
        assert version is not None and ref is not None
        file = g.file_key(ev.host, ref)
        key = g.version_key(file, version.sha256, version.size, version.mtime)
        run = g.run_key(version.run)
        self.versions[(key, run)] = {
            "key": key, "file": file, "path": ref.path, "sha256": version.sha256,
            "size": version.size, "mtime": version.mtime, "stored": version.stored,
            "run": run, "at": ev.ts, "host": None if ref.fs else ev.host, "fs": ref.fs,
            "name": posixpath.basename(ref.path),
        }

    def statements(self) -> list[tuple[Cypher, dict[str, Any]]]:
        """Runs before the edges that MATCH them; run statements after the process and file
        statements of the same batch (the caller appends these last)."""
        out: list[tuple[Cypher, dict[str, Any]]] = []
        for statement, rows in ((UPSERT_RUNS, self.runs), (LINK_RUN_PROCESSES, self.members),
                                (UPSERT_VERSIONS, self.versions)):
            values = list(rows.values())
            for i in range(0, len(values), ROWS_PER_STATEMENT):
                out.append((statement, {"rows": values[i:i + ROWS_PER_STATEMENT]}))
        return out


# --------------------------------------------------------------------------- run facts

_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\Z")


def params_from_argv(argv: list[str]) -> dict[str, str]:
    """Parameters on a command line: ``--key value``, ``--key=value`` and ``key=value``
    (a ``--flag`` without a value is ``"true"``). Names lose their dashes. The value of a
    short option (``-c 'a=1'``) is never a parameter. Arguments before
    the first of these forms (the program and its script) are not parameters."""
    params: dict[str, str] = {}
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        if arg.startswith("--") and len(arg) > 2:
            body = arg[2:]
            if "=" in body:
                name, _, value = body.partition("=")
                if _PARAM_NAME.match(name):
                    params[name] = value
            elif _PARAM_NAME.match(body):
                nxt = argv[i + 1] if i + 1 < len(argv) else None
                if nxt is not None and (not nxt.startswith("-") or _NUMBER.match(nxt)):
                    params[body] = nxt
                    i += 1
                else:
                    params[body] = "true"
        elif len(arg) == 2 and arg[0] == "-" and arg[1] != "-":
            # -c 'script', -o file: a short option's value is not a key=value parameter
            if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                i += 1
        elif "=" in arg and not arg.startswith("-"):
            name, _, value = arg.partition("=")
            if _PARAM_NAME.match(name):
                params[name] = value
        i += 1
    return params


def params_of(argv: list[str], environ: dict[str, str] | None,
              env_names: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """Command-line parameters plus the named environment variables that are set."""
    params = params_from_argv(argv)
    for name in env_names:
        if environ is not None and name in environ:
            params[name] = environ[name]
    return params


_VERSION_PROBES = {"python": ["-c", "import platform; print(platform.python_version())"]}
_DIST_INFO = re.compile(r"(?P<name>.+?)-(?P<version>[^-]+)\.(dist-info|egg-info)\Z")


def environment_of(files, *, probe: bool, cache: Path | None = None) -> dict[str, str]:  # noqa: ANN001
    """The software environment of a run: for each interpreter it executed, its version
    (``probe``: ask it, for runs traced here and now; else only its path is known), and for
    Python the distributions whose packages the run imported (``python-dist:NAME``), read
    from the ``*.dist-info`` directories next to them. ``cache`` (a JSON file) keeps the
    answers of interpreter binaries by their inode, size, mtime and ctime, so that a run
    does not wait for ``python -c ...`` to start every time."""
    from ..query.runs import _is_interpreter

    env: dict[str, str] = {}
    programs = sorted({f.path for f in files.programs if f.executed is not None})
    interpreters = [p for p in programs if _is_interpreter(p)]
    if not probe:
        for path in interpreters[:10]:
            env[path] = os.path.basename(path)
        return env
    env.update(probe_versions(interpreters[:10], cache))
    env.update(_distributions([*files.ignored, *files.environment]))
    return env


def probe_versions(paths: list[str], cache: Path | None = None) -> dict[str, str]:
    """``--version`` (for Python: ``platform.python_version()``) of each interpreter, the
    ones not in ``cache`` asked concurrently. Only binaries are cached: what a script (a
    pyenv shim, a wrapper) runs depends on its environment, so it is asked every time."""
    known = _load_cache(cache)
    found: dict[str, str] = {}
    ask: list[tuple[str, list | None]] = []
    for path in paths:
        stamp = _stamp(path)
        hit = known.get(path)
        if stamp is not None and hit is not None and hit[:-1] == stamp:
            found[path] = hit[-1]
        else:
            ask.append((path, stamp))
    if ask:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(4, len(ask))) as pool:
            answers = list(pool.map(_probe_version, [path for path, _ in ask]))
        for (path, stamp), version in zip(ask, answers, strict=True):
            if version:
                found[path] = version
                if stamp is not None:
                    known[path] = [*stamp, version]
        if cache is not None and any(stamp is not None for _, stamp in ask):
            _save_cache(cache, known)
    return {path: found[path] for path in paths if path in found}


def _stamp(path: str) -> list | None:
    """What identifies an interpreter binary's build: None for scripts and missing files."""
    try:
        with open(path, "rb") as fh:
            if fh.read(2) == b"#!":
                return None
            st = os.fstat(fh.fileno())
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _load_cache(cache: Path | None) -> dict[str, list]:
    if cache is None:
        return {}
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 6} \
        if isinstance(data, dict) else {}


def _save_cache(cache: Path, known: dict[str, list]) -> None:
    import tempfile

    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=".interpreters-")
    except OSError:
        return  # a cache that cannot be written only costs time
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(known, fh)
        os.replace(tmp, cache)  # whole or not at all, whoever else writes it
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _probe_version(path: str) -> str | None:
    name = os.path.basename(path)
    args = _VERSION_PROBES["python"] if name.startswith("python") else ["--version"]
    try:
        done = subprocess.run([path, *args], capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    for line in (done.stdout + "\n" + done.stderr).splitlines():
        if line.strip():
            return line.strip()[:200]
    return None


def _distributions(files) -> dict[str, str]:  # noqa: ANN001
    tops: dict[str, set[str]] = {}
    for f in files:
        for marker in ("/site-packages/", "/dist-packages/"):
            at = f.path.find(marker)
            if at >= 0:
                site = f.path[:at + len(marker) - 1]
                top = f.path[at + len(marker):].split("/", 1)[0]
                top = top.removesuffix(".py").split(".", 1)[0] if top.endswith(".py") \
                    else top
                tops.setdefault(site, set()).add(top)
    out: dict[str, str] = {}
    for site, names in tops.items():
        try:
            entries = os.listdir(site)
        except OSError:
            continue
        for entry in entries:
            m = _DIST_INFO.match(entry)
            if m is None:
                continue
            provided = {m.group("name").replace("-", "_").lower()}
            try:
                with open(os.path.join(site, entry, "top_level.txt"), encoding="utf-8") as fh:
                    provided |= {line.strip().lower() for line in fh if line.strip()}
            except OSError:
                pass
            if provided & {n.lower() for n in names}:
                out[f"python-dist:{m.group('name')}"] = m.group("version")
    return out


# --------------------------------------------------------------------------- runs define

CANDIDATE_PROCESSES = Cypher(
    "MATCH (p:Process) WHERE p.cmdline IS NOT NULL AND ($host IS NULL OR p.host = $host) "
    "RETURN p.key AS key, p.cmdline AS cmdline, p.argv AS argv, p.cwd AS cwd, "
    "p.host AS host, p.pid AS pid, p.start AS start, p.end AS end, "
    "p.exit_code AS exit_code, p.uid AS uid, p.first AS first, p.last AS last"
)

PROCESS_PARENTS = Cypher(
    "UNWIND $keys AS k MATCH (a:Process)-[:FORKED]->(b:Process {key: k}) "
    "RETURN b.key AS key, a.key AS parent"
)

PROCESS_CHILDREN = Cypher(
    "UNWIND $keys AS k MATCH (a:Process {key: k})-[:FORKED]->(b:Process) "
    "RETURN b.key AS key, b.pid AS pid, b.start AS start, b.last AS last"
)

MAX_TREE_DEPTH = 200


def define_runs(store, pipeline: str, pattern: str, *,  # noqa: ANN001
                host: str | None = None) -> list[str]:
    """Mark every process whose command line matches ``pattern`` (a Python regex, searched)
    as the root of a run of ``pipeline``; a match inside another match's subtree belongs to
    that run. Returns the run ids (deterministic: defining again changes nothing)."""
    import hashlib

    from ..schema.event import SCHEMA_VERSION, ProcessInfo, RunInfo
    from .upserts import Batch

    regex = re.compile(pattern)
    candidates = {r["key"]: r for r in store.read(CANDIDATE_PROCESSES, {"host": host})
                  if regex.search(r["cmdline"] or "")}
    roots = [r for k, r in candidates.items() if not _has_ancestor_in(store, k, candidates)]
    events = []
    for root in sorted(roots, key=lambda r: (r["host"], r["start"] or 0, r["pid"])):
        members, last = _subtree(store, root)
        run_id = hashlib.sha256(f"{pipeline}\n{root['key']}".encode()).hexdigest()[:32]
        start = root["start"] or root["first"] or 0
        end = root["end"] if root["end"] is not None else max(last, root["last"] or 0)
        info = RunInfo(
            id=run_id, pipeline=pipeline, argv=list(root["argv"] or []), cwd=root["cwd"],
            user=None if root["uid"] is None else str(root["uid"]), start=start, end=end,
            exit_code=root["exit_code"], origin="audit",
            params=params_from_argv(list(root["argv"] or [])), members=members,
        )
        events.append((root, info))
    batch = Batch()
    for root, info in events:
        batch.add(_run_event(root, info, SCHEMA_VERSION, ProcessInfo))
    store.write(batch.statements())
    # The environment needs the run's files, which need the run in the graph.
    from ..query.runs import find_run, run_files

    batch = Batch()
    for root, info in events:
        files = run_files(store, find_run(store, info.id))
        env = environment_of(files, probe=False)
        if env:
            fields = {n: getattr(info, n) for n in info.__struct_fields__}
            batch.add(_run_event(root, RunInfo(**{**fields, "environment": env}),
                                 SCHEMA_VERSION, ProcessInfo))
    if len(batch):
        store.write(batch.statements())
    return [info.id for _, info in events]


def _run_event(root: dict[str, Any], info, version: int, process_info) -> Event:  # noqa: ANN001
    return Event(v=version, source="runs-define", host=root["host"], ts=info.end or info.start,
                 seq=f"run:{info.id}", kind=Kind.RUN,
                 proc=process_info(pid=root["pid"], start=root["start"] or 0), run=info)


def _has_ancestor_in(store, key: str, keys: dict[str, Any]) -> bool:  # noqa: ANN001
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


def _subtree(store, root: dict[str, Any]) -> tuple[list[tuple[int, int]], int]:  # noqa: ANN001
    members = {root["key"]: (root["pid"], root["start"] or 0)}
    last = root["last"] or 0
    frontier = [root["key"]]
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
