"""`ursprung runs`: define runs on audit data, list, show and compare runs."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import click
import msgspec

from ..pipeline.define import define_runs
from ..query.compare import compare
from ..query.explain import explain as explain_changes
from ..query.runs import find_run, list_runs, run_facts
from ..query.types import RunSummary
from ..store.base import GraphStore
from .common import classifier, open_graph, printable, to_json
from .compare_text import render, render_explanations
from .gaps_text import print_gaps


@click.group("runs")
def runs() -> None:
    """Pipeline runs: define (on audit data), list, show, compare."""


def _when(ns: int | None) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _text(value: object) -> str:
    """A value from the graph as one line of text (see :func:`.common.printable`)."""
    return printable("None" if value is None else str(value))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


@runs.command("define")
@click.argument("name")
@click.option("--match", "pattern", required=True, metavar="REGEX",
              help="Command lines of the runs' root processes (Python regex, searched).")
@click.option("--host", default=None, help="Only processes of this host.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def define_cmd(name: str, pattern: str, host: str | None, as_json: bool) -> None:
    """Mark every process whose command line matches REGEX as the root of a run of
    pipeline NAME (its process subtree is the run). For audit or Spectrum Scale data."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise click.BadParameter(f"not a regular expression: {exc}",
                                 param_hint="--match") from exc
    store = open_graph(writes=True)
    ids = define_runs(store, name, pattern, host=host)
    found = [find_run(store, i) for i in ids]
    if as_json:
        click.echo(to_json(found))
        return
    click.echo(f"defined {len(found)} runs of {name}")
    for run in found:
        click.echo(f"  {run.id[:12]}  {_when(run.start)}  {printable(run.command or '')}")


@runs.command("list")
@click.option("--pipeline", default=None, help="Only runs of this pipeline.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def list_cmd(pipeline: str | None, as_json: bool) -> None:
    """Runs, oldest first."""
    found = list_runs(open_graph(), pipeline)
    if as_json:
        click.echo(to_json(found))
        return
    if not found:
        click.echo("no runs")
        return
    click.echo(f"{'id':12}  {'pipeline':16}  {'start (UTC)':19}  {'time':>8}  exit  command")
    for r in found:
        cmd = printable(r.command or "")
        cmd = cmd if len(cmd) <= 70 else cmd[:67] + "..."
        click.echo(f"{printable(r.id[:12]):12}  {printable(r.pipeline or '')[:16]:16}  "
                   f"{_when(r.start):19}  {_seconds(r.duration):>8}  "
                   f"{'-' if r.exit_code is None else r.exit_code:>4}  {cmd}")


def _lookup(store: GraphStore, ref: str) -> RunSummary:
    try:
        return find_run(store, ref)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from exc


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run's facts as JSON.")
def show_cmd(run_id: str, as_json: bool) -> None:
    """The facts of one run (an id or a unique prefix of one)."""
    store = open_graph()
    facts = run_facts(store, _lookup(store, run_id), classifier())
    if as_json:
        click.echo(to_json(facts))
        return
    click.echo(f"run {_text(facts.id)}  ({_text(facts.origin)})")
    for label, value in (("pipeline", facts.pipeline), ("command", facts.command),
                         ("cwd", facts.cwd), ("host", facts.host),
                         ("user", facts.user), ("start", _when(facts.start)),
                         ("end", _when(facts.end)),
                         ("duration", _seconds(facts.duration)),
                         ("exit code", "-" if facts.exit_code is None else facts.exit_code)):
        click.echo(f"  {label:10} {_text(value)}")
    if facts.end is None and facts.origin == "trace":
        click.echo("  (no end yet: still running, or its recorder was stopped before the end; "
                   "its processes and files are attributed when it ends)")
    for section, values in (("params", facts.params), ("environment", facts.environment),
                            ("metrics", facts.metrics)):
        if values:
            click.echo(f"\n{section}:")
            for k, v in sorted(values.items()):
                click.echo(f"  {_text(k)} = {_text(v)}")
    for section, files in (("inputs", facts.inputs), ("outputs", facts.outputs),
                           ("intermediates", facts.intermediates),
                           ("programs", facts.programs)):
        click.echo(f"\n{section} ({len(files)}):")
        for f in files:
            digest = (f.sha256 or "")[:12] or "-"
            click.echo(f"  {_text(digest):12}  {_text(f.rel or f.path)}")
    click.echo(f"\nprocesses ({len(facts.processes)}); "
               f"{facts.environment_files} files of the software environment read")
    print_gaps("this run", facts.complete, facts.gaps)


@runs.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("--explain", is_flag=True,
              help="Also say, for each changed output, which changed inputs, parameters, "
                   "programs and environment lie upstream of it (nearest first).")
def compare_cmd(run_a: str, run_b: str, as_json: bool, explain: bool) -> None:
    """What differs between two runs: parameters, inputs, outputs, programs, environment,
    metrics, exit status and duration."""
    store = open_graph()
    rule = classifier()
    head_a, head_b = _lookup(store, run_a), _lookup(store, run_b)
    a = run_facts(store, head_a, rule)
    b = run_facts(store, head_b, rule)
    result = compare(a, b)
    why = explain_changes(store, head_a, head_b, result, classifier=rule) if explain else None
    if as_json:
        click.echo(to_json(result) if why is None else to_json(
            {**msgspec.to_builtins(result), "explanations": why}))
        return
    click.echo(render(result, printable))
    if why is not None:
        click.echo("\n" + render_explanations(why, printable))
