"""`ursprung runs define`: runs of the past, on audit (or Spectrum Scale) data.

The query layer finds the runs' roots and their process trees
(:func:`ursprung_graph.query.runs.run_roots`); each becomes a ``run`` event, written through
the ordinary upserts. The environment (the interpreters the run executed) needs the run's
files, which the query layer derives from the run's node, so it follows in a second ``run``
event once the first is stored; ``UPSERT_RUNS`` keeps the fuller environment whatever the
order, so replaying either event changes nothing.
"""

from __future__ import annotations

import hashlib

from ..ingest.runs import params_from_argv
from ..ingest.upserts import Batch
from ..query.runs import find_run, run_files, run_roots
from ..query.types import CandidateProcess
from ..schema.event import SCHEMA_VERSION, Event, Kind, ProcessInfo, RunInfo
from ..store.base import GraphStore
from .environment import environment_of


def define_runs(store: GraphStore, pipeline: str, pattern: str, *,
                host: str | None = None) -> list[str]:
    """Mark every process whose command line matches ``pattern`` (a Python regex, searched)
    as the root of a run of ``pipeline``; a match inside another match's subtree belongs to
    that run. Returns the run ids (deterministic: defining again changes nothing)."""
    events = []
    for found in run_roots(store, pattern, host):
        root = found.process
        run_id = hashlib.sha256(f"{pipeline}\n{root.key}".encode()).hexdigest()[:32]
        start = root.start or root.first or 0
        end = root.end if root.end is not None else max(found.last, root.last or 0)
        info = RunInfo(
            id=run_id, pipeline=pipeline, argv=list(root.argv or []), cwd=root.cwd,
            user=None if root.uid is None else str(root.uid), start=start, end=end,
            exit_code=root.exit_code, origin="audit",
            params=params_from_argv(list(root.argv or [])), members=found.members,
        )
        events.append((root, info))
    batch = Batch()
    for root, info in events:
        batch.add(_run_event(root, info))
    store.write(batch.statements())
    # The environment needs the run's files, which need the run in the graph.
    batch = Batch()
    for root, info in events:
        files = run_files(store, find_run(store, info.id))
        env = environment_of(files, probe=False)
        if env:
            fields = {n: getattr(info, n) for n in info.__struct_fields__}
            batch.add(_run_event(root, RunInfo(**{**fields, "environment": env})))
    if len(batch):
        store.write(batch.statements())
    return [info.id for _, info in events]


def _run_event(root: CandidateProcess, info: RunInfo) -> Event:
    return Event(v=SCHEMA_VERSION, source="runs-define", host=root.host,
                 ts=info.end or info.start, seq=f"run:{info.id}", kind=Kind.RUN,
                 proc=ProcessInfo(pid=root.pid, start=root.start or 0), run=info)
