"""`ursprung lineage`: where a file came from, what it went into."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Literal

import click

from ..query.classify import Classifier
from ..query.lineage import DEFAULT_DEPTH, AmbiguousPath, find_file, lineage
from ..query.types import EndpointNode, FileNode, Lineage, ProcessNode
from ..schema.names import name_from_os
from ..schema.times import TimeError, parse_time
from .common import classifier, open_graph, printable, to_json
from .gaps_text import print_gaps


@click.command("lineage")
@click.argument("path")
@click.option("--host", default=None, help="Host of PATH, when several hosts have it.")
@click.option("--direction", type=click.Choice(["up", "down"]), default="up",
              show_default=True, help="up: where it came from; down: what it went into.")
@click.option("--depth", type=click.IntRange(1, 1000), default=DEFAULT_DEPTH,
              show_default=True, help="Maximum number of hops.")
@click.option("--json", "as_json", is_flag=True,
              help="Print {root, nodes, edges, complete, gaps} as JSON.")
@click.option("--all", "show_all", is_flag=True,
              help="Also list system files (libraries, interpreters, caches).")
@click.option("--as-of", "as_of", default=None, metavar="TIME",
              help="Upstream: only what happened at or before TIME; downstream: at or after. "
                   "ISO 8601 (UTC unless it has an offset) or epoch nanoseconds.")
def lineage_cmd(path: str, host: str | None, direction: Literal["up", "down"], depth: int,
                as_json: bool, show_all: bool, as_of: str | None) -> None:
    """Upstream or downstream lineage of a file, respecting time. A relative PATH is taken
    from the working directory, as every Unix tool does."""
    path = os.path.normpath(os.path.join(os.getcwd(), path))
    store = open_graph()
    try:
        root = find_file(store, name_from_os(path), host)
    except AmbiguousPath as exc:
        raise click.UsageError(str(exc)) from exc
    result = lineage(store, root, direction=direction, depth=depth,
                     as_of=None if as_of is None else as_of_time(as_of))
    if as_json:
        click.echo(to_json(result))
        return
    _print_lineage(name_from_os(path), result, None if show_all else classifier())


def as_of_time(text: str) -> int:
    """``--as-of`` as epoch nanoseconds (:func:`ursprung_graph.schema.times.parse_time`)."""
    try:
        return parse_time(text)
    except TimeError as exc:
        raise click.BadParameter(f"{text!r} is neither ISO 8601 nor epoch nanoseconds",
                                 param_hint="--as-of") from exc


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    if ns == 0:
        return "(before capture)"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _print_lineage(path: str, result: Lineage, hide: Classifier | None) -> None:
    """The lineage as text; the files of the software environment (``hide``'s system
    files) are only counted unless ``hide`` is None."""
    word = "upstream" if result.direction == "up" else "downstream"
    nodes = [n for n in result.nodes if n.id != result.root]
    first_seen: dict[str, int] = {}
    for edge in result.edges:
        for end in (edge.source, edge.target):
            first_seen[end] = min(first_seen.get(end, edge.first), edge.first)
    files = [n for n in nodes if isinstance(n, FileNode)]
    procs = [n for n in nodes if isinstance(n, ProcessNode)]
    other = [n for n in nodes if not isinstance(n, FileNode | ProcessNode)]
    click.echo(f"{word} of {printable(path)}: {len(files)} files, {len(procs)} processes, "
               f"{len(other)} pipes and sockets")
    hidden = [] if hide is None else [n for n in files if hide.environment(n.path or "")]
    click.echo("\nfiles:")
    for n in sorted(files, key=lambda n: n.path or ""):
        if n not in hidden:
            click.echo(f"  {printable(n.path or '')}  [{printable(n.host or n.fs or '')}]")
    if hidden:
        click.echo(f"  ... and {len(hidden)} system files (libraries, interpreters, caches; "
                   "--all lists them)")
    click.echo("\nprocesses (by first activity):")
    for p in sorted(procs, key=lambda n: first_seen.get(n.id, 0)):
        cmd = printable(p.cmdline or p.exe or "?")
        cmd = cmd if len(cmd) <= 100 else cmd[:97] + "..."
        click.echo(f"  {_when(first_seen.get(p.id))}  {printable(p.host or '')} pid {p.pid}: "
                   f"{cmd}")
    if other:
        click.echo("\npipes and sockets:")
        for o in other:
            label = f"{o.address}:{o.port}" if isinstance(o, EndpointNode) else o.id
            click.echo(f"  {o.kind} {printable(label)}")
    print_gaps("this lineage", result.complete, result.gaps)
