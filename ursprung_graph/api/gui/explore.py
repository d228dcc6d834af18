"""The explorer's question, read from the URL, and the graph that answers it.

Every part of the question is a query parameter, so the page's URL is the shareable link:
``node`` (the key of the start node), ``direction`` (up, down, both), ``depth``, ``as_of``
(a time: the lineage as it was then), ``system`` (hide or show system files), ``noise``
(comma-separated fnmatch patterns to leave out), ``cap`` (the node count past which the graph
is clustered), and ``q`` (a search). ``t`` (the time slider) is read by the browser only.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from ...query.explore import LatestVersion, file_versions
from ...query.lineage import lineage
from ...query.types import LineageEdge, LineageNode, ProcessNode
from ...schema.times import TimeError, parse_time
from ...store.base import GraphStore
from .graphview import DEFAULT_CAP, Filters, Prepared, prepare

DEFAULT_DEPTH = 3
MAX_DEPTH = 30
#: A graph this big is never fetched at once; past it the walk stops.
MAX_CAP = 20000


class BadQuery(ValueError):
    """A query parameter the explorer cannot read (shown on the page)."""


@dataclass(frozen=True, slots=True)
class ExploreQuery:
    node: str | None
    direction: Literal["up", "down", "both"]
    depth: int
    as_of: int | None
    as_of_text: str
    hide_system: bool
    noise: str
    cap: int
    q: str

    @property
    def filters(self) -> Filters:
        return Filters.parse(self.hide_system, self.noise)

    def params(self) -> dict[str, str]:
        """The query as URL parameters (the defaults left out)."""
        out = {"node": self.node or "", "direction": self.direction,
               "depth": str(self.depth), "as_of": self.as_of_text,
               "system": "hide" if self.hide_system else "show", "noise": self.noise,
               "cap": str(self.cap), "q": self.q}
        return {k: v for k, v in out.items() if v}


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadQuery(f"{name} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise BadQuery(f"{name} must lie between {low} and {high}")
    return value


def parse_query(params: Mapping[str, str], cap: int = DEFAULT_CAP) -> ExploreQuery:
    direction = params.get("direction", "up") or "up"
    if direction not in ("up", "down", "both"):
        raise BadQuery("direction must be up, down or both")
    as_of_text = params.get("as_of", "").strip()
    try:
        as_of = parse_time(as_of_text) if as_of_text else None
    except TimeError as exc:
        raise BadQuery(str(exc)) from None
    return ExploreQuery(
        node=params.get("node") or None, direction=direction,  # type: ignore[arg-type]
        depth=_int(params, "depth", DEFAULT_DEPTH, 1, MAX_DEPTH), as_of=as_of,
        as_of_text=as_of_text, hide_system=params.get("system", "hide") != "show",
        noise=params.get("noise", ""), cap=_int(params, "cap", cap, 10, MAX_CAP),
        q=params.get("q", ""))


def walk(store: GraphStore, root: str, direction: str, depth: int,
         as_of: int | None) -> tuple[list[LineageNode], list[LineageEdge]]:
    """The lineage of ``root`` in one direction or both, merged."""
    nodes: dict[str, LineageNode] = {}
    edges: dict[tuple[str, str, str], LineageEdge] = {}
    directions: tuple[Literal["up", "down"], ...] = (
        ("up", "down") if direction == "both" else (direction,))  # type: ignore[assignment]
    for d in directions:
        result = lineage(store, root, direction=d, depth=depth, as_of=as_of)
        for n in result.nodes:
            nodes.setdefault(n.id, n)
        for e in result.edges:
            edges.setdefault((e.source, e.target, e.kind), e)
    return list(nodes.values()), list(edges.values())


def explore(store: GraphStore, q: ExploreQuery) -> Prepared:
    """The filtered, laid-out lineage the query asks for."""
    assert q.node is not None
    nodes, edges = walk(store, q.node, q.direction, q.depth, q.as_of)
    return prepare(nodes, edges, q.filters, root=q.node)


def versions_of(store: GraphStore, p: Prepared, keys: Iterable[str] | None = None,
                as_of: int | None = None) -> dict[str, LatestVersion]:
    """The newest versions of the files of ``p`` (of those among ``keys``, if given)."""
    wanted = p.nodes if keys is None else [k for k in keys if k in p.nodes]
    files = [k for k in wanted if p.nodes[k].kind == "file"]
    return file_versions(store, files, as_of)


def producers(p: Prepared) -> list[ProcessNode]:
    """The processes of the graph, in start order: how its root was made."""
    procs = [n for n in p.nodes.values() if isinstance(n, ProcessNode)]
    return sorted(procs, key=lambda n: (n.start or 0, n.pid or 0, n.id))


def shell_script(root: str, procs: list[ProcessNode]) -> str:
    """The producing processes as a shell script: one ``cd`` and command per process.
    Command lines are the recorded ones (argument boundaries are not kept); comments and
    directories are quoted or stripped of line breaks."""

    def one_line(text: str) -> str:
        return " ".join(text.splitlines())

    lines = ["#!/bin/sh", f"# how {one_line(root)} was made, as recorded by ursprung",
             "# the processes in start order; review before running", "set -e", ""]
    for p in procs:
        lines.append(f"# host {one_line(p.host or '?')}, pid {p.pid}")
        if p.cwd:
            lines.append(f"cd {shlex.quote(p.cwd)}")
        lines.append(one_line(p.cmdline or p.exe or "true"))
        lines.append("")
    return "\n".join(lines)
