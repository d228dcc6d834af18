"""Capture gaps as text: what ``lineage``, ``runs show`` and ``db status`` print."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ..query.gaps import GapSummary
from ..query.types import GapInfo
from .common import printable

#: Gaps listed one by one; the rest are counted per source.
SHOWN = 10


def _when(ns: int | None) -> str:
    if ns is None:
        return "open"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def gap_line(gap: GapInfo) -> str:
    """One gap: host, source, window, count and reason."""
    lost = f", {gap.count:,} lost" if gap.count is not None else ""
    window = _when(gap.start) if gap.end == gap.start else \
        f"{_when(gap.start)} .. {_when(gap.end)}"
    return (f"  {printable(gap.host)} {gap.source}: {window}{lost}: "
            f"{printable(gap.reason or '')}")


def print_gaps(what: str, complete: bool, gaps: list[GapInfo]) -> None:
    """Nothing when ``complete``; else that ``what`` may be incomplete, and why."""
    if complete:
        return
    click.echo(f"\nINCOMPLETE: {what} crosses {len(gaps)} capture gaps (events may be missing):")
    for gap in gaps[:SHOWN]:
        click.echo(gap_line(gap))
    rest = gaps[SHOWN:]
    if rest:
        by_source: dict[str, int] = {}
        for gap in rest:
            by_source[gap.source] = by_source.get(gap.source, 0) + 1
        more = ", ".join(f"{n} {s}" for s, n in sorted(by_source.items()))
        click.echo(f"  ... and {len(rest)} more ({more}; --json lists them)")


def print_summary(rows: list[GapSummary]) -> None:
    """Gaps per host and source, as ``db status`` shows them."""
    gaps = [r for r in rows if not r.note]
    notes = [r for r in rows if r.note]
    if not gaps:
        click.echo("capture gaps: none recorded")
    else:
        click.echo("capture gaps (host, source: gaps, events lost where counted, first .. last "
                   "start):")
        for r in gaps:
            lost = f", {r.lost:,} events lost" if r.lost else ""
            still = f", {r.open} still open" if r.open else ""
            click.echo(f"  {printable(r.host)} {r.source}: {r.gaps:,} gaps{lost}, "
                       f"{_when(r.first)} .. {_when(r.last)}{still}")
    for r in notes:
        click.echo(f"  note: {printable(r.host)} {r.source}: {r.gaps:,} log rotations "
                   "(nothing lost)")
