"""The bus between collectors and ingest workers: one interface, two implementations.

`KafkaBus` (confluent-kafka) is the cluster path: an idempotent producer with acks=all,
compression and batching (linger), and consumer groups with automatic offset commit turned
off, so an offset is committed only when the caller says so (after the store has the
batch). `InProcessBus` is the same contract inside one process (the single-machine path and
unit tests): partitions, consumer groups with committed offsets, rebalancing among the
group's live members. Its messages live in the process's memory, so for a collector that
publishes to it (``collect --to local``) "the bus has it" is worth nothing after a crash:
that publisher is made with ``ack_group``, and its `flush` returns only once that consumer
group (the ingest worker, which commits only after the store has the batch) has committed
past everything it published.

A message is (topic, key, value, headers). Collectors put a batch of encoded events in the
value (`encode_batch`: msgpack, each event carrying its schema version) and say what it is in
headers (`HEADER_KIND`, `HEADER_SCHEMA`): see `publish_events` below.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse

import msgspec

from ..errors import UrsprungError
from ..schema.event import SCHEMA_VERSION, DeadLetter, Event, encode_batch

HEADER_KIND = "ursprung-kind"  # events | dead
HEADER_SCHEMA = "ursprung-schema"  # the schema version of the events in the value
HEADER_SOURCE = "ursprung-source"
HEADER_REASON = "ursprung-reason"  # on the dead-letter topic: why
HEADER_ORIGIN = "ursprung-origin"  # on the dead-letter topic: topic/partition/offset

KIND_EVENTS = b"events"
KIND_DEAD = b"dead"

#: How long the broker may hold a fetch that has no data yet. librdkafka's 500 ms default
#: relies on the broker answering as soon as data arrives; brokers that wait the full time
#: (Tansu does) then add up to that much latency per fetch. Override in [kafka.consumer].
FETCH_WAIT_MS = 100


class BusError(UrsprungError, RuntimeError):
    """The bus refused or lost a message, or cannot be reached; a later try may succeed."""

    retryable = True
    exit_code = 6


@dataclass(slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes] = field(default_factory=dict)
    timestamp_ms: int = 0  # when the broker (or producer) stamped it


Partitions = list[tuple[str, int]]
RebalanceCallback = Callable[[Partitions], None]


class Publisher(Protocol):
    def publish(self, topic: str, key: bytes | None, value: bytes,
                headers: dict[str, bytes] | None = None) -> None:
        """Queue a message; `flush` waits until the bus has it (or raises BusError)."""

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every queued message is acknowledged; BusError if any was lost."""

    def close(self) -> None: ...


class Subscription(Protocol):
    def poll(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to max_messages, waiting at most timeout seconds for the first."""

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit (topic, partition) -> next offset to read, synchronously."""

    def assignment(self) -> Partitions: ...

    def pause(self) -> None:
        """Stop fetching (e.g. while the store is down) but stay in the group."""

    def resume(self) -> None: ...

    def lag(self) -> int | None:
        """Messages behind the end of the assigned partitions, if known."""

    def close(self) -> None: ...


class Bus(Protocol):
    def ensure_topics(self, topics: Iterable[str], partitions: int) -> None: ...

    def publisher(self) -> Publisher: ...

    def subscribe(self, group: str, topics: list[str], *,
                  on_assign: RebalanceCallback | None = None,
                  on_revoke: RebalanceCallback | None = None) -> Subscription: ...

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed offsets of a topic's partitions (tests, tools)."""

    def end_offsets(self, topic: str) -> dict[int, int]: ...


# ---------------------------------------------------------------------------- wire format


class DeadBatch(msgspec.Struct, array_like=True):
    """Collector dead letters on the events topic: input that could not become events, kept
    (as DeadLetter nodes) so that nothing is lost. ``host`` keys them in the graph."""

    v: int
    host: str
    items: list[DeadLetter]


_dead_encoder = msgspec.msgpack.Encoder()
_dead_decoder = msgspec.msgpack.Decoder(DeadBatch)


def event_headers(source: str) -> dict[str, bytes]:
    return {HEADER_KIND: KIND_EVENTS, HEADER_SCHEMA: str(SCHEMA_VERSION).encode(),
            HEADER_SOURCE: source.encode()}


def encode_dead(host: str, items: list[DeadLetter]) -> bytes:
    return _dead_encoder.encode(DeadBatch(SCHEMA_VERSION, host, items))


def decode_dead(data: bytes) -> DeadBatch:
    return _dead_decoder.decode(data)


def message_key(host: str, pid: int, buckets: int) -> bytes:
    """Events of one process always get the same key, so they stay in order in one
    partition; a host's processes spread over ``buckets`` keys (1: keyed by host only)."""
    if buckets <= 1:
        return host.encode()
    return f"{host}/{pid % buckets}".encode()


def publish_events(pub: Publisher, topic: str, source: str, events: list[Event],
                   dead: list[DeadLetter], dead_host: str, *, per_message: int = 1000,
                   buckets: int = 1) -> int:
    """Publish events grouped by key (order kept within a key) in messages of at most
    ``per_message`` events, and dead letters as one message; returns messages queued."""
    groups: dict[bytes, list[Event]] = {}
    for ev in events:
        groups.setdefault(message_key(ev.host, ev.proc.pid, buckets), []).append(ev)
    headers = event_headers(source)
    sent = 0
    for key, group in groups.items():
        for i in range(0, len(group), per_message):
            pub.publish(topic, key, encode_batch(group[i:i + per_message]), headers)
            sent += 1
    if dead:
        pub.publish(topic, dead_host.encode(), encode_dead(dead_host, dead),
                    {HEADER_KIND: KIND_DEAD, HEADER_SCHEMA: str(SCHEMA_VERSION).encode(),
                     HEADER_SOURCE: source.encode()})
        sent += 1
    return sent


# ---------------------------------------------------------------------------- Kafka


def parse_kafka_url(url: str) -> str:
    """``kafka://HOST:PORT[,HOST:PORT...]`` -> bootstrap servers."""
    parsed = urlparse(url)
    if parsed.scheme != "kafka" or not parsed.netloc:
        raise BusError(f"not a Kafka URL: {url!r} (use kafka://HOST:PORT)")
    return parsed.netloc


class KafkaBus:
    """Kafka through confluent-kafka (librdkafka)."""

    def __init__(self, bootstrap: str, *, compression: str = "lz4", linger_ms: int = 20,
                 producer: dict[str, Any] | None = None,
                 consumer: dict[str, Any] | None = None,
                 replication: int = 1, session_timeout_ms: int = 10000) -> None:
        self.bootstrap = bootstrap
        self.session_timeout_ms = session_timeout_ms
        self.compression = compression
        self.linger_ms = linger_ms
        self.replication = replication
        self.producer_options = dict(producer or {})
        self.consumer_options = dict(consumer or {})

    @classmethod
    def from_config(cls, kafka: Any, bootstrap: str | None = None) -> KafkaBus:
        return cls(bootstrap or kafka.bootstrap, compression=kafka.compression,
                   linger_ms=kafka.linger_ms, producer=kafka.producer,
                   consumer=kafka.consumer, replication=kafka.replication,
                   session_timeout_ms=kafka.session_timeout_ms)

    def _admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap})

    def ensure_topics(self, topics: Iterable[str], partitions: int) -> None:
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic

        admin = self._admin()
        existing = set(admin.list_topics(timeout=10).topics)
        wanted = [NewTopic(t, partitions, self.replication) for t in topics if t not in existing]
        if not wanted:
            return
        for topic, future in admin.create_topics(wanted, operation_timeout=10).items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise BusError(f"cannot create topic {topic}: {exc}") from exc

    def publisher(self) -> KafkaPublisher:
        return KafkaPublisher(self)

    def subscribe(self, group: str, topics: list[str], *,
                  on_assign: RebalanceCallback | None = None,
                  on_revoke: RebalanceCallback | None = None) -> KafkaSubscription:
        return KafkaSubscription(self, group, topics, on_assign, on_revoke)

    def _offsets_consumer(self, group: str) -> Any:
        from confluent_kafka import Consumer

        return Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                         "enable.auto.commit": False, **self.consumer_options})

    def _partitions(self, topic: str) -> list[int]:
        md = self._admin().list_topics(topic, timeout=10)
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        return sorted(meta.partitions)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        consumer = self._offsets_consumer(group)
        try:
            tps = [TopicPartition(topic, p) for p in self._partitions(topic)]
            got = consumer.committed(tps, timeout=10)
            return {tp.partition: tp.offset for tp in got if tp.offset >= 0}
        finally:
            consumer.close()

    def end_offsets(self, topic: str) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        consumer = self._offsets_consumer("ursprung-offsets")
        try:
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in self._partitions(topic)}
        finally:
            consumer.close()


class KafkaPublisher:
    """Idempotent (no duplicates or reordering from retries), acks=all, compressed,
    batched for ``linger_ms``. Delivery failures are collected and raised by `flush`."""

    def __init__(self, bus: KafkaBus) -> None:
        from confluent_kafka import Producer

        self._producer = Producer({
            "bootstrap.servers": bus.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": bus.compression,
            "linger.ms": bus.linger_ms,
            "batch.size": 1_000_000,
            "message.max.bytes": 8_000_000,
            # Connect to the partition leaders at once, not on first use: the idempotent
            # producer asks a connected broker for its id on a 500 ms timer, and a lazy
            # connection made it miss the first tick (1.0 s instead of 0.5 s before the
            # first acknowledgement). A collector produces to every leader anyway.
            "enable.sparse.connections": False,
            **bus.producer_options,
        })
        self._failed: list[str] = []

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._failed.append(f"{msg.topic()}: {err}")

    def publish(self, topic: str, key: bytes | None, value: bytes,
                headers: dict[str, bytes] | None = None) -> None:
        while True:
            try:
                hdrs: dict[str, str | bytes | None] = dict(headers or {})
                self._producer.produce(topic, value, key, headers=hdrs,
                                       on_delivery=self._delivered)
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        left = self._producer.flush(timeout)
        if left:
            raise BusError(f"{left} message(s) not acknowledged within {timeout:.0f}s")
        if self._failed:
            failed, self._failed = self._failed, []
            raise BusError(f"{len(failed)} message(s) not delivered: {failed[0]}")

    def close(self) -> None:
        self._producer.flush(5)


class KafkaSubscription:
    """A member of a consumer group; offsets move only by `commit`."""

    def __init__(self, bus: KafkaBus, group: str, topics: list[str],
                 on_assign: RebalanceCallback | None,
                 on_revoke: RebalanceCallback | None) -> None:
        import json

        from confluent_kafka import Consumer

        self._lag: int | None = None

        def stats(text: str) -> None:
            try:
                data = json.loads(text)
                total = 0
                for t in data.get("topics", {}).values():
                    for p in t.get("partitions", {}).values():
                        if p.get("partition", -1) >= 0 and p.get("consumer_lag", -1) >= 0:
                            total += p["consumer_lag"]
                self._lag = total
            except (ValueError, AttributeError):
                pass

        self._consumer = Consumer({
            "bootstrap.servers": bus.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": bus.session_timeout_ms,
            "heartbeat.interval.ms": max(100, bus.session_timeout_ms // 5),
            "max.poll.interval.ms": 300000,
            "statistics.interval.ms": 1000,
            "stats_cb": stats,
            "fetch.wait.max.ms": FETCH_WAIT_MS,
            **bus.consumer_options,
        })
        self._user_assign = on_assign
        self._user_revoke = on_revoke
        self._paused = False
        self._consumer.subscribe(topics, on_assign=self._assigned, on_revoke=self._revoked,
                                 on_lost=self._revoked)

    def _assigned(self, consumer: Any, tps: list[Any]) -> None:
        if self._paused:
            consumer.pause(tps)
        if self._user_assign is not None:
            self._user_assign([(tp.topic, tp.partition) for tp in tps])

    def _revoked(self, consumer: Any, tps: list[Any]) -> None:
        if self._user_revoke is not None:
            self._user_revoke([(tp.topic, tp.partition) for tp in tps])

    def poll(self, max_messages: int, timeout: float) -> list[Message]:
        out: list[Message] = []
        for m in self._consumer.consume(max_messages, timeout):
            err = m.error()
            if err is not None:
                if err.code() == err._PARTITION_EOF or not err.fatal():
                    continue  # informational (EOF, transient broker errors: retried inside)
                raise BusError(f"consumer failed: {err}")
            pairs: list[tuple[str, str | bytes | None]] = list(m.headers() or [])  # type: ignore[arg-type]
            headers = {k: v for k, v in pairs if isinstance(v, bytes)}
            out.append(Message(m.topic() or "", m.partition() or 0, m.offset() or 0, m.key(),
                               m.value(), headers, m.timestamp()[1]))
        return out

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        if not offsets:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            # A rebalance took the partitions away: the new owner re-reads from the last
            # commit, which is safe (the store has this batch, writes are idempotent).
            raise BusError(f"commit refused: {exc}") from exc

    def assignment(self) -> Partitions:
        return [(tp.topic, tp.partition) for tp in self._consumer.assignment()]

    def pause(self) -> None:
        self._paused = True
        tps = self._consumer.assignment()
        if tps:
            self._consumer.pause(tps)

    def resume(self) -> None:
        self._paused = False
        tps = self._consumer.assignment()
        if tps:
            self._consumer.resume(tps)

    def lag(self) -> int | None:
        return self._lag

    def close(self) -> None:
        self._consumer.close()


# ---------------------------------------------------------------------------- in process


class InProcessBus:
    """Topics as in-memory partition logs, consumer groups with committed offsets and
    round-robin partition assignment among the group's open subscriptions. Thread-safe."""

    def __init__(self, partitions: int = 4) -> None:
        self.default_partitions = partitions
        self._lock = threading.Condition()
        self._logs: dict[str, list[list[Message]]] = {}
        self._committed: dict[tuple[str, str, int], int] = {}
        self._members: dict[str, list[InProcessSubscription]] = {}

    def ensure_topics(self, topics: Iterable[str], partitions: int) -> None:
        with self._lock:
            for t in topics:
                self._logs.setdefault(t, [[] for _ in range(partitions)])

    def _log(self, topic: str) -> list[list[Message]]:
        logs = self._logs.get(topic)
        if logs is None:
            logs = self._logs[topic] = [[] for _ in range(self.default_partitions)]
        return logs

    def _append(self, topic: str, key: bytes | None, value: bytes,
                headers: dict[str, bytes] | None) -> tuple[int, int]:
        """Append; (partition, offset) of the message."""
        with self._lock:
            logs = self._log(topic)
            p = (zlib.crc32(key) if key is not None else len(logs[0])) % len(logs)
            log = logs[p]
            log.append(Message(topic, p, len(log), key, value, dict(headers or {}),
                               int(time.time() * 1000)))
            self._lock.notify_all()
            return p, len(log) - 1

    def publisher(self, *, ack_group: str | None = None, ack_topics: Iterable[str] = (),
                  alive: Callable[[], bool] | None = None,
                  cancelled: Callable[[], bool] | None = None,
                  min_wait: float = 0.0) -> InProcessPublisher:
        """A publisher. Without ``ack_group`` its `flush` returns at once (the message is
        in memory: enough for a worker's own dead-letter publisher, and for tests). With
        it, `flush` waits until the group has committed every offset this publisher wrote
        to ``ack_topics`` (the topics the group consumes), at most max(timeout,
        ``min_wait``) seconds, and raises `BusError` then, or as soon as ``alive()`` says
        the consumer is gone or ``cancelled()`` says to stop waiting."""
        return InProcessPublisher(self, ack_group=ack_group, ack_topics=ack_topics,
                                  alive=alive, cancelled=cancelled, min_wait=min_wait)

    def subscribe(self, group: str, topics: list[str], *,
                  on_assign: RebalanceCallback | None = None,
                  on_revoke: RebalanceCallback | None = None) -> InProcessSubscription:
        sub = InProcessSubscription(self, group, topics, on_assign, on_revoke)
        with self._lock:
            self._members.setdefault(group, []).append(sub)
            self._rebalance(group)
        return sub

    def _leave(self, sub: InProcessSubscription) -> None:
        with self._lock:
            members = self._members.get(sub.group, [])
            if sub in members:
                members.remove(sub)
                sub._set_assignment([])
                self._rebalance(sub.group)

    def _rebalance(self, group: str) -> None:
        members = self._members.get(group, [])
        if not members:
            return
        topics = sorted({t for m in members for t in m.topics})
        parts = [(t, p) for t in topics for p in range(len(self._log(t)))]
        plan: dict[int, Partitions] = {i: [] for i in range(len(members))}
        for i, tp in enumerate(parts):
            plan[i % len(members)].append(tp)
        for i, member in enumerate(members):
            member._set_assignment([tp for tp in plan[i] if tp[0] in member.topics])

    def committed(self, group: str, topic: str) -> dict[int, int]:
        with self._lock:
            return {p: o for (g, t, p), o in self._committed.items() if g == group and t == topic}

    def end_offsets(self, topic: str) -> dict[int, int]:
        with self._lock:
            return {p: len(log) for p, log in enumerate(self._log(topic))}


class InProcessPublisher:
    def __init__(self, bus: InProcessBus, *, ack_group: str | None = None,
                 ack_topics: Iterable[str] = (), alive: Callable[[], bool] | None = None,
                 cancelled: Callable[[], bool] | None = None, min_wait: float = 0.0) -> None:
        self._bus = bus
        self._group = ack_group
        self._topics = frozenset(ack_topics)
        self._alive = alive
        self._cancelled = cancelled
        self._min_wait = min_wait
        self._sent: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset

    def publish(self, topic: str, key: bytes | None, value: bytes,
                headers: dict[str, bytes] | None = None) -> None:
        p, offset = self._bus._append(topic, key, value, headers)
        if self._group is not None and topic in self._topics:
            self._sent[(topic, p)] = max(self._sent.get((topic, p), 0), offset + 1)

    def flush(self, timeout: float = 30.0) -> None:
        """Without an ack group: nothing to wait for (appended synchronously). With one:
        return when the group committed past everything published here, else BusError."""
        if self._group is None or not self._sent:
            return
        timeout = max(timeout, self._min_wait)
        deadline = time.monotonic() + timeout
        lock = self._bus._lock
        with lock:
            while True:
                behind = sum(o - self._bus._committed.get((self._group, *tp), 0)
                             for tp, o in self._sent.items()
                             if self._bus._committed.get((self._group, *tp), 0) < o)
                if not behind:
                    self._sent.clear()
                    return
                if self._alive is not None and not self._alive():
                    raise BusError(f"the ingest worker stopped before the store had "
                                   f"{behind} message(s)")
                if self._cancelled is not None and self._cancelled():
                    raise BusError(f"stopping: {behind} message(s) not in the store yet")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BusError(f"{behind} message(s) not in the store within "
                                   f"{timeout:.0f}s")
                lock.wait(min(left, 0.05))

    def close(self) -> None:
        pass


class InProcessSubscription:
    def __init__(self, bus: InProcessBus, group: str, topics: list[str],
                 on_assign: RebalanceCallback | None,
                 on_revoke: RebalanceCallback | None) -> None:
        self._bus = bus
        self.group = group
        self.topics = list(topics)
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._assigned: Partitions = []
        self._positions: dict[tuple[str, int], int] = {}
        self._changes: list[tuple[str, Partitions]] = []
        self._paused = False

    def _set_assignment(self, parts: Partitions) -> None:
        # Called under the bus lock; callbacks run later, in the member's own poll.
        if parts == self._assigned:
            return
        if self._assigned:
            self._changes.append(("revoke", self._assigned))
        self._assigned = parts
        self._positions = {tp: self._bus._committed.get((self.group, *tp), 0) for tp in parts}
        if parts:
            self._changes.append(("assign", parts))

    def _callbacks(self) -> None:
        with self._bus._lock:
            changes, self._changes = self._changes, []
        for what, parts in changes:
            callback = self._on_assign if what == "assign" else self._on_revoke
            if callback is not None:
                callback(parts)

    def poll(self, max_messages: int, timeout: float) -> list[Message]:
        deadline = time.monotonic() + timeout
        self._callbacks()
        lock = self._bus._lock
        with lock:
            while True:
                out: list[Message] = []
                if not self._paused:
                    for tp in self._assigned:
                        log = self._bus._log(tp[0])[tp[1]]
                        pos = self._positions[tp]
                        take = log[pos:pos + max_messages - len(out)]
                        out.extend(take)
                        self._positions[tp] = pos + len(take)
                        if len(out) >= max_messages:
                            break
                left = deadline - time.monotonic()
                if out or left <= 0 or self._changes:
                    break
                lock.wait(left)
        self._callbacks()
        return out

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        with self._bus._lock:
            for (topic, partition), offset in offsets.items():
                if (topic, partition) not in self._assigned:
                    raise BusError(f"commit refused: {topic}/{partition} is not assigned")
                self._bus._committed[(self.group, topic, partition)] = offset
            self._bus._lock.notify_all()  # publishers waiting in flush

    def assignment(self) -> Partitions:
        return list(self._assigned)

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def lag(self) -> int | None:
        with self._bus._lock:
            return sum(len(self._bus._log(t)[p]) - pos for (t, p), pos in self._positions.items())

    def close(self) -> None:
        self._bus._leave(self)


def open_bus(url: str, config: Any = None) -> Bus:
    """``kafka://HOST:PORT`` -> KafkaBus (options from the [kafka] configuration)."""
    bootstrap = parse_kafka_url(url)
    if config is None:
        return KafkaBus(bootstrap)
    return KafkaBus.from_config(config.kafka, bootstrap)
