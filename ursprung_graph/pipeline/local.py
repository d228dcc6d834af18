"""The single-machine path: an in-process bus and an ingest worker writing to the
configured store, behind an ordinary publisher.

The publisher's ``flush`` (after which a collector moves its checkpoint or commits its
source offsets) returns only once the worker has committed the events, i.e. once the store
has them: the in-process bus is memory, and a kill must not lose what a checkpoint already
counts as delivered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..config import Config
from ..ingest.bus import InProcessBus, Publisher
from ..ingest.worker import IngestWorker, StoreDeadLetters, WorkerOptions
from ..store import open_store


def _hard(stop: threading.Event) -> bool:
    return bool(getattr(stop, "hard", False))


@contextmanager
def local_publisher(config: Config, stop: threading.Event) -> Iterator[Publisher]:
    """A publisher whose events reach this machine's store; ``stop`` marked ``hard``
    abandons what the worker has not taken yet."""
    store = open_store(config.settings)
    store.ensure_schema()
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
        cancelled=lambda: _hard(stop),
        min_wait=opt.resolve_wait + opt.batch_seconds + 30.0)
    try:
        yield publisher
    finally:
        # Let the worker take everything, then stop it.
        while bus.committed(opt.group, opt.events_topic) != {
                p: o for p, o in bus.end_offsets(opt.events_topic).items() if o}:
            if not thread.is_alive() or _hard(stop):
                break
            thread.join(0.05)
        if _hard(stop):
            worker_stop.hard = True  # type: ignore[attr-defined]
        worker_stop.set()
        thread.join()
        store.close()
