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
