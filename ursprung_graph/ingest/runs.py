"""Upserts for pipeline runs and file versions (event kinds ``run`` and ``version``).

A ``run`` event becomes a ``PipelineRun`` node (keyed by run id; its facts as properties,
parameter/environment/metric maps as JSON text since neither backend stores maps) with an
``INCLUDES`` edge to each member process. A ``version`` event becomes a ``Version`` node
(keyed by file and content hash, or by size and mtime above the hashing limit) linked from
its ``File`` (``HAS_VERSION``) and from the run that observed it (``OBSERVED``, with the
time). All statements are MERGEs whose updates are idempotent and commutative (facts fixed
by the run's identity set on creation, min of times, max of ends, the fuller environment),
so replaying any batch, in any order, changes nothing.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from ..schema import graph as g
from ..schema.event import Event, Kind
from ..store.cypher import Cypher
from .rows import chunked
from .spans import FILE_FIELDS, merge_file, widen

#: A run's identity facts are set when its node is created: every event of a run carries the
#: same ones. Its environment and metrics keep the fuller of the values seen (the longer JSON
#: text, then the greater one), so an event written before the environment was known cannot
#: take it away again; end and exit status come from the event with the latest end (then
#: the greater exit status). Each is a max over the run's events, so replaying any of them,
#: in any order, changes nothing.
UPSERT_RUNS = Cypher(
    "UNWIND $rows AS r "
    "MERGE (x:PipelineRun {key: r.key}) "
    "ON CREATE SET x.id = r.id, x.pipeline = r.pipeline, x.host = r.host, x.argv = r.argv, "
    "x.command = r.command, x.cwd = r.cwd, x.user = r.user, x.start = r.start, "
    "x.origin = r.origin, x.params = r.params, x.root = r.root "
    "SET x.environment = CASE WHEN x.environment IS NULL "
    "OR size(r.environment) > size(x.environment) OR (size(r.environment) = "
    "size(x.environment) AND r.environment > x.environment) "
    "THEN r.environment ELSE x.environment END, "
    "x.metrics = CASE WHEN x.metrics IS NULL OR size(r.metrics) > size(x.metrics) "
    "OR (size(r.metrics) = size(x.metrics) AND r.metrics > x.metrics) "
    "THEN r.metrics ELSE x.metrics END "
    "WITH x, r WHERE coalesce(r.end, -1) > coalesce(x.end, -1) "
    "OR (coalesce(r.end, -1) = coalesce(x.end, -1) "
    "AND (x.exit_code IS NULL OR r.exit_code >= x.exit_code)) "
    "SET x.end = r.end, x.exit_code = r.exit_code"
)

LINK_RUN_PROCESSES = Cypher(
    "UNWIND $rows AS r "
    "MATCH (x:PipelineRun {key: r.run}) "
    "MATCH (p:Process {key: r.proc}) "
    "MERGE (x)-[:INCLUDES]->(p)"
)

#: The file of a version is seen at the version's time, as any event's file is (the same
#: node and span ``UPSERT_FILES`` gives it), so a version needs no separate file row.
#: ``at`` and ``last`` are the first and last time in the batch the run observed the version;
#: ``OBSERVED.at`` keeps the first over all batches. What a new node or edge gets is set on
#: creation, the min/max comparisons only on a match: the same effect, and FalkorDB sets
#: properties on creation for a fraction of what a separate update costs it.
UPSERT_VERSIONS = Cypher(
    "UNWIND $rows AS r "
    + merge_file("f", {"key": "r.file", **{name: f"r.{name}" for name in FILE_FIELDS},
                       "first": "r.at", "last": "r.last"})
    + " MERGE (v:Version {key: r.key}) "
    "ON CREATE SET v.path = r.path, v.sha256 = r.sha256, v.size = r.size, v.mtime = r.mtime, "
    "v.stored = r.stored, v.first = r.at, v.last = r.last "
    "ON MATCH SET v.stored = CASE WHEN r.stored THEN true ELSE coalesce(v.stored, false) END, "
    f"{widen('v', 'r.at', 'r.last')} "
    "MERGE (f)-[:HAS_VERSION]->(v) "
    "WITH v, r "
    "MATCH (x:PipelineRun {key: r.run}) "
    "MERGE (x)-[o:OBSERVED]->(v) "
    "ON CREATE SET o.at = r.at "
    "ON MATCH SET o.at = CASE WHEN o.at IS NULL OR r.at < o.at THEN r.at ELSE o.at END"
)


def _fuller(a: str, b: str) -> str:
    """The fuller of two JSON maps: the longer text, then the greater (as UPSERT_RUNS)."""
    return max(a, b, key=lambda t: (len(t), t))


def _merge_runs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One row for two events of a run in one batch, as ``UPSERT_RUNS`` would combine them."""
    out = dict(a)
    out["environment"] = _fuller(a["environment"], b["environment"])
    out["metrics"] = _fuller(a["metrics"], b["metrics"])
    ends = (-1 if a["end"] is None else a["end"], -1 if b["end"] is None else b["end"])
    if ends[1] > ends[0] or (ends[1] == ends[0] and (
            a["exit_code"] is None or (b["exit_code"] is not None
                                       and b["exit_code"] >= a["exit_code"]))):
        out["end"], out["exit_code"] = b["end"], b["exit_code"]
    return out


class RunRows:
    """Rows of run and version events in one batch, combined as the statements combine
    them (so one batch has the effect of its events one by one)."""

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
        row = {
            "key": key, "id": run.id, "pipeline": run.pipeline, "host": ev.host,
            "argv": list(run.argv), "command": " ".join(run.argv), "cwd": run.cwd,
            "user": run.user, "start": run.start, "end": run.end,
            "exit_code": run.exit_code, "origin": run.origin,
            "params": json.dumps(run.params, sort_keys=True),
            "environment": json.dumps(run.environment, sort_keys=True),
            "metrics": json.dumps(run.metrics, sort_keys=True),
            "root": g.process_key(ev.host, ev.proc.pid, ev.proc.start),
        }
        seen = self.runs.get(key)
        self.runs[key] = row if seen is None else _merge_runs(seen, row)
        for pid, start in run.members:
            proc = g.process_key(ev.host, pid, start)
            self.members[(key, proc)] = {"run": key, "proc": proc}

    def _version(self, ev: Event) -> None:
        version, ref = ev.version, ev.file
        assert version is not None and ref is not None
        file = g.file_key(ev.host, ref)
        key = g.version_key(file, version.sha256, version.size, version.mtime)
        run = g.run_key(version.run)
        seen = self.versions.get((key, run))
        if seen is not None:  # the same version observed again by the run: its time span
            seen["stored"] = seen["stored"] or version.stored
            seen["at"], seen["last"] = min(seen["at"], ev.ts), max(seen["last"], ev.ts)
            return
        self.versions[(key, run)] = {
            "key": key, "file": file, "path": ref.path, "sha256": version.sha256,
            "size": version.size, "mtime": version.mtime, "stored": version.stored,
            "run": run, "at": ev.ts, "last": ev.ts, "host": None if ref.fs else ev.host,
            "fs": ref.fs, "name": posixpath.basename(ref.path),
        }

    def statements(self) -> list[tuple[Cypher, dict[str, Any]]]:
        """Runs before the edges that MATCH them; run statements after the process and file
        statements of the same batch (the caller appends these last)."""
        out: list[tuple[Cypher, dict[str, Any]]] = []
        for statement, rows in ((UPSERT_RUNS, self.runs), (LINK_RUN_PROCESSES, self.members),
                                (UPSERT_VERSIONS, self.versions)):
            chunked(out, statement, list(rows.values()))
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
