"""Lineage as an analyst asks for it: which kinds of nodes to list, whether to include the
software environment, how many nodes at most, how much time at most.

``lineage_view`` walks like :func:`.lineage.lineage` (the same statements, the same time
rule) and returns a :class:`LineageView`: the nodes and edges, and ``truncated`` with the
``reason`` when the walk stopped early (depth, node cap, time budget) instead of failing.

* ``include_system=False`` (the default of the API): files the :class:`~.classify.Classifier`
  calls environment (libraries, interpreters' trees, caches) are neither listed nor walked
  through, so a process connected only through a library or a byte-code cache is not
  reached either. With ``True`` the answer is exactly ``ursprung lineage --json``.
* ``kinds`` lists only nodes of those kinds (``file``, ``process``, ``pipe``,
  ``endpoint``); the walk still goes through the others, and edges are kept when both ends
  are listed.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

import msgspec

from ..schema import graph as g
from ..store.base import GraphStore
from .classify import Classifier
from .lineage import DEFAULT_DEPTH, Step, walk
from .types import GapInfo, LineageEdge, LineageNode

#: Node kinds a lineage can list.
KINDS = ("file", "process", "pipe", "endpoint")


class LineageView(msgspec.Struct, frozen=True):
    """A lineage with its limits: ``truncated`` and ``reason`` when it is partial."""

    root: str
    direction: Literal["up", "down"]
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    truncated: bool = False
    reason: str | None = None
    complete: bool = True  # False: the walk crosses capture ``gaps`` (query/gaps.py)
    gaps: list[GapInfo] = msgspec.field(default_factory=list)


def lineage_view(store: GraphStore, root: str, *, direction: Literal["up", "down"] = "up",
                 depth: int = DEFAULT_DEPTH, as_of: int | None = None,
                 kinds: Collection[str] | None = None, include_system: bool = False,
                 max_nodes: int | None = None, deadline: float | None = None,
                 classifier: Classifier | None = None) -> LineageView:
    """The lineage of the node with key ``root`` (see the module docstring)."""
    rule = classifier or Classifier()

    def admit(step: Step) -> bool:
        return not (step.label == g.FILE and rule.environment(step.path or ""))

    found = walk(store, root, direction=direction, depth=depth, as_of=as_of,
                 max_nodes=max_nodes, deadline=deadline,
                 admit=None if include_system else admit)
    nodes = found.lineage.nodes
    edges = found.lineage.edges
    if kinds is not None:
        wanted = set(kinds)
        nodes = [n for n in nodes if n.kind in wanted or n.id == root]
        listed = {n.id for n in nodes}
        edges = [e for e in edges if e.source in listed and e.target in listed]
    return LineageView(root=root, direction=direction, nodes=nodes, edges=edges,
                       truncated=found.truncated, reason=found.reason,
                       complete=found.lineage.complete, gaps=found.lineage.gaps)
