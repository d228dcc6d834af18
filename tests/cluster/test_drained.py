"""The tests' `drained` check against the real broker: Tansu's end offset of a partition is
the base of its last record batch + 1, so a fetch decides."""

from __future__ import annotations

from confluent_kafka import Producer

from ursprung_graph.ingest.bus import KafkaBus

from .conftest import Topics, nothing_after


def test_a_fetch_finds_what_the_end_offset_hides(broker: str, topics: Topics) -> None:
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 500})
    for i in range(300):
        producer.produce(topics.events, value=b"m%d" % i, partition=0)
    producer.flush(30)
    bus = KafkaBus(broker)
    end = bus.end_offsets(topics.events)[0]
    assert 0 < end <= 300
    assert not nothing_after(bus, topics.events, {0: end}) or end == 300
    assert not nothing_after(bus, topics.events, {0: 299})
    assert nothing_after(bus, topics.events, {0: 300, 1: 0})
