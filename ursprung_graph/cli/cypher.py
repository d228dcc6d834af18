"""`ursprung cypher`: read-only Cypher for auditors and the curious."""

from __future__ import annotations

import json
from typing import Any

import click

from ..store import StoreError
from .common import open_graph


def _param(value: str) -> Any:
    """k=v values: JSON when they parse as JSON (numbers, lists, quoted strings), else text."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


@click.command("cypher")
@click.argument("query")
@click.option("--param", "params", multiple=True, metavar="K=V",
              help="A query parameter ($K); V is JSON if it parses, else a string.")
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON.")
def cypher_cmd(query: str, params: tuple[str, ...], as_json: bool) -> None:
    """Run a read-only Cypher QUERY (writes are refused by the store)."""
    values: dict[str, Any] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not K=V", param_hint="--param")
        values[key] = _param(value)
    store = open_graph()
    try:
        rows = store.read(query, values)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("(no rows)")
        return
    columns = list(rows[0])
    click.echo("\t".join(columns))
    for row in rows:
        click.echo("\t".join(json.dumps(row[c], default=str) if not isinstance(row[c], str)
                             else row[c] for c in columns))


