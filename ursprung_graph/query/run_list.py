"""Runs as analysts filter them: by pipeline, status, start time and parameter, in pages.

Runs are ordered by start and id (oldest first, as ``ursprung runs list``); a page's
``end_cursor`` is the last run's id, and the next page starts after it. ``status`` is
``succeeded`` (exit code 0), ``failed`` (any other exit code) or ``unknown`` (no exit code
recorded).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ..schema import graph as g
from ..store.base import GraphStore
from ..store.cypher import Cypher
from .runs import list_runs
from .types import RunSummary

Status = Literal["succeeded", "failed", "unknown"]
STATUSES: tuple[Status, ...] = ("succeeded", "failed", "unknown")


class RunFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which runs: all fields are optional; ``param`` is ``(name, value)``; ``since`` and
    ``until`` bound the start (epoch ns, inclusive)."""

    pipeline: str | None = None
    status: Status | None = None
    since: int | None = None
    until: int | None = None
    param: tuple[str, str] | None = None


class RunPage(msgspec.Struct, frozen=True):
    runs: list[RunSummary]
    total: int
    has_next: bool
    end_cursor: str | None


def status_of(run: RunSummary) -> Status:
    if run.exit_code is None:
        return "unknown"
    return "succeeded" if run.exit_code == 0 else "failed"


def _keep(run: RunSummary, f: RunFilter) -> bool:
    start = run.start or 0
    return ((f.status is None or status_of(run) == f.status)
            and (f.since is None or start >= f.since)
            and (f.until is None or start <= f.until)
            and (f.param is None or run.params.get(f.param[0]) == f.param[1]))


def find_runs(store: GraphStore, where: RunFilter | None = None, *, first: int = 20,
              after: str | None = None) -> RunPage:
    """Up to ``first`` runs matching ``where``, after the run with id ``after``."""
    f = where or RunFilter()
    runs = [r for r in list_runs(store, f.pipeline) if _keep(r, f)]
    start = 0
    if after:
        ids = [r.id for r in runs]
        if after not in ids:
            raise ValueError(f"not a run cursor: {after!r}")
        start = ids.index(after) + 1
    page = runs[start:start + first]
    return RunPage(runs=page, total=len(runs), has_next=start + first < len(runs),
                   end_cursor=page[-1].id if page else after)


RUNS_USING = Cypher(
    f"MATCH (f:{g.FILE} {{key: $key}})<-[:{g.READ.name}]-(:{g.PROCESS})"
    f"<-[:{g.INCLUDES.name}]-(r:{g.PIPELINE_RUN}) RETURN DISTINCT r.id AS id"
)


def runs_reading(store: GraphStore, file_key: str) -> list[RunSummary]:
    """The runs whose processes read the file with key ``file_key``, oldest first (an
    input of the run or a file of its environment: :func:`.runs.run_facts` tells which)."""
    ids = {r["id"] for r in store.read(RUNS_USING, {"key": file_key})}
    return [r for r in list_runs(store) if r.id in ids]
