"""End to end through a real broker: collectors publish a recorded audit log (two hosts)
and a file of Spectrum Scale events, two ingest workers consume them, and the graph equals a
direct local import of the same input."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.graphdump import dump
from ursprung_graph.ingest.bus import KafkaBus
from ursprung_graph.store.falkordb import FalkorDBStore

from .conftest import Procs, Topics, copy_fixture, drained, wait_until
from .reference import local_import, make_scale_events


def inputs(tmp: Path, reference: FalkorDBStore) -> tuple[list[tuple[Path, str]], Path]:
    audit = [(copy_fixture("pipeline.audit.log", tmp / "a" / "audit.log"), "nodeA"),
             (copy_fixture("two_runs.audit.log", tmp / "b" / "audit.log"), "nodeB")]
    local_import(reference, audit, [])
    scale = make_scale_events(reference, "nodeA", tmp / "scale.jsonl")
    reference.clear()
    reference.ensure_schema()
    local_import(reference, audit, [scale])
    return audit, scale


def test_collectors_to_two_workers_equals_local_import(
        procs: Procs, topics: Topics, broker: str, store: FalkorDBStore,
        reference_store: FalkorDBStore, tmp_path: Path) -> None:
    audit, scale = inputs(tmp_path, reference_store)
    expected = dump(reference_store)
    # Scale events really were linked to audited processes (not all to start 0).
    linked = reference_store.read(
        "MATCH (p:Process)-[:READ|WROTE]->(f:File) WHERE f.fs = 'gpfs0' AND p.start > 0 "
        "RETURN count(DISTINCT p) AS n")[0]["n"]
    assert linked >= 5

    url = f"kafka://{broker}"
    workers = procs.start("ingest", "ingest", "--from", url, "--workers", "2")
    # Scale first: its events must wait for the audit stream of their host.
    r = procs.run("collect", "scale", str(scale), "--to", url)
    assert r.returncode == 0, r.stderr
    assert "1 dead letters" in r.stderr
    for path, host in audit:
        r = procs.run("collect", "auditd", str(path), "--host", host, "--to", url)
        assert r.returncode == 0, r.stderr
    bus = KafkaBus(broker)
    wait_until(lambda: drained(bus, topics), 90, "the workers to commit everything", 0.5)
    assert dump(store) == expected
    # Both workers had partitions (a consumer group of two).
    workers.send_signal(signal.SIGTERM)
    assert workers.wait(30) == 0, procs.log(workers)
    log = procs.log(workers)
    assert "worker 0:" in log and "worker 1:" in log


def test_scale_from_its_kafka_sink_topic_equals_local_import(
        procs: Procs, topics: Topics, broker: str, store: FalkorDBStore,
        reference_store: FalkorDBStore, tmp_path: Path) -> None:
    """`collect scale --from kafka://.../TOPIC` reads Scale's own sink topic (one JSON event
    per message, as mmwatch's Kafka sink writes them) instead of a file: same graph, and it
    commits its source offsets, so a restart does not read the topic again."""
    audit, scale = inputs(tmp_path, reference_store)
    expected = dump(reference_store)
    url = f"kafka://{broker}"
    sink_topic = f"{topics.events}.gpfs-sink"
    bus = KafkaBus(broker)
    bus.ensure_topics([sink_topic], 1)
    pub = bus.publisher()
    lines = scale.read_bytes().splitlines()
    for line in lines:
        pub.publish(sink_topic, None, line)
    pub.flush()

    procs.start("ingest", "ingest", "--from", url, "--workers", "2")
    group = f"{topics.group}-scale"
    scale_collector = procs.start("scale", "collect", "scale", "--from",
                                  f"{url}/{sink_topic}", "--group", group, "--to", url)
    for path, host in audit:
        r = procs.run("collect", "auditd", str(path), "--host", host, "--to", url)
        assert r.returncode == 0, r.stderr

    def read_whole_sink() -> bool:
        return bus.committed(group, sink_topic).get(0, 0) >= len(lines)

    wait_until(read_whole_sink, 90, "the Scale collector to commit the sink topic", 0.5)
    wait_until(lambda: drained(bus, topics), 90, "the workers to commit everything", 0.5)
    scale_collector.send_signal(signal.SIGTERM)
    assert scale_collector.wait(30) == 0, procs.log(scale_collector)
    assert f"{len(lines):,} records" in procs.log(scale_collector)
    assert "1 dead letters" in procs.log(scale_collector)
    # The same graph; only the dead letter's origin is a topic position, not a file line.
    nodes, edges = dump(store)
    dead = [n for n in nodes if '"DeadLetter"' in n]
    assert (nodes, edges) == (sorted([n for n in expected[0] if '"DeadLetter"' not in n]
                                     + dead), expected[1])
    assert len(dead) == 1 and f'"where": "{sink_topic}/0/' in dead[0]
    assert '"raw": "{not json"' in dead[0]
