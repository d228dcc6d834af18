"""Two runs in one graph: nodes matched across the runs and marked same, changed, only A or
only B.

A file is matched by its path relative to its run's working directory (else its path), a
process by its command line with the working directory written as ``.`` and its rank among
equal command lines, a pipe by its rank in time, a socket by its address. A file both runs
have is *changed* when the comparison says its content differs.
"""

from __future__ import annotations

from collections import Counter

import msgspec

from ...query.explore import RunGraph
from ...query.runs import relative
from ...query.types import (
    Comparison,
    EndpointNode,
    FileNode,
    LineageEdge,
    LineageNode,
    PipeNode,
    ProcessNode,
)

SAME, CHANGED, ONLY_A, ONLY_B = "same", "changed", "only_a", "only_b"


def _identities(graph: RunGraph, cwd: str | None) -> dict[str, str]:
    first: dict[str, int] = {}
    for e in graph.edges:
        for key in (e.source, e.target):
            first[key] = min(first.get(key, e.first), e.first)
    seen: Counter[str] = Counter()
    out: dict[str, str] = {}
    ordered = sorted(graph.nodes, key=lambda n: (first.get(n.id, 0), n.id))
    for n in ordered:
        if isinstance(n, FileNode):
            path = n.path or n.id
            ident = "f:" + (relative(path, cwd) or path)
        elif isinstance(n, ProcessNode):
            command = n.cmdline or n.exe or ""
            if cwd:
                command = command.replace(cwd.rstrip("/"), ".")
            ident = "p:" + command
        elif isinstance(n, EndpointNode):
            ident = f"e:{n.family}:{n.address}:{n.port}"
        elif isinstance(n, PipeNode):
            ident = "pipe"
        else:  # pragma: no cover - the node union is closed
            ident = n.id
        seen[ident] += 1
        out[n.id] = ident if seen[ident] == 1 else f"{ident}#{seen[ident]}"
    return out


def _changed_paths(cmp: Comparison) -> tuple[set[str], set[str]]:
    a: set[str] = set()
    b: set[str] = set()
    for section in (cmp.inputs, cmp.outputs, cmp.programs):
        for entry in section.changed:
            if entry.a.path:
                a.add(entry.a.path)
            if entry.b.path:
                b.add(entry.b.path)
    return a, b


def overlay(ga: RunGraph, gb: RunGraph, cmp: Comparison
            ) -> tuple[list[LineageNode], list[LineageEdge], dict[str, str]]:
    """The union of both runs' graphs (node ids: the matched identities) and each node's
    mark."""
    ida, idb = _identities(ga, cmp.a.cwd), _identities(gb, cmp.b.cwd)
    changed_a, changed_b = _changed_paths(cmp)
    nodes: dict[str, LineageNode] = {}
    marks: dict[str, str] = {}
    for n in ga.nodes:
        nodes[ida[n.id]] = msgspec.structs.replace(n, id=ida[n.id])
        marks[ida[n.id]] = ONLY_A
    in_b = set()
    for n in gb.nodes:
        ident = idb[n.id]
        in_b.add(ident)
        if ident in nodes:
            path_a = getattr(nodes[ident], "path", None)
            path_b = getattr(n, "path", None)
            marks[ident] = CHANGED if (path_a in changed_a or path_b in changed_b) else SAME
        else:
            nodes[ident] = msgspec.structs.replace(n, id=ident)
            marks[ident] = ONLY_B
    edges: dict[tuple[str, str, str], LineageEdge] = {}
    for graph, ids in ((ga, ida), (gb, idb)):
        for e in graph.edges:
            key = (ids[e.source], ids[e.target], e.kind)
            if key not in edges:
                edges[key] = msgspec.structs.replace(e, source=key[0], target=key[1])
    return list(nodes.values()), list(edges.values()), marks
