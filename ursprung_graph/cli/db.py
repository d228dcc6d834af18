"""`ursprung db`: the embedded graph store."""

from __future__ import annotations

import sys

import click

from ..config import load_settings
from ..query.gaps import gap_summary
from ..store import StoreError, embedded_server
from .common import open_graph
from .gaps_text import print_summary


@click.group()
def db() -> None:
    """Start, stop or inspect the embedded graph store."""


@db.command("start")
def db_start() -> None:
    """Start the embedded FalkorDB server (data under $URSPRUNG_HOME)."""
    server = embedded_server(load_settings())
    try:
        started = server.start()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{'started' if started else 'already running'}: pid {server.pid()}, "
               f"socket {server.socket}")


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded server (it flushes its append-only file first)."""
    server = embedded_server(load_settings())
    click.echo("stopped" if server.stop() else "not running")


@db.command("status")
def db_status() -> None:
    """Say whether the embedded server runs, and where; the capture gaps per host."""
    settings = load_settings()
    server = embedded_server(settings)
    if server.is_running():
        click.echo(f"running: pid {server.pid()}, socket {server.socket}, data {server.data_dir}")
        store = open_graph(settings)
        try:
            print_summary(gap_summary(store))
        finally:
            store.close()
    else:
        click.echo(f"not running (data {server.data_dir})")
        sys.exit(3)


@db.command("reset")
@click.confirmation_option(prompt="Delete the whole graph and all import checkpoints?")
def db_reset() -> None:
    """Delete the graph and the import checkpoints."""
    settings = load_settings()
    open_graph(settings).clear()
    for ckpt in settings.checkpoint_dir.glob("*.ckpt"):
        ckpt.unlink()
    click.echo("graph and checkpoints deleted")




@db.command("schema")
def db_schema() -> None:
    """Create the configured store's constraints and indexes if missing (idempotent)."""
    store = open_graph(load_settings())  # opening it applies the schema
    store.close()
    click.echo("schema in place")
