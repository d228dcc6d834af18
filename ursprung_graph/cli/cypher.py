"""`ursprung cypher`: read-only Cypher for auditors and the curious."""

from __future__ import annotations

import json
from typing import Any

import click

from ..store.falkordb import PARAM_NAME
from .common import open_graph, printable


def _param(value: str) -> Any:
    """k=v values: JSON when they parse as JSON (numbers, lists, quoted strings), else text."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _cell(value: Any) -> str:
    """One value as text: strings escaped (:func:`.common.printable`), others as JSON."""
    if isinstance(value, str):
        return printable(value)
    return printable(json.dumps(value, default=str, ensure_ascii=False))


@click.command("cypher")
@click.argument("query")
@click.option("--param", "params", multiple=True, metavar="K=V",
              help="A query parameter ($K); V is JSON if it parses, else a string.")
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON.")
def cypher_cmd(query: str, params: tuple[str, ...], as_json: bool) -> None:
    """Run a read-only Cypher QUERY (writes, LOAD CSV and procedures that reach outside
    the graph are refused)."""
    values: dict[str, Any] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{printable(item)!s} is not K=V", param_hint="--param")
        if not PARAM_NAME.fullmatch(key):
            raise click.BadParameter(f"{printable(key)} is not a parameter name (letters, "
                                     "digits and _, not starting with a digit)",
                                     param_hint="--param")
        values[key] = _param(value)
    rows = open_graph().read(query, values)  # a StoreError is one line and its status
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("(no rows)")
        return
    columns = list(rows[0])
    click.echo("\t".join(printable(c) for c in columns))
    for row in rows:
        click.echo("\t".join(_cell(row[c]) for c in columns))
