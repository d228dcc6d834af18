"""`ursprung collect`: collectors that publish normalized events to the bus.

    ursprung collect auditd /var/log/audit/audit.log --follow --to kafka://central:9092
    ursprung collect auditd - --to kafka://central:9092      # audisp plugin (stdin)
    ursprung collect scale events.jsonl --to kafka://central:9092
    ursprung collect scale --from kafka://scale-kafka:9092/gpfs --to kafka://central:9092

``--to local`` runs the single-machine path instead (:mod:`..pipeline.local`).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from ..collectors.source import LineSource
from ..config import Config
from ..ingest.bus import BusError, Publisher, open_bus
from ..pipeline.checkpoint import CheckpointStore
from ..pipeline.importer import default_host
from ..store import StoreError
from .common import config_or_fail, setup_logging, stop_on_signals

log = logging.getLogger("ursprung.collect")


@contextmanager
def _target(to: str, config: Config, stop: threading.Event) -> Iterator[Publisher]:
    """The publisher for ``--to``: a Kafka bus, or this machine's store (``local``)."""
    if to == "local":
        from ..pipeline.local import local_publisher

        try:
            with local_publisher(config, stop) as publisher:
                yield publisher
        except StoreError as exc:
            raise click.ClickException(str(exc)) from exc
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
    from ..collectors.auditd import AuditdSource
    from ..pipeline.gap_watch import GapWatch, LostCounter

    setup_logging(verbose)
    config = config_or_fail(config_path)
    name = host or config.collect.host or default_host()
    every = config.collect.lost_sample_seconds
    live = follow or log_path == "-"  # gaps are about the live stream, not a file read once

    def source(state: bytes | None) -> GapWatch:
        # No state: no checkpoint to resume from (stdin never has one).
        return GapWatch(AuditdSource(name, state), name, restart=live and state is None,
                        lost=LostCounter(name, every) if live and every > 0 else None)

    _run(log_path, source, "auditd", name, to, config, follow, stop_on_signals())


@collect.command("ebpf")
@click.option("--host", default=None,
              help="Host to record [default: collect.host or this machine].")
@click.option("--to", "to", required=True, metavar="kafka://HOST:PORT|local",
              help="Where to publish: a Kafka bootstrap server, or local (this machine's "
                   "store through an in-process bus).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="ursprung.toml [default: $URSPRUNG_CONFIG or ./ursprung.toml].")
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
def collect_ebpf(host: str | None, to: str, config_path: str | None, verbose: bool) -> None:
    """Trace this node's processes with eBPF (root; the compiled libbpf loader, else
    bpftrace) and publish their events, live, until stopped; filtered by [collect]
    ebpf_uids, ebpf_cgroups, ebpf_commands."""
    from ..collectors.ebpf.capture import EbpfUnavailable
    from ..collectors.ebpf.node import NodeCollector, NodeFilter
    from ..pipeline.sinks import BusSink

    setup_logging(verbose)
    config = config_or_fail(config_path)
    c = config.collect
    host = host or c.host or default_host()
    stop = stop_on_signals()
    node_filter = NodeFilter(tuple(c.ebpf_uids), tuple(c.ebpf_cgroups), tuple(c.ebpf_commands))

    def ready() -> None:
        capture = collector.capture
        how = "" if capture is None else f" with {capture.backend.describe()}"
        click.echo(f"ebpf: collecting on {host}{how}", err=True)
        if capture is not None and capture.fell_back is not None:
            click.echo(f"ebpf: the compiled loader did not load ({capture.fell_back})",
                       err=True)

    with _target(to, config, stop) as publisher:
        sink = BusSink(publisher, config.kafka.events_topic, "ebpf",
                       per_message=c.message_events)
        collector = NodeCollector(
            lambda events: sink.emit(events, [], host), host=host,
            state_dir=config.checkpoint_dir, node_filter=node_filter,
            chunk_events=c.chunk_events, flush_seconds=c.flush_seconds, stop=stop,
            on_window=lambda w: click.echo(f"ebpf: {w.describe()}", err=True),
            on_ready=ready)
        try:
            stats = collector.run()
        except EbpfUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
        except BusError as exc:
            raise click.ClickException(f"the bus did not take the events: {exc}") from exc
    click.echo(f"ebpf: {stats.calls:,} calls -> {stats.events:,} events in "
               f"{sink.messages:,} messages, {stats.lost:,} records lost", err=True)


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
    from ..collectors.scale import ScaleSource

    setup_logging(verbose)
    config = config_or_fail(config_path)
    c = config.collect
    stop = stop_on_signals()
    if source_url:
        if path:
            raise click.UsageError("give a FILE or --from, not both")
        from ..pipeline.scale_topic import consume_scale_topic

        with _target(to, config, stop) as publisher:
            try:
                stats = consume_scale_topic(source_url, group, publisher, config, stop)
            except BusError as exc:
                raise click.ClickException(str(exc)) from exc
        click.echo(f"scale: {stats.records:,} records -> {stats.events:,} events, "
                   f"{stats.dead_letters:,} dead letters", err=True)
        return
    _run(path or "-", lambda state: ScaleSource(state, pair_seconds=c.pair_seconds,
                                                pair_events=c.pair_events),
         "scale", c.host or default_host(), to, config, follow, stop)


def _run(name: str, factory: Callable[[bytes | None], LineSource], source: str, host: str,
         to: str, config: Config, follow: bool, stop: threading.Event) -> None:
    from ..pipeline.follow import Follower, FollowOptions, read_stream
    from ..pipeline.sinks import BusSink

    c = config.collect
    with _target(to, config, stop) as publisher:
        sink = BusSink(publisher, config.kafka.events_topic, source,
                       per_message=c.message_events)
        try:
            if name == "-":
                stats = read_stream(sys.stdin.buffer, factory(None), sink, host,
                                    chunk_events=c.chunk_events, stop=stop)
            else:
                path = Path(name)
                if not follow and not path.is_file():
                    raise click.ClickException(f"{name}: no such file")
                follower = Follower(path, factory, sink, host=host,
                                    checkpoints=CheckpointStore(config.checkpoint_dir),
                                    options=FollowOptions.from_config(c, follow=follow),
                                    stop=stop)
                stats = follower.run()
        except BusError as exc:
            raise click.ClickException(f"the bus did not take the events: {exc} (the "
                                       "checkpoint was not moved; run again to resume)") from exc
    resumed = f", resumed at byte {stats.resumed_from:,}" if stats.resumed_from else ""
    click.echo(f"{source}: {stats.lines:,} lines -> {stats.events:,} events, "
               f"{stats.dead_letters:,} dead letters in {sink.messages:,} messages"
               f"{resumed}", err=True)
