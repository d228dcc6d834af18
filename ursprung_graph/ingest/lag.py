"""How far the store is behind the bus: messages published to the events topic that the
ingest group has not committed yet (Kafka's committed offsets against the high watermarks).
Asked at query time, never stored: a lag is not a loss, only not-yet."""

from __future__ import annotations

import msgspec

from .bus import Bus, BusError


class IngestLag(msgspec.Struct, frozen=True):
    """``messages`` not yet ingested by ``group`` from ``topic`` (each carries up to
    ``collect.message_events`` events), over ``partitions`` partitions."""

    group: str
    topic: str
    messages: int
    partitions: int


def ingest_lag(bus: Bus, group: str, topic: str) -> IngestLag:
    """The lag of ``group`` on ``topic``; a partition the group never committed counts
    from its start."""
    from confluent_kafka import KafkaException

    try:
        ends = bus.end_offsets(topic)
        committed = bus.committed(group, topic)
    except KafkaException as exc:
        raise BusError(f"the broker did not say ({exc})") from exc
    behind = sum(max(0, end - committed.get(p, 0)) for p, end in ends.items())
    return IngestLag(group=group, topic=topic, messages=behind, partitions=len(ends))
