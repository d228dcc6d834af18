"""Runs as replicas: a model over the recorded runs of one pipeline, and the runs that
deviate from it with what they did that the others did not.

Each run is an origin; its epoch is its place in time (0 for the oldest), so "new since run
N" is the same question as for a cluster. A run's own directory, id and parameter values
are instance detail (`abstraction.Context`): ten runs of a sweep in ten directories with ten
learning rates are one behaviour.
"""

from __future__ import annotations

import msgspec

from ..store.base import GraphStore
from .abstraction import Abstractor, Context
from .anomalies import RARE, Anomaly, Report, rank
from .graph import RunRef, pipeline_runs, run_graphs
from .induction import induce
from .model import Model, merge_into

#: Parameter values this short ("1", "a") are too common to rewrite in arguments.
MIN_PARAM_CHARS = 2


class NoRuns(LookupError):
    """The pipeline has no recorded runs."""


class Deviation(msgspec.Struct):
    """A run that did something few other runs did: each fact a label-level anomaly with
    this run's concrete instances."""

    run: str
    start: int
    facts: list[Anomaly]


class RunsReport(msgspec.Struct):
    pipeline: str
    runs: list[str]
    states: int
    transitions: int
    deviations: list[Deviation]


def context_of(run: RunRef) -> Context:
    values = tuple(sorted({v for v in run.params.values() if len(v) >= MIN_PARAM_CHARS}))
    return Context(cwd=run.cwd, run_id=run.id, params=values)


def learn_runs(store: GraphStore, pipeline: str, abstractor: Abstractor, *,
               k: int = 1) -> tuple[Model, list[RunRef]]:
    """The model over every recorded run of ``pipeline`` (origins are run ids)."""
    runs = pipeline_runs(store, pipeline)
    if not runs:
        raise NoRuns(f"no recorded runs of pipeline {pipeline!r} (ursprung runs list shows "
                     "the pipelines)")
    graphs = run_graphs(store, runs)
    model = Model(k=k)
    for index, run in enumerate(runs):
        local = induce(graphs[run.id], abstractor, k=k, origin=run.id, epoch=index,
                       context=context_of(run)).model
        merge_into(model, local)
    return model, runs


def deviations(model: Model, runs: list[RunRef], *, rare: float = RARE,
               since: int | None = None) -> list[Deviation]:
    """The runs that exhibit a rare (or new since run ``since``) behaviour, oldest first."""
    report = rank(model, rare=rare, since=since, origins=[r.id for r in runs])
    out = []
    for run in runs:
        facts = []
        for a in report.anomalies:
            if run.id not in a.origins:
                continue
            mine = [e for e in a.examples if e.origin == run.id]
            facts.append(msgspec.structs.replace(a, examples=mine))
        if facts:
            out.append(Deviation(run.id, run.start, facts))
    return out


def runs_anomalies(store: GraphStore, pipeline: str, abstractor: Abstractor, *, k: int = 1,
                   rare: float = RARE, since: int | None = None) -> Report:
    """The anomalies of the model over ``pipeline``'s runs (origins are run ids)."""
    model, runs = learn_runs(store, pipeline, abstractor, k=k)
    return rank(model, rare=rare, since=since, origins=[r.id for r in runs])


def runs_report(store: GraphStore, pipeline: str, abstractor: Abstractor, *, k: int = 1,
                rare: float = RARE, since: int | None = None) -> RunsReport:
    model, runs = learn_runs(store, pipeline, abstractor, k=k)
    report = rank(model, rare=rare, since=since, origins=[r.id for r in runs])
    return RunsReport(pipeline, [r.id for r in runs], len(model.states), report.transitions,
                      deviations(model, runs, rare=rare, since=since))
