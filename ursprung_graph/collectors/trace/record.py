"""`ursprung run`: trace a command into the graph and record it as a pipeline run.

1. The command runs under strace (:mod:`.runner`); its events go into the store in chunks
   while it runs.
2. The run is written as a ``run`` event (``PipelineRun`` with its member processes).
3. The query layer derives its inputs, outputs and programs from the graph
   (:func:`ursprung_graph.query.runs.run_files`: one definition for traced and audited runs).
4. Each of those files is hashed (streaming, size limit) and written as a ``version`` event;
   files matching the content patterns are copied into the content store (at most
   ``store_max_files`` per run: programs first, then inputs, then outputs).
5. The environment (interpreter versions, Python distributions the run imported) completes
   the run's facts.
"""

from __future__ import annotations

import os
import pwd
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...content import ContentStore, hash_file
from ...content.config import RunsConfig
from ...ingest.runs import environment_of, params_of
from ...ingest.upserts import Batch
from ...query.runs import Classifier, find_run, run_files
from ...schema.event import SCHEMA_VERSION, Event, FileRef, Kind, ProcessInfo, RunInfo, VersionInfo
from ...store.base import GraphStore
from .runner import TraceResult, trace


@dataclass(slots=True)
class RecordedRun:
    id: str
    trace: TraceResult
    versions: int
    stored: int
    error: str | None = None

    @property
    def returncode(self) -> int:
        return self.trace.returncode


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def store_sink(store: GraphStore):  # noqa: ANN201
    def sink(events: list[Event]) -> None:
        batch = Batch()
        for ev in events:
            batch.add(ev)
        store.write(batch.statements())
    return sink


def record_run(store: GraphStore, argv: Sequence[str], *, host: str, pipeline: str | None,
               params: dict[str, str] | None = None, config: RunsConfig | None = None,
               content_root: Path | None = None, cwd: str | None = None,
               env: dict[str, str] | None = None, live: bool = True,
               run_id: str | None = None) -> RecordedRun:
    config = config or RunsConfig()
    run_id = run_id or uuid.uuid4().hex
    cwd = os.path.abspath(cwd or os.getcwd())
    environ = env if env is not None else dict(os.environ)
    sink = store_sink(store)
    result = trace(argv, sink, host=host, cwd=cwd, env=env, live=live)
    if result.sink_error is not None:
        return RecordedRun(run_id, result, 0, 0,
                           error=f"the trace could not be stored: {result.sink_error}")
    root_pid = result.root_pid if result.root_pid is not None else 0
    root_start = result.root_start if result.root_start is not None else result.start
    all_params = params_of(list(argv), environ, config.param_env)
    all_params.update(params or {})
    info = RunInfo(
        id=run_id, pipeline=pipeline or _default_pipeline(argv), argv=list(argv), cwd=cwd,
        user=_user(), start=result.start, end=result.end, exit_code=result.returncode,
        origin="trace", params=all_params, members=sorted(result.members),
    )
    root = ProcessInfo(pid=root_pid, start=root_start)

    def event(kind: Kind, seq: str, **kw) -> Event:  # noqa: ANN003
        return Event(v=SCHEMA_VERSION, source="strace", host=host, ts=result.end,
                     seq=f"run:{run_id}:{seq}", kind=kind, proc=root, **kw)

    sink([event(Kind.RUN, "run", run=info)])
    classifier = Classifier(config.system_prefixes, config.ignore_patterns)
    run = find_run(store, run_id)
    files = run_files(store, run, classifier)
    contents = ContentStore(content_root) if content_root is not None else None
    versions: list[Event] = []
    stored = 0
    for f in files.observed():
        v = hash_file(f.path, config.hash_limit)
        if v is None:
            continue
        keep = False
        if (contents is not None and v.sha256 and v.size <= config.store_limit
                and stored < config.store_max_files
                and _matches(f.path, config.store_patterns)):
            keep = contents.put(f.path, v.sha256)
            stored += keep
        versions.append(event(Kind.VERSION, f"v{len(versions)}", file=FileRef(f.path),
                              version=VersionInfo(run=run_id, size=v.size, mtime=v.mtime,
                                                  sha256=v.sha256, stored=keep)))
    environment = environment_of(files, probe=True)
    final = RunInfo(**{**_fields(info), "environment": environment})
    sink([*versions, event(Kind.RUN, "run", run=final)])
    return RecordedRun(run_id, result, len(versions), stored)


def _fields(info: RunInfo) -> dict:
    return {name: getattr(info, name) for name in info.__struct_fields__}


def _matches(path: str, patterns: Sequence[str]) -> bool:
    import fnmatch

    name = os.path.basename(path)
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(path, p) for p in patterns)


def _default_pipeline(argv: Sequence[str]) -> str:
    """Without --pipeline: the script's name (``python train.py`` -> ``train.py``), else the
    program's."""
    for arg in argv[1:]:
        if not arg.startswith("-") and ("/" in arg or "." in arg):
            return os.path.basename(arg)
        if not arg.startswith("-"):
            break
    return os.path.basename(argv[0])
