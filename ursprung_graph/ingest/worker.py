"""The ingest worker: bus messages -> decoded events -> upserts -> store -> offset commit.

One worker is one member of a consumer group. Its loop orders the contract:

1. poll messages until ``batch_events`` events or ``batch_seconds`` have gathered;
2. decode each (a batch of schema-versioned events, or a collector's dead letters); what
   cannot be decoded, or an event that cannot be mapped, is published to the dead-letter
   topic with the reason and the place it came from, and the stream goes on;
3. resolve events that know only (host, pid) (Spectrum Scale) to a process, or let them
   wait for the host's audit stream (`resolve.py`);
4. fold everything into one `Batch` and write it; while the store is unavailable, retry
   with exponential backoff, consuming nothing (partitions paused, the group membership
   kept alive by polling) and committing nothing;
5. flush the dead-letter publications, then commit, per partition, the offset below the
   oldest message that is not fully in the store (a message whose events still wait holds
   its partition's commit back; later messages are written but re-read after a crash,
   which is harmless: every upsert is idempotent).

Partitions revoked by a rebalance are forgotten at once: their uncommitted messages go to
the new owner, which re-reads them from the last commit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from ..config import Config, IngestConfig, KafkaConfig
from ..schema.event import (
    RAW_LIMIT,
    SCHEMA_VERSION,
    DeadLetter,
    Event,
    SchemaError,
    decode_batch,
    raw_text,
)
from ..store.base import GraphStore, StoreError, StoreUnavailable
from .bus import (
    HEADER_KIND,
    HEADER_ORIGIN,
    HEADER_REASON,
    HEADER_SCHEMA,
    KIND_DEAD,
    KIND_EVENTS,
    Bus,
    BusError,
    Message,
    Partitions,
    Publisher,
    Subscription,
    decode_dead,
)
from .metrics import Metrics
from .resolve import Resolver, Waiting, needs_resolution
from .upserts import Batch

log = logging.getLogger("ursprung.ingest")

POLL_MESSAGES = 500
_SCHEMA = str(SCHEMA_VERSION).encode()
_INGEST, _KAFKA = IngestConfig(), KafkaConfig()  # the defaults of the options below


@dataclass(slots=True)
class WorkerOptions:
    events_topic: str = _KAFKA.events_topic
    deadletter_topic: str = _KAFKA.deadletter_topic
    group: str = _INGEST.group
    batch_events: int = _INGEST.batch_events
    batch_seconds: float = _INGEST.batch_seconds
    retry_initial: float = _INGEST.retry_initial
    retry_max: float = _INGEST.retry_max
    resolve_wait: float = _INGEST.resolve_wait

    @classmethod
    def from_config(cls, config: Config, group: str | None = None) -> WorkerOptions:
        i, k = config.ingest, config.kafka
        return cls(events_topic=k.events_topic, deadletter_topic=k.deadletter_topic,
                   group=group or i.group, batch_events=i.batch_events,
                   batch_seconds=i.batch_seconds, retry_initial=i.retry_initial,
                   retry_max=i.retry_max, resolve_wait=i.resolve_wait)


@dataclass(slots=True, eq=False)
class _Entry:
    """One consumed message and what of it is still to be written."""

    msg: Message
    events: list[Event] = field(default_factory=list)
    dead: list[tuple[DeadLetter, str]] = field(default_factory=list)
    waiting: int = 0

    @property
    def tp(self) -> tuple[str, int]:
        return (self.msg.topic, self.msg.partition)


class OffsetTracker:
    """Per partition: offsets consumed but not yet fully stored, and the commit point."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, int], set[int]] = {}
        self.next: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}

    def add(self, tp: tuple[str, int], offset: int) -> None:
        self.open.setdefault(tp, set()).add(offset)
        if offset + 1 > self.next.get(tp, -1):
            self.next[tp] = offset + 1

    def done(self, tp: tuple[str, int], offset: int) -> None:
        s = self.open.get(tp)
        if s is not None:
            s.discard(offset)

    def forget(self, tps: Partitions) -> None:
        for tp in tps:
            self.open.pop(tp, None)
            self.next.pop(tp, None)
            self.committed.pop(tp, None)

    def due(self, assigned: Partitions) -> dict[tuple[str, int], int]:
        out = {}
        for tp in assigned:
            if tp not in self.next:
                continue
            s = self.open.get(tp)
            point = min(s) if s else self.next[tp]
            if point > self.committed.get(tp, -1):
                out[tp] = point
        return out


class StoreDeadLetters:
    """A dead-letter "topic" that is the store itself: each message becomes a DeadLetter
    node (reason, origin, raw bytes as text) when flushed. For the single-machine path,
    whose in-process bus is memory: a dead letter published there would be gone at exit."""

    SOURCE = "ingest"

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        self._batch = Batch()

    def publish(self, topic: str, key: bytes | None, value: bytes,
                headers: dict[str, bytes] | None = None) -> None:
        h = headers or {}
        text = raw_text(value)
        if len(value) > RAW_LIMIT:
            text += f"... ({len(value):,} bytes in all)"
        dead = DeadLetter(source=self.SOURCE, raw=text,
                          reason=h.get(HEADER_REASON, b"").decode("utf-8", "replace"),
                          where=h.get(HEADER_ORIGIN, b"").decode("utf-8", "replace"))
        host = (key or b"").decode("utf-8", "replace").split("/", 1)[0] or "unknown"
        self._batch.add_dead(dead, host)

    def flush(self, timeout: float = 30.0) -> None:
        if not self._batch.dead:
            return
        try:
            self.store.write(self._batch.statements())
        except StoreError as exc:
            raise BusError(f"dead letters not stored: {exc}") from exc
        self._batch = Batch()

    def close(self) -> None:
        self.flush()


class IngestWorker:
    def __init__(self, bus: Bus, store: GraphStore, options: WorkerOptions | None = None,
                 *, metrics: Metrics | None = None, dead_letters: Publisher | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 observe: Callable[[list[Event]], None] | None = None) -> None:
        self.bus = bus
        self._observe = observe  # sees each written batch's events (the rule engine)
        self._dead_target = dead_letters
        self.store = store
        self.opt = options or WorkerOptions()
        self.metrics = metrics or Metrics()
        self.resolver = Resolver(store, wait=self.opt.resolve_wait)
        self.tracker = OffsetTracker()
        self._entries: list[_Entry] = []
        self._carried: list[Message] = []  # polled, for the next batch
        self._pending_events = 0
        self._waiting: list[Waiting] = []
        self._subscription: Subscription | None = None
        self._dead_publisher: Publisher | None = None
        self._dlq_pending = 0
        self._sleep = sleep

    @property
    def _sub(self) -> Subscription:
        assert self._subscription is not None, "the worker is not running"
        return self._subscription

    @property
    def _dlq(self) -> Publisher:
        assert self._dead_publisher is not None, "the worker is not running"
        return self._dead_publisher

    # ------------------------------------------------------------------ life cycle

    def run(self, stop: threading.Event, *, parent_pid: int | None = None) -> None:
        """Consume until ``stop`` is set (or the parent process is gone), then write what
        was gathered, commit and leave the group."""
        opt = self.opt
        self._dead_publisher = self._dead_target or self.bus.publisher()
        self._subscription = self.bus.subscribe(opt.group, [opt.events_topic],
                                       on_assign=self._assigned, on_revoke=self._revoked)
        try:
            while not stop.is_set():
                if parent_pid is not None and os.getppid() != parent_pid:
                    log.warning("parent process gone: stopping")
                    break
                self.metrics.beat()
                self._fill(stop)
                if self._entries or self._waiting:
                    self._flush(stop)
                lag = self._sub.lag()
                if lag is not None:
                    self.metrics.lag.set(lag)
            if self._entries and not stop_hard(stop):
                self._flush(stop, final=True)
        finally:
            self._sub.close()
            self._dlq.close()

    def _assigned(self, parts: Partitions) -> None:
        self.metrics.rebalances("assign").inc()
        self.tracker.forget(parts)  # positions restart at the committed offsets
        self._drop_carried(parts)
        self.metrics.assigned += len(parts)
        log.info("assigned %s", parts)

    def _revoked(self, parts: Partitions) -> None:
        self.metrics.rebalances("revoke").inc()
        gone = set(parts)
        self.metrics.assigned = max(0, self.metrics.assigned - len(parts))
        self.tracker.forget(parts)
        self._drop_carried(parts)
        self._waiting = [w for w in self._waiting if w.token.tp not in gone]  # type: ignore
        self.metrics.waiting.set(len(self._waiting))
        log.info("revoked %s", parts)

    def _drop_carried(self, parts: Partitions) -> None:
        """Messages polled from partitions that moved: they are consumed again from the
        committed offsets, by whoever has the partition now."""
        moved = set(parts)
        self._carried = [m for m in self._carried if (m.topic, m.partition) not in moved]

    # ------------------------------------------------------------------ consuming

    def _fill(self, stop: threading.Event) -> None:
        """Gather a batch: until it holds ``batch_events`` events or its first message
        waited ``batch_seconds``. A poll's messages past the batch's size wait for the next
        batch (``_carried``), so a backlog never makes one transaction larger than
        configured (a Neo4j transaction's memory grows with it)."""
        opt = self.opt
        deadline = None
        while not stop.is_set():
            now = time.monotonic()
            timeout = 0.1 if deadline is None else max(0.0, deadline - now)
            if self._carried:
                msgs, self._carried = self._carried, []
            else:
                msgs = self._sub.poll(POLL_MESSAGES, timeout)
            for i, m in enumerate(msgs):
                if self._entries and self._pending_events >= opt.batch_events:
                    self._carried = msgs[i:]
                    return
                self._take(m)
            if self._entries and deadline is None:
                deadline = time.monotonic() + opt.batch_seconds
            if self._pending_events >= opt.batch_events:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            if not msgs and deadline is None:
                return  # idle: let the caller beat, retry waiting events, update lag

    def _take(self, m: Message) -> None:
        tp = (m.topic, m.partition)
        self.tracker.add(tp, m.offset)
        entry = _Entry(m)
        self._entries.append(entry)
        kind = m.headers.get(HEADER_KIND, KIND_EVENTS)
        schema = m.headers.get(HEADER_SCHEMA)
        if m.value is None or m.value == b"":
            self._dead_message(m, "empty message")
            return
        if schema is not None and schema != _SCHEMA:
            self._dead_message(m, f"schema version {schema.decode(errors='replace')!r} is "
                                  f"not supported (want {SCHEMA_VERSION})")
            return
        if kind == KIND_DEAD:
            try:
                dead = decode_dead(m.value)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self._dead_message(m, f"not a batch of dead letters: {exc}")
                return
            if dead.v != SCHEMA_VERSION:
                self._dead_message(m, f"schema version {dead.v} is not supported "
                                      f"(want {SCHEMA_VERSION})")
                return
            entry.dead = [(d, dead.host) for d in dead.items]
            self._pending_events += len(entry.dead)
            return
        if kind != KIND_EVENTS:
            self._dead_message(m, f"unknown message kind {kind.decode(errors='replace')!r}")
            return
        try:
            events = decode_batch(m.value)
        except SchemaError as exc:
            self._dead_message(m, str(exc))
            return
        self.metrics.messages("ok").inc()
        self.metrics.consumed.inc(len(events))
        now = time.monotonic()
        for ev in events:
            if needs_resolution(ev):
                self._waiting.append(Waiting(ev, now, entry))
                entry.waiting += 1
            else:
                entry.events.append(ev)
        self._pending_events += len(events)

    def _dead_message(self, m: Message, reason: str) -> None:
        """The whole message to the dead-letter topic, with the reason and its origin."""
        self.metrics.messages("dead").inc()
        self._publish_dead(m.key, m.value or b"", reason, m)
        log.warning("dead letter %s/%d@%d: %s", m.topic, m.partition, m.offset, reason)

    def _publish_dead(self, key: bytes | None, value: bytes, reason: str, m: Message) -> None:
        headers = {k: v for k, v in m.headers.items() if k not in (HEADER_REASON,
                                                                   HEADER_ORIGIN)}
        headers[HEADER_REASON] = reason.encode()
        headers[HEADER_ORIGIN] = f"{m.topic}/{m.partition}/{m.offset}".encode()
        self._dlq.publish(self.opt.deadletter_topic, key, value, headers)
        self._dlq_pending += 1
        self.metrics.dead_letters.inc()

    # ------------------------------------------------------------------ writing

    def _flush(self, stop: threading.Event, final: bool = False) -> None:
        entries, self._entries = self._entries, []
        self._pending_events = 0
        if self._waiting:
            try:
                done, self._waiting = self.resolver.resolve(self._waiting)
            except StoreUnavailable:
                done = []
            seen = set(map(id, entries))
            for ev, entry in done:
                assert isinstance(entry, _Entry)
                entry.events.append(ev)
                entry.waiting -= 1
                if id(entry) not in seen:
                    seen.add(id(entry))
                    entries.append(entry)
            self.metrics.waiting.set(len(self._waiting))
        if not entries:
            return
        started = time.monotonic()
        batch = self._fold(entries)
        try:
            if not self._write(batch.statements(), stop, final):
                return  # stopping while the store is down: nothing is committed
        except StoreError as exc:
            log.error("store refused a batch (%s): writing message by message", exc)
            if not self._isolate(entries, stop, final):
                return
        written = sum(len(e.events) for e in entries)
        if self._observe is not None:
            self._observe([ev for e in entries for ev in e.events])
        if not self._flush_dead(stop, final):
            return
        self.metrics.written.inc(written)
        self.metrics.batch_seconds.observe(time.monotonic() - started)
        for entry in entries:
            entry.events.clear()
            entry.dead.clear()
            if entry.waiting == 0:
                self.tracker.done(entry.tp, entry.msg.offset)
        self._commit()

    def _fold(self, entries: list[_Entry]) -> Batch:
        batch = Batch()
        for entry in entries:
            if entry.events:
                kept = []
                for ev in entry.events:
                    try:
                        batch.add(ev)
                        kept.append(ev)
                    except Exception as exc:
                        self._publish_dead(entry.msg.key, msgspec.json.encode(ev),
                                           f"cannot map event to the graph: {exc!r}",
                                           entry.msg)
                entry.events = kept
            for dead, host in entry.dead:
                batch.add_dead(dead, host)
        return batch

    def _write(self, statements: list, stop: threading.Event, final: bool) -> bool:
        delay = self.opt.retry_initial
        paused = False
        try:
            while True:
                try:
                    self.store.write(statements)
                    self.metrics.store_ok = True
                    return True
                except StoreUnavailable as exc:
                    self.metrics.store_errors.inc()
                    self.metrics.store_ok = False
                    if final or stop_hard(stop):
                        log.error("store unavailable while stopping: %s", exc)
                        return False
                    log.warning("store unavailable (%s): retrying in %.1fs", exc, delay)
                    if not paused:
                        self._sub.pause()
                        paused = True
                    if not self._idle(delay, stop):
                        return False
                    delay = min(delay * 2, self.opt.retry_max)
        finally:
            if paused:
                self._sub.resume()

    def _idle(self, seconds: float, stop: threading.Event) -> bool:
        """Wait, polling so that the group keeps us (paused: nothing is fetched)."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return True
            if stop.is_set():
                return False
            # fetched before the pause: for the next batch
            self._carried.extend(self._sub.poll(POLL_MESSAGES, min(left, 0.2)))
            self.metrics.beat()

    def _isolate(self, entries: list[_Entry], stop: threading.Event, final: bool) -> bool:
        for entry in entries:
            one = Batch()
            for ev in entry.events:
                one.add(ev)
            for dead, host in entry.dead:
                one.add_dead(dead, host)
            try:
                if not self._write(one.statements(), stop, final):
                    return False
            except StoreError as exc:
                self._dead_message(entry.msg, f"the store refused it: {exc}")
                entry.events.clear()
        return True

    def _flush_dead(self, stop: threading.Event, final: bool) -> bool:
        if not self._dlq_pending:
            return True
        delay = self.opt.retry_initial
        while True:
            try:
                self._dlq.flush(30.0)
                self._dlq_pending = 0
                return True
            except BusError as exc:
                log.warning("dead-letter topic: %s", exc)
                if final or not self._idle(delay, stop):
                    return False
                delay = min(delay * 2, self.opt.retry_max)

    def _commit(self) -> None:
        due = self.tracker.due(self._sub.assignment())
        if not due:
            return
        try:
            self._sub.commit(due)
        except BusError as exc:
            log.warning("%s (the partitions' new owner re-reads them)", exc)
            return
        self.tracker.committed.update(due)
        self.metrics.commits.inc()


def stop_hard(stop: threading.Event) -> bool:
    """A second stop request (``stop.hard``) means: do not even write what was gathered."""
    return bool(getattr(stop, "hard", False))
