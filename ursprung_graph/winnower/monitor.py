"""The central end: deltas from the nodes merged into the global model, the model kept in
the graph store (`persist`) and its ids sent back to the nodes.

A batch of deltas is merged, the states and transitions it touched are written, and only
then are the bus offsets committed and the new view published: a crash re-reads the batch,
and merging it again changes nothing. A message that is not a delta is counted as a dead
letter with the reason (logged and published to the dead-letter topic) and skipped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from ..ingest.bus import HEADER_ORIGIN, HEADER_REASON, Message, Publisher, Subscription
from ..store.base import GraphStore
from . import persist
from .agent import Topics
from .delta import Delta, DeltaError, ModelView, Ordinals, apply_delta, decode_delta, encode_view
from .model import Model, ModelMismatch

log = logging.getLogger(__name__)


@dataclass(slots=True)
class MonitorStats:
    deltas: int = 0
    bytes: int = 0
    dead: int = 0
    origins: set[str] = field(default_factory=set)


class Monitor:
    """The global model named ``name`` (loaded from the store when it is there)."""

    def __init__(self, name: str, store: GraphStore | None, *, k: int = 1) -> None:
        self.name = name
        self.store = store
        loaded = persist.load(store, name) if store is not None else None
        if loaded is not None and loaded[0].k != k and (loaded[0].states
                                                        or loaded[0].transitions):
            raise ModelMismatch(f"the stored model {name!r} has depth {loaded[0].k}, not {k}")
        self.model, self.order = loaded if loaded is not None else (Model(k=k), Ordinals())
        self.epoch = 0
        self.stats = MonitorStats()

    def apply(self, deltas: list[Delta]) -> ModelView:
        """Merge ``deltas``, write what changed, and return the view to send back."""
        touched_states: set[int] = set()
        touched_transitions: set[int] = set()
        for delta in deltas:
            try:
                states, transitions = apply_delta(self.model, delta, self.order)
            except DeltaError as exc:
                self.stats.dead += 1
                log.warning("dead letter: %s", exc)
                continue
            touched_states |= states
            touched_transitions |= transitions
            self.stats.deltas += 1
            self.stats.origins.add(delta.origin)
            self.epoch = max(self.epoch, delta.epoch)
        if self.store is not None and (touched_states or touched_transitions):
            persist.save(self.store, self.name, self.model, self.order, epoch=self.epoch,
                         states=touched_states, transitions=touched_transitions)
        return self.order.view(self.model.k, self.epoch)

    def decode(self, messages: list[Message], dead: Publisher | None = None,
               dead_topic: str = Topics().dead) -> list[Delta]:
        out = []
        for msg in messages:
            if msg.value is None:
                continue
            self.stats.bytes += len(msg.value)
            try:
                out.append(decode_delta(msg.value))
            except DeltaError as exc:
                self.stats.dead += 1
                where = f"{msg.topic}/{msg.partition}/{msg.offset}"
                log.warning("dead letter %s: %s", where, exc)
                if dead is not None:
                    dead.publish(dead_topic, msg.key, msg.value,
                                 {HEADER_REASON: str(exc).encode(),
                                  HEADER_ORIGIN: where.encode()})
        return out

    def serve(self, sub: Subscription, pub: Publisher, topics: Topics,
              stop: threading.Event, *, poll_timeout: float = 0.5,
              idle_exit: float | None = None) -> None:
        """Consume deltas until ``stop`` is set (or nothing came for ``idle_exit`` s)."""
        idle = 0.0
        while not stop.is_set():
            messages = sub.poll(500, poll_timeout)
            if not messages:
                idle += poll_timeout
                if idle_exit is not None and idle >= idle_exit:
                    return
                continue
            idle = 0.0
            deltas = self.decode(messages, pub, topics.dead)
            view = self.apply(deltas)
            offsets: dict[tuple[str, int], int] = {}
            for m in messages:
                offsets[(m.topic, m.partition)] = max(offsets.get((m.topic, m.partition), 0),
                                                      m.offset + 1)
            pub.publish(topics.model, self.name.encode(), encode_view(view))
            pub.flush()
            sub.commit(offsets)
            log.info("merged %d deltas: %d states, %d transitions", len(deltas),
                     len(self.model.states), len(self.model.transitions))
