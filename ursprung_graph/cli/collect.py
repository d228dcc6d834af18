"""`ursprung collect`: collectors that publish normalized events to the bus.

    ursprung collect auditd /var/log/audit/audit.log --follow --to kafka://central:9092
    ursprung collect auditd - --to kafka://central:9092      # audisp plugin (stdin)
    ursprung collect scale events.jsonl --to kafka://central:9092
    ursprung collect scale --from kafka://scale-kafka:9092/gpfs --to kafka://central:9092

``--to local`` runs the single-machine path instead: an in-process bus and an ingest worker
writing to the configured store. There the publisher's ``flush`` (after which a collector
moves its checkpoint or commits its source offsets) returns only once the worker has
committed the events, i.e. once the store has them: the in-process bus is memory, and a
kill must not lose what a checkpoint already counts as delivered.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ..config import Config
from ..ingest.bus import BusError, InProcessBus, open_bus
from ..ingest.checkpoint import CheckpointStore
from ..ingest.importer import default_host
from .common import config_or_fail, setup_logging, stop_on_signals

log = logging.getLogger("ursprung.collect")


@contextmanager
def _target(to: str, config: Config, stop: threading.Event) -> Iterator[Any]:
    """The publisher for ``--to``; for ``local`` also the worker that drains it."""
    if to == "local":
        from ..ingest.worker import IngestWorker, StoreDeadLetters, WorkerOptions
        from ..store import StoreError, open_store

        try:
            store = open_store(config.settings)
            store.ensure_schema()
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
        bus = InProcessBus(partitions=1)
        opt = WorkerOptions.from_config(config)
        bus.ensure_topics([opt.events_topic, opt.deadletter_topic], 1)
        worker_stop = threading.Event()
        # The in-process bus is memory: the worker's dead letters go to the store instead.
        worker = IngestWorker(bus, store, opt, dead_letters=StoreDeadLetters(store))
        thread = threading.Thread(target=worker.run, args=(worker_stop,), daemon=True)
        thread.start()
        # flush = the worker committed = the store has it (or BusError: checkpoint kept).
        # Scale events may wait up to resolve_wait for their host's audit stream.
        publisher = bus.publisher(
            ack_group=opt.group, ack_topics=[opt.events_topic], alive=thread.is_alive,
            cancelled=lambda: getattr(stop, "hard", False),
            min_wait=opt.resolve_wait + opt.batch_seconds + 30.0)
        try:
            yield publisher
        finally:
            # Let the worker take everything, then stop it.
            while bus.committed(opt.group, opt.events_topic) != {
                    p: o for p, o in bus.end_offsets(opt.events_topic).items() if o}:
                if not thread.is_alive() or getattr(stop, "hard", False):
                    break
                thread.join(0.05)
            if getattr(stop, "hard", False):
                worker_stop.hard = True  # type: ignore[attr-defined]
            worker_stop.set()
            thread.join()
            store.close()
        return
    try:
        bus = open_bus(to, config)
        bus.ensure_topics([config.kafka.events_topic, config.kafka.deadletter_topic],
                          config.kafka.partitions)
        publisher = bus.publisher()
    except BusError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        yield publisher
    finally:
        publisher.close()


def _common(f: Callable) -> Callable:
    f = click.option("--to", "to", required=True, metavar="kafka://HOST:PORT|local",
                     help="Where to publish: a Kafka bootstrap server, or local (this "
                          "machine's store through an in-process bus).")(f)
    f = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                     help="ursprung.toml [default: $URSPRUNG_CONFIG or ./ursprung.toml].")(f)
    f = click.option("--follow/--once", default=False,
                     help="Keep following the file as it grows (and rotates), or read it "
                          "to its end once. Either way it resumes from its checkpoint.")(f)
    f = click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")(f)
    return f


@click.group()
def collect() -> None:
    """Collect provenance events on this node and publish them to the bus."""


@collect.command("auditd")
@click.argument("log_path", metavar="[LOG|-]", default="-")
@click.option("--host", default=None,
              help="Host of records without node= [default: collect.host or this machine].")
@_common
def collect_auditd(log_path: str, host: str | None, to: str, config_path: str | None,
                   follow: bool, verbose: bool) -> None:
    """Publish an audit log (or auditd's stream on stdin, as an audisp plugin)."""
    from ..collectors.follow import AuditLines, audit_factory

    setup_logging(verbose)
    config = config_or_fail(config_path)
    host = host or config.collect.host or default_host()
    stop = stop_on_signals()
    factory = audit_factory(host)
    _run(log_path, factory, lambda: AuditLines(host, None), "auditd", host, to, config,
         follow, stop)


@collect.command("scale")
@click.argument("path", metavar="[FILE|-]", required=False)
@click.option("--from", "source_url", metavar="kafka://HOST:PORT/TOPIC",
              help="Read Scale's own Kafka sink topic instead of a file.")
@click.option("--group", default="ursprung-scale-collector", show_default=True,
              help="Consumer group on the Scale topic (--from).")
@_common
def collect_scale(path: str | None, source_url: str | None, group: str, to: str,
                  config_path: str | None, follow: bool, verbose: bool) -> None:
    """Publish Spectrum Scale watch-folder (WF_JSON) or file audit (LWE_JSON) events."""
    from ..collectors.follow import ScaleLines, scale_factory

    setup_logging(verbose)
    config = config_or_fail(config_path)
    c = config.collect
    stop = stop_on_signals()
    if source_url:
        if path:
            raise click.UsageError("give a FILE or --from, not both")
        from ..collectors.scale import consume_scale_topic

        with _target(to, config, stop) as publisher:
            stats = consume_scale_topic(source_url, group, publisher, config, stop)
        click.echo(f"scale: {stats['records']:,} records -> {stats['events']:,} events, "
                   f"{stats['dead_letters']:,} dead letters", err=True)
        return
    factory = scale_factory(c.pair_seconds, c.pair_events)
    _run(path or "-", factory, lambda: ScaleLines(None, c.pair_seconds, c.pair_events),
         "scale", config.collect.host or default_host(), to, config, follow, stop)


def _run(name: str, factory: Callable, fresh: Callable, source: str, host: str, to: str,
         config: Config, follow: bool, stop: threading.Event) -> None:
    from ..collectors.follow import BusSink, Follower, FollowOptions, read_stream

    c = config.collect
    with _target(to, config, stop) as publisher:
        sink = BusSink(publisher, config.kafka.events_topic, source,
                       per_message=c.message_events)
        try:
            if name == "-":
                stats = read_stream(sys.stdin.buffer, fresh(), sink, host,
                                    chunk_events=c.chunk_events, stop=stop)
            else:
                path = Path(name)
                if not follow and not path.is_file():
                    raise click.ClickException(f"{name}: no such file")
                opts = FollowOptions(chunk_events=c.chunk_events, flush_seconds=c.flush_seconds,
                                     poll_seconds=c.poll_seconds, pair_seconds=c.pair_seconds,
                                     pair_events=c.pair_events, follow=follow)
                follower = Follower(path, factory, sink, host=host,
                                    checkpoints=CheckpointStore(config.checkpoint_dir),
                                    options=opts, stop=stop)
                stats = follower.run()
        except BusError as exc:
            raise click.ClickException(f"the bus did not take the events: {exc} (the "
                                       "checkpoint was not moved; run again to resume)") from exc
    resumed = f", resumed at byte {stats.resumed_from:,}" if stats.resumed_from else ""
    click.echo(f"{source}: {stats.lines:,} lines -> {stats.events:,} events, "
               f"{stats.dead_letters:,} dead letters in {sink.messages:,} messages"
               f"{resumed}", err=True)


