"""`ursprung db`: the embedded graph store."""

from __future__ import annotations

import sys

import click

from ..config import load_settings
from ..query.gaps import gap_summary
from ..store import StoreError, embedded_server
from .common import config_or_fail, open_graph
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
@click.option("--kafka", "kafka_url", default=None, metavar="kafka://HOST:PORT",
              help="Also say how far ingest is behind this broker (the ingest group's "
                   "committed offsets on the events topic against its end).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="ursprung.toml [default: $URSPRUNG_CONFIG or ./ursprung.toml].")
def db_status(kafka_url: str | None, config_path: str | None) -> None:
    """Say whether the embedded server runs, and where; the capture gaps per host."""
    settings = load_settings()
    server = embedded_server(settings)
    if kafka_url is not None:
        _print_lag(kafka_url, config_path)
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


def _print_lag(url: str, config_path: str | None) -> None:
    from ..ingest.bus import BusError, open_bus
    from ..ingest.lag import ingest_lag

    config = config_or_fail(config_path)
    try:
        lag = ingest_lag(open_bus(url, config), config.ingest.group, config.kafka.events_topic)
    except BusError as exc:
        raise click.ClickException(f"cannot read the ingest lag from {url}: {exc}") from exc
    state = "up to date" if lag.messages == 0 else \
        f"{lag.messages:,} messages not yet in the store (answers may miss their events)"
    click.echo(f"ingest lag ({lag.group} on {lag.topic}, {lag.partitions} partitions): {state}")


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
