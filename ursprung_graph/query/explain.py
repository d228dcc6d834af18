"""Why did an output change? For each output that differs between two runs, the changed
facts (inputs, parameters, programs, environment) that lie on its upstream lineage within
each run, nearest first.

The upstream of an output within a run is :func:`.run_lineage.run_graph` without forks:
data flows only (reads, writes, renames, pipes, sockets) through the run's own processes.
A changed fact explains an output in a run when

* an **input** or **program**: the file (that run's path of it) is on the output's upstream;
* a **parameter**: a process on the upstream has it on its command line with that run's
  value (``--name value``, ``--name=value``, ``name=value``: the rule that found the
  parameters); a parameter no process of the run but its root has on its command line
  (an environment variable, a config read by the root) reaches every output, at the
  distance of the output's nearest process;
* an **environment** entry: named by a path (an interpreter), when that file is on the
  upstream; any other entry (a Python distribution) reaches every output as above.

``a_distance``/``b_distance``: hops from the output to the file or process of the fact in
each run (None when it is not upstream there); ``a_via``/``b_via``: the command line of
the nearest process that used it. An output whose upstream changed nothing gets no facts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Literal

import msgspec

from ..ingest.runs import params_from_argv
from ..store.base import GraphStore
from .classify import Classifier
from .lineage import DEFAULT_DEPTH, Walk
from .run_lineage import RunGraph, run_graph
from .types import Comparison, FileSection, ProcessNode, RunSummary, ValueSection

Change = Literal["changed", "only_a", "only_b"]
FactSection = Literal["inputs", "params", "programs", "environment"]


class ExplainedFact(msgspec.Struct, frozen=True):
    section: FactSection
    name: str
    change: Change
    a_distance: int | None = None
    b_distance: int | None = None
    a_via: str | None = None
    b_via: str | None = None

    def nearest(self) -> int:
        return min(d for d in (self.a_distance, self.b_distance) if d is not None)


class Explanation(msgspec.Struct, frozen=True):
    """A changed output (its name in the comparison) and the facts that explain it."""

    output: str
    facts: list[ExplainedFact]


class Explanations(msgspec.Struct, frozen=True):
    items: list[Explanation]
    truncated: bool = False
    reason: str | None = None


class _Fact(msgspec.Struct, frozen=True):
    """A changed fact as each run names it (None: the run does not have it)."""

    section: FactSection
    name: str
    change: Change
    a: str | None
    b: str | None


def changed_facts(result: Comparison) -> list[_Fact]:
    """The differing inputs, parameters, programs and environment entries."""
    out: list[_Fact] = []
    files: tuple[tuple[FactSection, FileSection], ...] = (
        ("inputs", result.inputs), ("programs", result.programs))
    for section, part in files:
        out += [_Fact(section, e.name, "changed", e.a.path, e.b.path) for e in part.changed]
        out += [_Fact(section, e.name, "only_a", e.value.path, None) for e in part.only_a]
        out += [_Fact(section, e.name, "only_b", None, e.value.path) for e in part.only_b]
    values: tuple[tuple[FactSection, ValueSection], ...] = (
        ("params", result.params), ("environment", result.environment))
    for section, vpart in values:
        out += [_Fact(section, e.name, "changed", str(e.a), str(e.b)) for e in vpart.changed]
        out += [_Fact(section, e.name, "only_a", str(e.value), None) for e in vpart.only_a]
        out += [_Fact(section, e.name, "only_b", None, str(e.value)) for e in vpart.only_b]
    return out


class _Side:
    """One run's view: its graph, and which processes take which parameters."""

    def __init__(self, run: RunSummary, graph: RunGraph) -> None:
        self.graph = graph
        self.params: dict[str, dict[str, str]] = {}  # process key -> its parameters
        for p in graph.processes:
            if p.key != run.root and p.argv:
                self.params[p.key] = params_from_argv(list(p.argv))
        self.argv_params = {name for ps in self.params.values() for name in ps}

    def locate(self, fact: _Fact, value: str | None, up: Walk) -> tuple[int, str] | None:
        """(distance, via) of ``fact`` on the upstream walk ``up``, or None."""
        if value is None:
            return None
        procs = [n for n in up.lineage.nodes if isinstance(n, ProcessNode)]
        if fact.section == "params":
            if fact.name in self.argv_params:
                users = [p for p in procs if self.params.get(p.id, {}).get(fact.name) == value]
                return _nearest(users, up)
            return _nearest(procs, up, via_self=False)
        if fact.section == "environment" and not fact.name.startswith("/"):
            return _nearest(procs, up, via_self=False)
        path = fact.name if fact.section == "environment" else value
        files = {n.id for n in up.lineage.nodes if getattr(n, "path", None) == path}
        if not files:
            return None
        distance = min(up.distance[k] for k in files)
        ends = {e.source if e.target in files else e.target for e in up.lineage.edges
                if e.target in files or e.source in files}
        via = _nearest([p for p in procs if p.id in ends], up)
        return distance, via[1] if via else ""


def _nearest(procs: Iterable[ProcessNode], up: Walk,
             via_self: bool = True) -> tuple[int, str] | None:
    found = sorted(((up.distance[p.id], p.cmdline or p.exe or p.id) for p in procs),
                   key=lambda t: t[0])
    if not found:
        return None
    distance, via = found[0]
    return distance, via if via_self else "the run's command"


def _halves(deadline: float | None) -> tuple[float | None, float | None]:
    """Run A's walks get the first half of the time left, B's the rest: with a budget too
    small for both, each side is partial rather than B having none."""
    if deadline is None:
        return None, None
    return time.monotonic() + (deadline - time.monotonic()) / 2, deadline


def explain(store: GraphStore, a: RunSummary, b: RunSummary, result: Comparison, *,
            classifier: Classifier | None = None, depth: int = DEFAULT_DEPTH,
            max_nodes: int | None = None, deadline: float | None = None) -> Explanations:
    """For each changed output of ``result`` (the comparison of runs ``a`` and ``b``), the
    changed facts upstream of it in each run, nearest first (see the module docstring)."""
    facts = changed_facts(result)
    sides = []
    for run, until in zip((a, b), _halves(deadline), strict=True):
        sides.append(_Side(run, run_graph(store, run, forks=False, classifier=classifier,
                                          depth=depth, max_nodes=max_nodes, deadline=until)))
    items: list[Explanation] = []
    reason: str | None = None
    for entry in result.outputs.changed:
        walks = [side.graph.walks.get(path or "") for side, path in
                 zip(sides, (entry.a.path, entry.b.path), strict=True)]
        if any(w is None and path is not None for w, path in
               zip(walks, (entry.a.path, entry.b.path), strict=True)):
            reason = reason or "time budget spent"
            continue  # not walked in time: no explanation rather than a wrong one
        for w in walks:
            if w is not None and w.truncated:
                reason = reason or w.reason
        explained: list[ExplainedFact] = []
        for fact in facts:
            where = [None if w is None else side.locate(fact, value, w)
                     for side, value, w in zip(sides, (fact.a, fact.b), walks, strict=True)]
            if where[0] is None and where[1] is None:
                continue
            explained.append(ExplainedFact(
                section=fact.section, name=fact.name, change=fact.change,
                a_distance=where[0][0] if where[0] else None,
                b_distance=where[1][0] if where[1] else None,
                a_via=where[0][1] if where[0] else None,
                b_via=where[1][1] if where[1] else None))
        explained.sort(key=lambda f: (f.nearest(), f.section, f.name))
        items.append(Explanation(output=entry.name, facts=explained))
    return Explanations(items=items, truncated=reason is not None, reason=reason)
