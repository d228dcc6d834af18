"""Pipelines: every pipeline name that has runs, with its number of runs and its last run."""

from __future__ import annotations

import msgspec

from ..store.base import GraphStore
from .runs import list_runs
from .types import RunSummary


class PipelineSummary(msgspec.Struct, frozen=True):
    """``last_run``: the run that started last (None when no run has a start time)."""

    name: str
    runs: int
    last_run: RunSummary | None


def pipelines(store: GraphStore) -> list[PipelineSummary]:
    """Pipelines by name (runs without a pipeline name are left out)."""
    by_name: dict[str, list[RunSummary]] = {}
    for run in list_runs(store):  # oldest first
        if run.pipeline:
            by_name.setdefault(run.pipeline, []).append(run)
    return [PipelineSummary(name=name, runs=len(runs), last_run=runs[-1])
            for name, runs in sorted(by_name.items())]
