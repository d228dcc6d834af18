"""Rules on the Kafka path: `ursprung ingest --rules` workers evaluate the rules on what
they consume; a RUN rule defines the runs of a log published by a collector."""

from __future__ import annotations

import signal
from pathlib import Path

from ursprung_graph.ingest.bus import KafkaBus

from ..cluster.conftest import (  # noqa: F401 - fixtures
    Procs,
    Topics,
    broker,
    copy_fixture,
    drained,
    procs,
    topics,
    wait_until,
)


def test_ingest_workers_run_the_rules(procs: Procs, topics: Topics, broker: str,  # noqa: F811
                                      store, tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text('kind=exec && proc.argv@".*train\\.py --lr.*" -> RUN train\n')
    log = copy_fixture("two_runs.audit.log", tmp_path / "a" / "audit.log")
    url = f"kafka://{broker}"
    workers = procs.start("ingest", "ingest", "--from", url, "--rules", str(rules))
    r = procs.run("collect", "auditd", str(log), "--host", "nodeB", "--to", url)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: drained(KafkaBus(broker), topics), 90, "the worker to commit", 0.5)

    def runs() -> list[dict]:
        return store.read("MATCH (x:PipelineRun {origin: 'rule'}) RETURN x.params AS p")

    wait_until(lambda: len(runs()) == 2, 30, "the RUN rule's runs", 0.5)
    workers.send_signal(signal.SIGTERM)
    assert workers.wait(30) == 0, procs.log(workers)
    assert sorted('"lr": "0.1"' in r["p"] or '"lr": "0.2"' in r["p"] for r in runs()) == \
        [True, True]
