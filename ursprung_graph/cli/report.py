"""`ursprung report`: the auditor reports of ``cypher/`` (list them, run one)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..query.reports import (
    REPORTS_DIR,
    ReportResult,
    bind,
    cell_text,
    get_report,
    load_reports,
    report_csv,
)
from ..query.reports import run_report as run_query
from .common import open_graph

_DIR = click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
                    default=REPORTS_DIR, envvar="URSPRUNG_REPORTS_DIR", show_default=True,
                    help="Folder of the .cypher reports.")


@click.group("report")
def report() -> None:
    """Auditor reports: parameterized Cypher in cypher/*.cypher."""


@report.command("list")
@_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
def list_cmd(directory: Path, as_json: bool) -> None:
    """The reports, their titles and their parameters."""
    reports = load_reports(directory)  # a ReportError is one line (cli/__init__.py)
    if as_json:
        click.echo(json.dumps([{
            "name": r.name, "title": r.title, "description": r.description,
            "columns": list(r.columns),
            "parameters": [{"name": p.name, "type": p.type, "required": p.required,
                            "default": p.default, "description": p.description}
                           for p in r.parameters]} for r in reports.values()], indent=2))
        return
    for r in reports.values():
        click.echo(f"{r.name}: {r.title}")
        for p in r.parameters:
            default = "required" if p.required else f"default {json.dumps(p.default)}"
            text = f" -- {p.description}" if p.description else ""
            click.echo(f"    {p.name} ({p.type}, {default}){text}")


@report.command("run")
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="K=V",
              help="A report parameter (repeatable); V is converted to the declared type.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]),
              default="table", show_default=True)
@_DIR
def run_cmd(name: str, params: tuple[str, ...], fmt: str, directory: Path) -> None:
    """Run report NAME on the graph."""
    given: dict[str, object] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not K=V", param_hint="--param")
        if key in given:
            raise click.BadParameter(f"{key} given twice", param_hint="--param")
        given[key] = value
    chosen = get_report(name, directory)
    bind(chosen, given)  # bad parameters are refused before the store is opened
    store = open_graph()
    try:
        result = run_query(store, chosen, given)
    finally:
        store.close()
    click.echo(render(result, fmt), nl=False)


def render(result: ReportResult, fmt: str) -> str:
    """The result as an aligned table, CSV (header row first) or JSON (one object a row)."""
    if fmt == "json":
        return json.dumps([dict(zip(result.columns, row, strict=True)) for row in result.rows],
                          indent=2) + "\n"
    if fmt == "csv":
        return report_csv(result)
    cells = [[cell_text(v) for v in row] for row in result.rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(result.columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(result.columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    lines.append(f"({len(cells)} row{'s' if len(cells) != 1 else ''})")
    return "\n".join(lines) + "\n"
