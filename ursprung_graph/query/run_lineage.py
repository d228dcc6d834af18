"""The lineage of a run: upstream of each of its outputs, through its own processes only.

A run's lineage answers "how did this run make its outputs": from every output (and
intermediate), the time-respecting upstream walk of :func:`.lineage.walk`, admitting only
processes of the run (files, pipes and sockets between them are reached as usual, and the
files it read are the leaves). With ``forks`` the process tree (``FORKED``) is walked too;
without it only data flows (reads, writes, pipes, sockets, renames), which is what an
explanation of a changed output needs (a parent's command line does not reach a child's
output unless data carries it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import msgspec

from ..schema import graph as g
from ..store.base import GraphStore
from .classify import Classifier
from .lineage import DEFAULT_DEPTH, Step, Walk, walks
from .lineage_view import LineageView
from .runs import run_files, run_processes
from .types import GapInfo, LineageEdge, LineageNode, RunProcess, RunSummary


class RunGraph(msgspec.Struct, frozen=True):
    """A run's processes, the key of each of its output files by path, and each output's
    upstream walk within the run (all walked at once, :func:`.lineage.walks`; none when
    the deadline had passed before they began)."""

    processes: list[RunProcess]
    outputs: dict[str, str]
    walks: dict[str, Walk]


def run_graph(store: GraphStore, run: RunSummary, *, forks: bool = True,
              classifier: Classifier | None = None, depth: int = DEFAULT_DEPTH,
              max_nodes: int | None = None, deadline: float | None = None) -> RunGraph:
    """Each output's (and intermediate's) upstream within ``run`` (see the module
    docstring), keyed by path."""
    procs = run_processes(store, run)
    members = {p.key for p in procs}
    files = run_files(store, run, classifier, procs)
    outputs = {f.path: f.key for f in (*files.outputs, *files.intermediates)}

    def admit(step: Step) -> bool:
        if step.rel == g.FORKED.name and not forks:
            return False
        return step.label != g.PROCESS or step.key in members

    if deadline is not None and time.monotonic() > deadline:
        return RunGraph(processes=procs, outputs=outputs, walks={})  # the caller says partial
    found = walks(store, sorted(set(outputs.values())), direction="up", depth=depth,
                  max_nodes=max_nodes, deadline=deadline, admit=admit)
    return RunGraph(processes=procs, outputs=outputs,
                    walks={path: found[key] for path, key in sorted(outputs.items())})


def merged(walks: Iterable[Walk], root: str) -> LineageView:
    """One lineage of several walks (nodes and edges once each), truncated when any was
    cut short (with the first reason)."""
    nodes: dict[str, LineageNode] = {}
    edges: dict[tuple[str, str, str], LineageEdge] = {}
    reason: str | None = None
    truncated = False
    gaps: dict[str, GapInfo] = {}
    for w in walks:
        gaps.update((x.key, x) for x in w.lineage.gaps)
        nodes.update((n.id, n) for n in w.lineage.nodes)
        edges.update(((e.source, e.target, e.kind), e) for e in w.lineage.edges)
        if w.truncated:
            truncated = True
            reason = reason or w.reason
    return LineageView(root=root, direction="up",
                       nodes=sorted(nodes.values(), key=lambda n: (n.kind, n.id)),
                       edges=sorted(edges.values(), key=lambda e: (e.first, e.source)),
                       truncated=truncated, reason=reason, complete=not gaps,
                       gaps=sorted(gaps.values(), key=lambda x: (x.start, x.key)))


def run_lineage(store: GraphStore, run: RunSummary, *, classifier: Classifier | None = None,
                depth: int = DEFAULT_DEPTH, max_nodes: int | None = None,
                deadline: float | None = None) -> LineageView:
    """The run's lineage (its outputs' upstream through its processes, forks included),
    rooted at the run's key."""
    graph = run_graph(store, run, classifier=classifier, depth=depth, max_nodes=max_nodes,
                      deadline=deadline)
    view = merged(graph.walks.values(), run.key)
    if len(graph.walks) < len(graph.outputs) and not view.truncated:
        return msgspec.structs.replace(view, truncated=True, reason="time budget spent")
    return view
