"""Where events go: one sink protocol, the store and the bus behind it, and ordered delivery.

Every event that reaches the graph goes through :func:`write_events`: events and dead
letters are folded into idempotent upserts (:class:`ursprung_graph.ingest.upserts.Batch`)
and written in one call that returns once the store has them durably. The sinks below are
what sources (the follower, stdin, the recorder) hand their chunks to; after ``emit``
returns, the caller may move its checkpoint.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from ..ingest.bus import Publisher, publish_events
from ..ingest.upserts import Batch
from ..schema.event import DeadLetter, Event
from ..store.base import GraphStore


class Sink(Protocol):
    def emit(self, events: Sequence[Event], dead: Sequence[DeadLetter], host: str) -> None:
        """Deliver durably (return only when the store or the bus has them), or raise.
        ``host`` is the host of the dead letters (events carry their own)."""


def write_events(store: GraphStore, events: Sequence[Event],
                 dead: Sequence[DeadLetter] = (), host: str = "") -> None:
    """The one route into the store: events and dead letters as upserts, durably."""
    batch = Batch()
    for event in events:
        batch.add(event)
    for item in dead:
        batch.add_dead(item, host)
    if len(batch):
        store.write(batch.statements())


class StoreSink:
    """Chunks into the store. The store may be given as a function that opens it: it is
    called on the first delivery or by :meth:`open` (the recorder calls it from a thread of
    its own while the command runs, so connecting and importing the client cost the command
    nothing); a failure to open is final and raised by every later call. ``observe`` sees
    each chunk's events once the store has them (the rule engine's ``observe``)."""

    def __init__(self, store: GraphStore | Callable[[], GraphStore],
                 observe: Callable[[Sequence[Event]], None] | None = None) -> None:
        self._observe = observe
        self._opener = store if callable(store) else None
        self.store: GraphStore | None = None if callable(store) else store
        self._lock = threading.Lock()
        self._failed: BaseException | None = None

    def open(self) -> GraphStore:
        """The store, opened on the first call (from any thread)."""
        with self._lock:
            if self.store is None:
                if self._failed is not None:
                    raise self._failed
                assert self._opener is not None
                try:
                    self.store = self._opener()
                except BaseException as exc:
                    self._failed = exc
                    raise
            return self.store

    def emit(self, events: Sequence[Event], dead: Sequence[DeadLetter] = (),
             host: str = "") -> None:
        write_events(self.open(), events, dead, host)
        if self._observe is not None and events:
            self._observe(events)

    def __call__(self, events: list[Event]) -> None:
        """The form a collector's callback takes (the tracer's chunks)."""
        self.emit(events)


class BusSink:
    """Chunks onto a bus topic, one message per key and ``per_message`` events; ``emit``
    returns once the bus has acknowledged them."""

    def __init__(self, publisher: Publisher, topic: str, source: str, *,
                 per_message: int = 1000, buckets: int = 1) -> None:
        self.publisher = publisher
        self.topic = topic
        self.source = source
        self.per_message = per_message
        self.buckets = buckets
        self.messages = 0

    def emit(self, events: Sequence[Event], dead: Sequence[DeadLetter], host: str) -> None:
        self.messages += publish_events(self.publisher, self.topic, self.source, list(events),
                                        list(dead), host, per_message=self.per_message,
                                        buckets=self.buckets)
        self.publisher.flush()


class InFlight:
    """Deliveries run in order in one background thread while the caller reads on.

    At most ``depth`` deliveries wait or run at once: `submit` blocks while that many are
    queued (memory stays bounded), and re-raises the error of a failed delivery, after
    which no later delivery runs, so what follows a delivery (its checkpoint) never
    happens out of order or after a failure. `wait` is the barrier at the end. Waiting for
    the bus's acknowledgements releases the GIL, so it overlaps with parsing in CPython;
    the depth covers a slow first acknowledgement (a new idempotent producer's set-up).
    """

    def __init__(self, depth: int = 16) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, deliver: Callable[[], None]) -> None:
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ursprung-deliver",
                                            daemon=True)
            self._thread.start()
        self._queue.put(deliver)

    def _run(self) -> None:
        while (deliver := self._queue.get()) is not None:
            try:
                if self._error is None:  # after a failure, later deliveries are dropped
                    deliver()
            except BaseException as exc:
                self._error = exc
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def wait(self) -> None:
        """Until every submitted delivery has run; re-raise the first failure."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
