"""The cluster path into a real Neo4j: an ingest worker consuming from the real broker,
SIGKILLed mid-stream and restarted; the graph equals a clean import into the same Neo4j."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from tests.backends.conftest import neo4j_store
from tests.graphdump import dump
from tests.neo4j_server import Neo4jTarget
from ursprung_graph.ingest.bus import KafkaBus
from ursprung_graph.pipeline.importer import import_file

from .conftest import Procs, Topics, copy_fixture, wait_until
from .test_faults import FINE, committed_fraction


def test_kafka_fed_worker_killed_mid_stream_into_neo4j(
        procs: Procs, topics: Topics, broker: str, neo4j_target: Neo4jTarget,
        tmp_path: Path) -> None:
    log = copy_fixture("pipeline.audit.log", tmp_path / "audit.log")
    store = neo4j_store(neo4j_target)
    try:
        import_file(store, log, host="nodeA")
        clean = dump(store)
        store.clear()
        store.ensure_schema()

        url = f"kafka://{broker}"
        # One event per message: a poll takes at most 500 messages into a batch, so the
        # 4,769 events are about ten batches, each committed after its write.
        procs.env.update({**FINE, "URSPRUNG_COLLECT_MESSAGE_EVENTS": "1",
                          "URSPRUNG_STORE": neo4j_target.uri})
        if neo4j_target.user:
            procs.env["URSPRUNG_STORE_USER"] = neo4j_target.user
            procs.env["URSPRUNG_STORE_PASSWORD"] = neo4j_target.password or ""
        r = procs.run("collect", "auditd", str(log), "--host", "nodeA", "--to", url)
        assert r.returncode == 0, r.stderr

        bus = KafkaBus(broker)
        worker = procs.start("w", "ingest", "--from", url)
        wait_until(lambda: committed_fraction(bus, topics) > 0, 60, "a first commit", 0.02)
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait() == -signal.SIGKILL
        assert committed_fraction(bus, topics) < 1.0, "the worker finished before the kill"
        assert dump(store) != clean  # a partial graph

        worker = procs.start("w-restarted", "ingest", "--from", url)
        # Not `drained`: Tansu reports the end of a partition as the start of its last
        # record batch + 1, so the tail of a long final batch would not be waited for.
        wait_until(lambda: dump(store) == clean, 90, "the graph of the clean import", 0.5)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, procs.log(worker)
        assert dump(store) == clean  # nothing lost, nothing doubled
        published = re.search(r"in ([0-9,]+) messages", r.stdout + r.stderr)
        assert published is not None, r.stderr
        assert sum(bus.committed(topics.group, topics.events).values()) == \
            int(published.group(1).replace(",", ""))  # every message written and committed
    finally:
        store.clear()
        store.close()
