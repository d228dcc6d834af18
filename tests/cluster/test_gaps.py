"""The ingest lag at query time, from a real Kafka-protocol broker: what is published but
not committed by the ingest group, in the API of the bus and in `ursprung db status`."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ursprung_graph.ingest.bus import KafkaBus
from ursprung_graph.ingest.lag import ingest_lag

from .conftest import Topics, ursprung_cmd


def test_the_lag_is_what_the_group_has_not_committed(broker: str, kafka: KafkaBus,
                                                     topics: Topics, tmp_path: Path) -> None:
    pub = kafka.publisher()
    for i in range(5):
        pub.publish(topics.events, f"k{i}".encode(), b"x")
        # one message per batch: the Tansu broker's high watermark moves by one per record
        # batch, not per message (Kafka's moves per message)
        pub.flush()
    lag = ingest_lag(kafka, topics.group, topics.events)
    assert (lag.messages, lag.partitions, lag.group) == (5, topics.partitions, topics.group)
    env = {k: v for k, v in os.environ.items() if not k.startswith("URSPRUNG_")}
    env.update(topics.env(), URSPRUNG_HOME=str(tmp_path / "home"))
    shown = subprocess.run(ursprung_cmd("db", "status", "--kafka", f"kafka://{broker}"),
                           capture_output=True, text=True, env=env, timeout=120)
    assert f"ingest lag ({topics.group} on {topics.events}, {topics.partitions} partitions): " \
        "5 messages not yet in the store" in shown.stdout, shown.stdout + shown.stderr
    sub = kafka.subscribe(topics.group, [topics.events])
    try:
        seen: list = []
        deadline = time.monotonic() + 60
        while len(seen) < 5 and time.monotonic() < deadline:
            seen += sub.poll(100, 0.5)
        assert len(seen) == 5
        sub.commit({(m.topic, m.partition): m.offset + 1 for m in seen})
    finally:
        sub.close()
    assert ingest_lag(kafka, topics.group, topics.events).messages == 0
