"""`ursprung import`: audit logs into the graph."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..config import CollectConfig
from ..pipeline.checkpoint import CheckpointStore
from ..pipeline.importer import (
    DEFAULT_CHUNK_EVENTS,
    ImportStats,
    NothingUnderstood,
    Observer,
    check_input,
    check_stream,
    default_host,
    import_file,
    import_scale_file,
    import_stream,
)
from ..store.base import GraphStore
from .common import config_or_fail, open_graph, printable, rule_engine, rules_option


@click.command("import")
@click.argument("paths", nargs=-1, required=True)
@click.option("--source", type=click.Choice(["auditd", "scale"]), default="auditd",
              show_default=True,
              help="auditd: raw audit records; scale: Spectrum Scale watch-folder or file "
                   "audit logging JSON lines.")
@click.option("--host", default=None,
              help="Host of records without a node= prefix [default: this machine's name].")
@click.option("--from-start", is_flag=True, help="Ignore checkpoints and read from the start.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar [default: when stderr is a terminal].")
@click.option("--chunk-events", type=click.IntRange(1), default=DEFAULT_CHUNK_EVENTS,
              show_default=True, help="Events per store write and checkpoint.")
@rules_option
def import_cmd(paths: tuple[str, ...], source: str, host: str | None, from_start: bool,
               progress: bool | None, chunk_events: int, rules: tuple[str, ...]) -> None:
    """Import audit logs (PATH... or - for stdin) into the graph.

    A file import resumes from its checkpoint: run it again after an interruption and it
    continues where the store's data ends. Gzip files (rotated logs) are read. Undecodable
    input becomes dead letters (DeadLetter nodes with the reason) and never stops the
    import; a file of which nothing was understood makes the command fail.
    """

    config = config_or_fail(None)
    settings = config.settings
    host = host or default_host()
    for name in paths:  # before the store is opened
        if name != "-":
            check_input(Path(name))
        else:
            check_stream(sys.stdin)
    store = open_graph(settings, writes=True)
    checkpoints = CheckpointStore(settings.checkpoint_dir)
    if source == "scale":
        _import_scale(store, paths, host, config.collect)
        return
    with rule_engine(rules, store, config) as engine:
        _import_audit(store, paths, host, checkpoints, from_start, progress, chunk_events,
                      None if engine is None else engine.observe)


def _import_audit(store: GraphStore, paths: tuple[str, ...], host: str,
                  checkpoints: CheckpointStore, from_start: bool, progress: bool | None,
                  chunk_events: int, observe: Observer | None) -> None:
    from tqdm import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    total = ImportStats()
    not_understood: list[str] = []
    for name in paths:
        if name == "-":
            stdin = None if sys.stdin is None else sys.stdin.buffer
            with tqdm(unit="B", unit_scale=True, disable=not show, desc="stdin") as bar:
                stats = import_stream(store, stdin, host=host, progress=bar.update,
                                      chunk_events=chunk_events, observe=observe)
        else:
            path = Path(name)
            with tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                      disable=not show, desc=path.name) as bar:
                stats = import_file(store, path, host=host, checkpoints=checkpoints,
                                    from_start=from_start, progress=bar.update,
                                    chunk_events=chunk_events, observe=observe)
            if stats.resumed_from:
                click.echo(f"{printable(name)}: resumed at byte {stats.resumed_from:,}",
                           err=True)
        if stats.records == 0 and (stats.dead_letters or stats.bytes):
            not_understood.append(name)
        total.add(stats)
    click.echo(
        f"imported {total.records:,} audit records -> {total.events:,} events, "
        f"{total.dead_letters:,} dead letters, in {total.seconds:.2f}s "
        f"({total.records_per_second:,.0f} records/s)"
    )
    if total.dead_letters:
        click.echo("dead letters: ursprung cypher 'MATCH (d:DeadLetter) "
                   "RETURN d.where, d.reason LIMIT 20'", err=True)
    if not_understood:
        raise NothingUnderstood(
            f"nothing in {', '.join(not_understood)} was an audit record: is it an audit log "
            "(/var/log/audit/audit.log*, gzip or not)? Spectrum Scale JSON needs "
            "--source scale")




def _import_scale(store: GraphStore, paths: tuple[str, ...], host: str,
                  collect: CollectConfig) -> None:
    """Scale events name processes by (node, pid) only: they are linked to the processes
    the graph holds now, so import the nodes' audit logs first."""
    events = dead = 0
    for name in paths:
        check_input(Path(name))
        n, d = import_scale_file(store, Path(name).resolve(), host=host, collect=collect)
        events, dead = events + n, dead + d
    click.echo(f"imported {events:,} Spectrum Scale events, {dead:,} dead letters")
