"""`ursprung ingest`: ingest workers, one consumer group, writing the graph store.

    ursprung ingest --from kafka://central:9092 --group ursprung-ingest --workers 4

Each worker is a process (decoding and folding are CPU work), a member of the group. With
``--metrics-port P`` worker i serves ``/metrics`` and ``/healthz`` on P+i (127.0.0.1 unless
``ingest.metrics_host`` says otherwise). SIGTERM: every worker writes and commits what it
has gathered, leaves the group, and exits.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time

import click

from ..config import Config
from .common import (
    config_or_fail,
    rule_engine,
    rule_files,
    rules_option,
    setup_logging,
    stop_on_signals,
)

log = logging.getLogger("ursprung.ingest")


@click.command("ingest")
@click.option("--from", "source", required=True, metavar="kafka://HOST:PORT",
              help="The Kafka bootstrap server to consume from.")
@click.option("--group", default=None, help="Consumer group [default: ingest.group].")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Worker processes [default: ingest.workers].")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve /metrics and /healthz from this port (+i for worker i); "
                   "0: off [default: ingest.metrics_port].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="ursprung.toml [default: $URSPRUNG_CONFIG or ./ursprung.toml].")
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
@rules_option
def ingest_cmd(source: str, group: str | None, workers: int | None, metrics_port: int | None,
               config_path: str | None, verbose: bool, rules: tuple[str, ...]) -> None:
    """Consume events from Kafka and write them to the graph store."""
    from ..ingest.bus import BusError, parse_kafka_url

    config = config_or_fail(config_path)
    try:
        parse_kafka_url(source)
    except BusError as exc:
        raise click.BadParameter(str(exc), param_hint="--from") from exc
    n = workers or config.ingest.workers
    port = config.ingest.metrics_port if metrics_port is None else metrics_port
    group = group or config.ingest.group
    setup_logging(verbose)
    _prepare(source, config)
    files = rule_files(config, rules)
    if files:  # they load (or say why not) before any worker starts
        from ..rules import load_rules

        load_rules(files)
    if n == 1:
        run_worker(source, config_path, group, port, 0, verbose, parent_pid=None, rules=rules)
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=run_worker, name=f"ursprung-ingest-{i}",
                         args=(source, config_path, group, port + i if port else 0, i, verbose,
                               os.getpid(), rules))
             for i in range(n)]
    for p in procs:
        p.start()

    def forward(signum: int, frame: object) -> None:
        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for p in procs:
        p.join()
    failed = [p.name for p in procs if p.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        raise click.ClickException(f"worker(s) failed: {', '.join(failed)}")



def _prepare(source: str, config: Config) -> None:
    """Topics exist and the store is up with its schema, before any worker starts."""
    from ..ingest.bus import BusError, open_bus
    from ..store import StoreError, open_store

    try:
        bus = open_bus(source, config)
        bus.ensure_topics([config.kafka.events_topic, config.kafka.deadletter_topic],
                          config.kafka.partitions)
    except BusError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        store = open_store(config.settings)
        store.ensure_schema()
        store.close()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def run_worker(source: str, config_path: str | None, group: str, port: int, index: int,
               verbose: bool, parent_pid: int | None, rules: tuple[str, ...] = ()) -> None:
    """One worker until SIGTERM (in its own process when there are several)."""
    from ..ingest.bus import open_bus
    from ..ingest.metrics import Metrics, MetricsServer
    from ..ingest.worker import IngestWorker, WorkerOptions
    from ..store import open_store

    setup_logging(verbose)
    config = config_or_fail(config_path)
    stop = stop_on_signals()
    metrics = Metrics(str(index))
    server = None
    if port:
        server = MetricsServer(metrics, config.ingest.metrics_host, port).start()
        log.info("worker %d: metrics on http://%s:%d/metrics", index, server.host, server.port)
    store = None
    started = time.monotonic()
    try:
        store = open_store(config.settings, quiet=True)
        with rule_engine(rules, store, config, metrics.registry) as engine:
            worker = IngestWorker(open_bus(source, config), store,
                                  WorkerOptions.from_config(config, group), metrics=metrics,
                                  observe=None if engine is None else engine.observe)
            worker.run(stop, parent_pid=parent_pid)
    finally:
        if store is not None:
            store.close()
        if server is not None:
            server.stop()
    print(f"worker {index}: {metrics.value('ursprung_ingest_events_written_total'):,.0f} "
          f"events written, {metrics.value('ursprung_ingest_dead_letters_total'):,.0f} dead "
          f"letters in {time.monotonic() - started:.1f}s", file=sys.stderr)


