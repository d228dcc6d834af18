"""Faults on the cluster path: an ingest worker killed with SIGKILL at random points, a
collector killed and restarted, the store stopped during ingestion. Each time the final
graph must equal the clean local import: nothing missing, nothing doubled."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.graphdump import dump
from ursprung_graph.config import Settings
from ursprung_graph.ingest.bus import KafkaBus
from ursprung_graph.store.cypher import Cypher
from ursprung_graph.store.embedded import EmbeddedServer
from ursprung_graph.store.falkordb import FalkorDBStore

from .conftest import Procs, Topics, copy_fixture, drained, free_port, wait_until
from .reference import local_import, make_scale_events

#: Small messages and batches: many commit points for a kill to fall between.
FINE = {"URSPRUNG_COLLECT_MESSAGE_EVENTS": "50", "URSPRUNG_COLLECT_CHUNK_EVENTS": "400",
        "URSPRUNG_INGEST_BATCH_EVENTS": "300"}
ANY_PROCESS = Cypher("MATCH (p:Process) RETURN p.key AS key LIMIT 1")


def three_hosts(tmp: Path, reference: FalkorDBStore) -> tuple[list[tuple[Path, str]], Path]:
    audit = [(copy_fixture("pipeline.audit.log", tmp / "a" / "audit.log"), "nodeA"),
             (copy_fixture("two_runs.audit.log", tmp / "b" / "audit.log"), "nodeB"),
             (copy_fixture("pipeline.enriched.audit.log", tmp / "c" / "audit.log"), "nodeC")]
    local_import(reference, audit, [])
    scale = make_scale_events(reference, "nodeB", tmp / "scale.jsonl", seed=3)
    reference.clear()
    reference.ensure_schema()
    local_import(reference, audit, [scale])
    return audit, scale


def publish(procs: Procs, url: str, audit: list[tuple[Path, str]], scale: Path) -> None:
    for path, host in audit:
        r = procs.run("collect", "auditd", str(path), "--host", host, "--to", url)
        assert r.returncode == 0, r.stderr
    r = procs.run("collect", "scale", str(scale), "--to", url)
    assert r.returncode == 0, r.stderr


def committed_fraction(bus: KafkaBus, topics: Topics) -> float:
    ends = bus.end_offsets(topics.events)
    done = bus.committed(topics.group, topics.events)
    total = sum(ends.values())
    return sum(min(done.get(p, 0), o) for p, o in ends.items()) / total if total else 0.0


def test_ingest_worker_killed_at_random_points(
        procs: Procs, topics: Topics, broker: str, store: FalkorDBStore,
        reference_store: FalkorDBStore, tmp_path: Path) -> None:
    audit, scale = three_hosts(tmp_path, reference_store)
    expected = dump(reference_store)
    url = f"kafka://{broker}"
    procs.env.update(FINE)
    procs.env["URSPRUNG_INGEST_RESOLVE_WAIT"] = "2"  # all audit data is published first
    publish(procs, url, audit, scale)
    bus = KafkaBus(broker)
    rng = random.Random(20240)
    killed_mid_way = 0
    for trial in range(3):
        # The same published input, consumed afresh: a new group into an empty graph.
        store.clear()
        store.ensure_schema()
        topics.group = f"{topics.group.split('~')[0]}~{trial}"
        env = {"URSPRUNG_INGEST_GROUP": topics.group}
        workers = [procs.start(f"w{trial}", "ingest", "--from", url, extra_env=env)
                   for _ in range(2)]
        at = rng.uniform(0.05, 0.7)
        victim = rng.randrange(2)
        wait_until(lambda: committed_fraction(bus, topics) >= at, 60,  # noqa: B023
                   f"progress {at:.2f}", 0.05)
        os.kill(workers[victim].pid, signal.SIGKILL)
        workers[victim].wait()
        if committed_fraction(bus, topics) < 1.0:
            killed_mid_way += 1
        time.sleep(rng.uniform(0, 1.0))
        workers[victim] = procs.start(f"w{trial}r", "ingest", "--from", url, extra_env=env)
        wait_until(lambda: drained(bus, topics), 90, "everything committed", 0.3)
        assert dump(store) == expected, f"trial {trial}: killed worker {victim} at {at:.2f}"
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(30) == 0, procs.log(w)
    assert killed_mid_way >= 2  # the kills did land during ingestion


def test_collector_killed_and_restarted(
        procs: Procs, topics: Topics, broker: str, store: FalkorDBStore,
        reference_store: FalkorDBStore, tmp_path: Path) -> None:
    """A following collector killed with SIGKILL while its log grows, restarted from its
    checkpoint each time (once without it, as when killed before its first checkpoint: it
    reads the log again from the start, which misses nothing, so it is no gap), and finally
    stopped with SIGTERM (flush and clean exit)."""
    source = copy_fixture("pipeline.audit.log", tmp_path / "src.log")
    local_import(reference_store, [(source, "nodeA")], [])
    expected = dump(reference_store)
    url = f"kafka://{broker}"
    procs.env.update(FINE)
    procs.env["URSPRUNG_COLLECT_FLUSH_SECONDS"] = "0.1"
    worker = procs.start("worker", "ingest", "--from", url)
    log = tmp_path / "node" / "audit.log"
    log.parent.mkdir()
    lines = source.read_bytes().splitlines(keepends=True)
    rng = random.Random(99)
    cuts = sorted(rng.sample(range(1, len(lines)), 4)) + [len(lines)]
    args = ("collect", "auditd", str(log), "--follow", "--host", "nodeA", "--to", url)
    collector = procs.start("collector", *args)
    written = 0
    with log.open("ab") as fh:
        for i, cut in enumerate(cuts):
            fh.writelines(lines[written:cut])
            fh.flush()
            written = cut
            if i < len(cuts) - 1:
                time.sleep(rng.uniform(0.2, 0.8))
                os.kill(collector.pid, signal.SIGKILL)
                collector.wait()
                if i == 1:
                    wait_until(lambda: bool(store.read(ANY_PROCESS)), 60, "some processes")
                    shutil.rmtree(tmp_path / "checkpoints")
                collector = procs.start("collector", *args)
    bus = KafkaBus(broker)
    wait_until(lambda: dump(store) == expected, 60, "the graph of the whole log", 0.5)
    collector.send_signal(signal.SIGTERM)
    assert collector.wait(30) == 0, procs.log(collector)
    assert "events" in procs.log(collector)
    wait_until(lambda: drained(bus, topics), 30, "everything committed", 0.3)
    assert dump(store) == expected
    # Restarted once more, it resumes at the end: nothing is published again.
    before = sum(bus.end_offsets(topics.events).values())
    r = procs.run("collect", "auditd", str(log), "--host", "nodeA", "--to", url)
    assert r.returncode == 0 and "resumed at byte" in r.stderr, r.stderr
    assert sum(bus.end_offsets(topics.events).values()) - before <= 1
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_store_stopped_during_ingestion(
        procs: Procs, topics: Topics, broker: str, reference_store: FalkorDBStore,
        settings: Settings, tmp_path: Path) -> None:
    """Workers retry with backoff while the store is down and commit nothing meanwhile;
    health says so; after the store is back the graph is complete."""
    audit = [(copy_fixture("pipeline.audit.log", tmp_path / "a.log"), "nodeA"),
             (copy_fixture("two_runs.audit.log", tmp_path / "b.log"), "nodeB")]
    local_import(reference_store, audit, [])
    expected = dump(reference_store)
    # A store of its own, so that stopping it disturbs no other test.
    home = tmp_path / "home"
    server = EmbeddedServer(home / "falkordb")
    server.start()
    try:
        url = f"kafka://{broker}"
        procs.env.update(FINE)
        procs.env.update({"URSPRUNG_HOME": str(home), "URSPRUNG_INGEST_RETRY_MAX": "0.5"})
        port = free_port()
        worker = procs.start("worker", "ingest", "--from", url, "--metrics-port", str(port))
        publish_one = procs.run("collect", "auditd", str(audit[0][0]), "--host", "nodeA",
                                "--to", url)
        assert publish_one.returncode == 0, publish_one.stderr
        bus = KafkaBus(broker)
        wait_until(lambda: drained(bus, topics), 60, "the first host committed", 0.3)
        server.stop()
        r = procs.run("collect", "auditd", str(audit[1][0]), "--host", "nodeB", "--to", url)
        assert r.returncode == 0, r.stderr
        held = bus.committed(topics.group, topics.events)
        wait_until(lambda: _get(f"http://127.0.0.1:{port}/healthz")[0] == 503, 30,
                   "the health endpoint to report the store down")
        time.sleep(2.0)  # several retries
        assert bus.committed(topics.group, topics.events) == held  # nothing committed
        assert not drained(bus, topics)
        status, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        errors = [float(line.split()[-1]) for line in metrics.splitlines()
                  if line.startswith("ursprung_ingest_store_errors_total")]
        assert errors and errors[0] >= 2
        server.start()
        wait_until(lambda: drained(bus, topics), 60, "everything committed after restart", 0.3)
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(body)["store_ok"] is True
        s = FalkorDBStore(unix_socket=str(server.socket), graph=settings.graph)
        try:
            assert dump(s) == expected
        finally:
            s.close()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, procs.log(worker)
    finally:
        server.stop()
