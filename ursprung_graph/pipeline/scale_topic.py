"""Spectrum Scale's own Kafka sink topic -> our events topic.

Scale can publish its file-audit and watch-folder records to a Kafka topic of its own; this
consumer maps them (:class:`..collectors.scale.ScaleMapper`) and publishes the events, and
commits the source offsets only after our publisher has the events, never past a move half
still waiting for its pair (that is re-read after a restart instead).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

from ..collectors.scale import SOURCE, ScaleMapper
from ..collectors.source import Chunk
from ..config import Config
from ..ingest.bus import BusError, KafkaBus, Publisher, publish_events


@dataclass(slots=True)
class TopicStats:
    records: int = 0
    events: int = 0
    dead_letters: int = 0


def consume_scale_topic(url: str, group: str, publisher: Publisher, config: Config,
                        stop: threading.Event) -> TopicStats:
    """Consume ``kafka://HOST:PORT/TOPIC`` until ``stop`` is set."""
    parsed = urlparse(url)
    topic = parsed.path.strip("/")
    if parsed.scheme != "kafka" or not parsed.netloc or not topic:
        raise BusError(f"not a Kafka topic URL: {url!r} (use kafka://HOST:PORT/TOPIC)")
    c = config.collect
    bus = KafkaBus.from_config(config.kafka, parsed.netloc)
    mapper = ScaleMapper(pair_seconds=c.pair_seconds, pair_events=c.pair_events)
    sub = bus.subscribe(group, [topic])
    stats = TopicStats()
    next_offset: dict[tuple[str, int], int] = {}
    last_data = time.monotonic()
    host = c.host or os.uname().nodename
    try:
        while not stop.is_set():
            msgs = sub.poll(1000, 0.2)
            out = Chunk()
            for m in msgs:
                mapper.feed_line(m.value or b"", f"{m.topic}/{m.partition}/{m.offset}", out)
                next_offset[(m.topic, m.partition)] = m.offset + 1
            stats.records += len(msgs)
            now = time.monotonic()
            if msgs:
                last_data = now
            elif mapper.pending and now - last_data >= c.pair_seconds:
                mapper.expire(out, everything=True)
            if out.events or out.dead:
                publish_events(publisher, config.kafka.events_topic, SOURCE, out.events,
                               out.dead, host, per_message=c.message_events)
                publisher.flush()
                stats.events += len(out.events)
                stats.dead_letters += len(out.dead)
            due = dict(next_offset)
            for mv in mapper.state.moves:
                t, p, o = mv.seq.rsplit("/", 2)
                tp = (t, int(p))
                if tp in due:
                    due[tp] = min(due[tp], int(o))
            assigned = set(sub.assignment())
            due = {tp: o for tp, o in due.items() if tp in assigned}
            if due and (msgs or out.events):
                # rebalanced away: the new owner re-reads from the last commit
                with contextlib.suppress(BusError):
                    sub.commit(due)
    finally:
        sub.close()
    return stats
