"""`ursprung rules`: check a rules file, or see which events of an audit log its rules match."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import printable

if TYPE_CHECKING:
    from ..rules import Rule
    from ..rules.engine import Matcher
    from ..schema.event import DeadLetter, Event


def _load(files: tuple[str, ...]) -> list[Rule]:
    """The rules; a RuleError (every problem, with positions) becomes the CLI's error."""
    from ..rules import load_rules

    return load_rules(list(files))


@click.group("rules")
def rules() -> None:
    """Rules for application-specific provenance (docs/rules.md)."""


@rules.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def check_cmd(files: tuple[str, ...]) -> None:
    """Validate rules FILES without running them: syntax, fields, regexes, URLs."""
    loaded = _load(files)
    for rule in loaded:
        for warning in rule.warnings:
            click.echo(f"warning: {warning}", err=True)
    click.echo(f"{len(loaded)} rule(s) OK in {', '.join(files)}")


@rules.command("test")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--on", "log", required=True, type=click.Path(dir_okay=False, exists=True),
              help="An audit log (raw auditd records) to evaluate the rules on.")
@click.option("--host", default=None, help="Host of records without node= [default: this "
              "machine's name].")
@click.option("--limit", type=click.IntRange(0), default=20, show_default=True,
              help="Events shown per rule (0: counts only).")
def test_cmd(files: tuple[str, ...], log: str, host: str | None, limit: int) -> None:
    """Show which events of the audit log LOG each rule matches (no action is run)."""
    from ..collectors.auditd import AuditdSource
    from ..pipeline.follow import read_stream
    from ..pipeline.importer import default_host
    from ..rules.engine import Matcher

    loaded = _load(files)
    tally = _Tally(Matcher(loaded), limit)
    host = host or default_host()
    with Path(log).open("rb") as fh:
        read_stream(fh, AuditdSource(host), tally, host, where=log)
    matched, counts, events = tally.shown, tally.counts, tally.events
    for index, rule in enumerate(loaded):
        click.echo(f"{rule.at}: {counts[index]:,} of {events:,} events: {printable(rule.text)}")
        for line in matched[index]:
            click.echo(f"    {line}")
        if counts[index] > len(matched[index]) and limit:
            click.echo(f"    ... {counts[index] - len(matched[index]):,} more")


class _Tally:
    """A sink (as pipeline.sinks.Sink) that tests the rules on events instead of storing."""

    def __init__(self, matcher: Matcher, limit: int) -> None:
        self.matcher, self.limit = matcher, limit
        self.shown: list[list[str]] = [[] for _ in matcher.rules]
        self.counts = [0] * len(matcher.rules)
        self.events = 0

    def emit(self, events: Sequence[Event], dead: Sequence[DeadLetter], host: str) -> None:
        self.events += len(events)
        for index, event in self.matcher.matches(events):
            self.counts[index] += 1
            if len(self.shown[index]) < self.limit:
                self.shown[index].append(_describe(event))


def _describe(event) -> str:
    from ..schema.event import Kind

    if event.kind is Kind.EXEC or event.file is None:
        what = " ".join(event.proc.argv) if event.proc.argv else event.proc.exe or ""
    else:
        what = event.file.path
    return printable(f"{event.seq} {event.kind.value} pid={event.proc.pid} {what}")
