"""The ingest worker against a real broker and store: bad input goes to the dead-letter
topic with reasons and the stream goes on; metrics and health; and the in-process bus."""

from __future__ import annotations

import json
import threading
import urllib.request

import msgspec

from tests.events import Script
from tests.graphdump import dump
from ursprung_graph.ingest.bus import (
    HEADER_KIND,
    HEADER_ORIGIN,
    HEADER_REASON,
    HEADER_SCHEMA,
    InProcessBus,
    KafkaBus,
    encode_dead,
    event_headers,
)
from ursprung_graph.ingest.metrics import Metrics, MetricsServer
from ursprung_graph.ingest.upserts import Batch
from ursprung_graph.ingest.worker import (
    IngestWorker,
    OffsetTracker,
    StoreDeadLetters,
    WorkerOptions,
)
from ursprung_graph.schema.event import DeadLetter, encode_batch
from ursprung_graph.store.falkordb import FalkorDBStore

from .conftest import Topics, wait_until


def story(host: str = "h1") -> list:
    s = Script(host)
    sh = s.proc(100, 1, ["bash"])
    py = s.proc(101, 2, ["python3", "train.py"])
    s.fork(2, sh, py)
    s.exec(2, py, "/usr/bin/python3")
    s.read(3, py, "/data/in.csv")
    s.write(4, py, "/data/model.bin")
    s.exit(5, py)
    return s.events


def expected_graph(store: FalkorDBStore, events: list, dead: list[tuple[DeadLetter, str]]
                   ) -> tuple:
    b = Batch()
    for ev in events:
        b.add(ev)
    for d, host in dead:
        b.add_dead(d, host)
    store.write(b.statements())
    out = dump(store)
    store.clear()
    store.ensure_schema()
    return out


def run_worker(bus, store, topics: Topics, dead_letters=None, **kw):
    stop = threading.Event()
    metrics = Metrics("t")
    observe = kw.pop("observe", None)
    opts = WorkerOptions(events_topic=topics.events, deadletter_topic=topics.dead,
                         group=topics.group, batch_seconds=0.05, resolve_wait=0.5, **kw)
    worker = IngestWorker(bus, store, opts, metrics=metrics, dead_letters=dead_letters,
                          observe=observe)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    return worker, stop, thread, metrics


def drained_on(bus, topics: Topics) -> bool:
    ends = {p: o for p, o in bus.end_offsets(topics.events).items() if o}
    done = bus.committed(topics.group, topics.events)
    return all(done.get(p, 0) >= o for p, o in ends.items())


def test_bad_input_goes_to_the_dead_letter_topic(
        kafka: KafkaBus, topics: Topics, store: FalkorDBStore) -> None:
    good = story()
    later = story("h2")
    collector_dead = [DeadLetter(source="auditd", reason="malformed SYSCALL", raw="type=SY",
                                 where="/var/log/audit/audit.log:77")]
    expected = expected_graph(store, good + later, [(d, "h1") for d in collector_dead])

    wrong_version = msgspec.msgpack.encode([msgspec.structs.replace(good[0], v=99)])
    bad = [
        (b"junk", b"\x00\x01garbage\xff", event_headers("auditd"), "not a batch"),
        (b"old", wrong_version, event_headers("auditd"), "schema version 99"),
        (b"trunc", encode_batch(good)[:-7], event_headers("auditd"), "not a batch"),
        (b"hdr", encode_batch(good), {**event_headers("auditd"), HEADER_SCHEMA: b"7"},
         "schema version '7'"),
        (b"kind", encode_batch(good), {HEADER_KIND: b"pictures"}, "unknown message kind"),
        (b"deadjunk", b"\x93\x01", {HEADER_KIND: b"dead"}, "not a batch of dead letters"),
        (b"empty", b"", event_headers("auditd"), "empty message"),
    ]
    pub = kafka.publisher()
    pub.publish(topics.events, b"h1", encode_batch(good), event_headers("auditd"))
    for key, value, headers, _ in bad:
        pub.publish(topics.events, key, value, headers)
    pub.publish(topics.events, b"h1", encode_dead("h1", collector_dead),
                {HEADER_KIND: b"dead", HEADER_SCHEMA: b"1"})
    pub.publish(topics.events, b"h2", encode_batch(later), event_headers("auditd"))
    pub.flush()

    worker, stop, thread, metrics = run_worker(kafka, store, topics)
    server = MetricsServer(metrics).start()
    try:
        wait_until(lambda: drained_on(kafka, topics), 60, "all messages committed", 0.3)
        assert dump(store) == expected  # the good messages, before and after the bad ones
        dlq = kafka.subscribe(f"{topics.group}-dlq", [topics.dead])
        got = []
        wait_until(lambda: got.extend(dlq.poll(100, 0.5)) or len(got) >= len(bad), 30,
                   "the dead letters")
        dlq.close()
        by_key = {m.key: m for m in got}
        assert len(got) == len(bad)
        for key, value, _, reason in bad:
            m = by_key[key]
            assert reason in m.headers[HEADER_REASON].decode(), (key, m.headers)
            assert m.value == value  # the original bytes, for inspection or replay
            assert m.headers[HEADER_ORIGIN].decode().startswith(topics.events + "/")
        assert metrics.value("ursprung_ingest_dead_letters_total") == len(bad)
        assert metrics.value("ursprung_ingest_messages_total", result="ok") == 2
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as r:
            text = r.read().decode()
        assert "ursprung_ingest_events_written_total" in text
        assert "ursprung_ingest_batch_seconds_bucket" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz") as r:
            health = json.loads(r.read())
        assert r.status == 200 and health["status"] == "ok" and health["store_ok"]
        assert server.host == "127.0.0.1"
    finally:
        stop.set()
        thread.join(30)
        server.stop()
    assert not thread.is_alive()


def test_in_process_bus_group_rebalances_without_loss(store: FalkorDBStore) -> None:
    """Two workers on the in-process bus; one leaves half way; the other takes over its
    partitions from the last commit: the graph is complete and nothing is left behind."""
    bus = InProcessBus(partitions=4)
    topics = Topics()
    events = []
    for h in range(8):
        events += story(f"host{h}")
    expected = expected_graph(store, events, [])
    pub = bus.publisher()
    half = len(events) // 2
    for ev in events[:half]:
        pub.publish(topics.events, ev.host.encode(), encode_batch([ev]), event_headers("t"))
    w1 = run_worker(bus, store, topics)
    w2 = run_worker(bus, store, topics)
    wait_until(lambda: drained_on(bus, topics), 30, "the first half")
    assert w1[0]._sub.assignment() and w2[0]._sub.assignment()
    w2[1].set()
    w2[2].join(10)
    for ev in events[half:]:
        pub.publish(topics.events, ev.host.encode(), encode_batch([ev]), event_headers("t"))
    wait_until(lambda: drained_on(bus, topics), 30, "the second half")
    assert len(w1[0]._sub.assignment()) == 4
    w1[1].set()
    w1[2].join(10)
    assert dump(store) == expected
    assert w1[3].value("ursprung_ingest_rebalances_total", what="revoke") >= 1


def test_offsets_commit_below_the_oldest_unfinished_message() -> None:
    t = OffsetTracker()
    tp = ("ev", 0)
    for o in (5, 6, 7):
        t.add(tp, o)
    t.done(tp, 5)
    t.done(tp, 7)
    assert t.due([tp]) == {tp: 6}  # 6 is still waiting: 7 is written but not committed
    t.committed[tp] = 6
    assert t.due([tp]) == {}
    t.done(tp, 6)
    assert t.due([tp]) == {tp: 8}
    assert t.due([]) == {}  # only partitions still assigned
    t.forget([tp])
    assert t.due([tp]) == {}


def test_in_process_bus_keeps_its_dead_letters_in_the_store(store: FalkorDBStore) -> None:
    """On the single-machine path the dead-letter topic would be memory, gone at exit: the
    worker's dead letters become DeadLetter nodes with the reason and where they came from,
    and the good messages around them are written."""
    topics = Topics()
    bus = InProcessBus(partitions=2)
    bus.ensure_topics([topics.events, topics.dead], 2)
    good = story()
    expected_events = expected_graph(store, good, [])
    pub = bus.publisher()
    pub.publish(topics.events, b"h1", b"\x00junk\xff" + b"x" * 5000, event_headers("auditd"))
    pub.publish(topics.events, b"h1", encode_batch(good), event_headers("auditd"))
    worker, stop, thread, _ = run_worker(bus, store, topics, dead_letters=StoreDeadLetters(store))
    try:
        wait_until(lambda: drained_on(bus, topics), 30, "all messages committed", 0.1)
    finally:
        stop.set()
        thread.join(30)
    rows = store.read("MATCH (d:DeadLetter) RETURN d.source AS source, d.reason AS reason, "
                      "d.where AS where, d.host AS host, d.raw AS raw")
    assert len(rows) == 1
    row = rows[0]
    assert row["source"] == "ingest" and row["host"] == "h1"
    assert "not a batch" in row["reason"]
    assert row["where"].startswith(f"{topics.events}/")
    assert row["raw"].startswith("\\x00junk\\xff") and row["raw"].endswith("(5,006 bytes in all)")
    assert bus.end_offsets(topics.dead) in ({}, {0: 0, 1: 0})  # nothing left in memory
    nodes, edges = dump(store)
    assert ([n for n in nodes if '"DeadLetter"' not in n], edges) == expected_events


def test_a_backlog_is_written_in_batches_of_the_configured_size(store: FalkorDBStore) -> None:
    """Fifty messages wait on the bus; with ``batch_events`` 20 every write holds at most
    20 events plus the rest of the message that crossed the limit (a poll takes up to 500
    messages: the rest waits for the next batch), and nothing is lost."""
    bus = InProcessBus(partitions=1)
    topics = Topics()
    stories = [story(f"host{h}") for h in range(50)]
    events = [ev for s in stories for ev in s]
    expected = expected_graph(store, events, [])
    pub = bus.publisher()
    for s in stories:  # one message each
        pub.publish(topics.events, b"k", encode_batch(s), event_headers("t"))
    sizes: list[int] = []
    worker, stop, thread, _ = run_worker(bus, store, topics, batch_events=20,
                                         observe=lambda evs: sizes.append(len(evs)))
    try:
        wait_until(lambda: drained_on(bus, topics), 30, "the backlog")
    finally:
        stop.set()
        thread.join(30)
    per_message = len(stories[0])
    assert sum(sizes) == len(events)
    assert max(sizes) <= 20 + per_message - 1 and len(sizes) >= len(events) // 24
    assert dump(store) == expected
