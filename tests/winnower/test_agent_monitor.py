"""Agents and monitor as the separate processes they are, over a real Kafka broker, on real
audit logs: three nodes ran the same pipeline, a fourth another one. Only the fourth's
behaviour is anomalous; drill finds its concrete events in that node's own archive; a
message that is not a delta is a dead letter; the stored model is MERGE-idempotent."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path

from tests.runs.helpers import URSPRUNG, cli_env, ursprung
from ursprung_graph.collectors.auditd.source import normalize_file
from ursprung_graph.ingest.bus import KafkaBus
from ursprung_graph.schema.event import Event
from ursprung_graph.winnower import persist
from ursprung_graph.winnower.abstraction import Abstractor
from ursprung_graph.winnower.delta import Ordinals
from ursprung_graph.winnower.induction import induce
from ursprung_graph.winnower.model import canonical, merge
from ursprung_graph.winnower.pgraph import graph_of_events

DATA = Path(__file__).resolve().parents[1] / "data"
NODES = {"a": "pipeline.audit.log", "b": "pipeline.audit.log", "c": "pipeline.audit.log",
         "d": "two_runs.audit.log"}
_ids = itertools.count()


def test_agents_send_deltas_monitor_keeps_the_model_anomalies_and_drill(
        tmp_path: Path, settings, broker: str):
    prefix = f"w{os.getpid()}x{next(_ids)}"
    env = cli_env(settings, URSPRUNG_KAFKA_SESSION_TIMEOUT_MS="2000")
    url = f"kafka://{broker}"
    bus = KafkaBus(broker)
    bus.ensure_topics([f"{prefix}.deltas", f"{prefix}.model", f"{prefix}.deadletter"], 1)
    pub = bus.publisher()
    pub.publish(f"{prefix}.deltas", b"x", b"not a delta")
    pub.flush()
    monitor = subprocess.Popen([URSPRUNG, "winnower", "monitor", "--from", url, "--topics",
                                prefix, "--idle-exit", "6"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for node, log in NODES.items():
            out = ursprung(settings, "winnower", "agent", "--log", str(DATA / log), "--to", url,
                           "--node", node, "--topics", prefix, "--epoch-seconds", "3600",
                           "--state-dir", str(tmp_path / node), env=env)
            assert out.returncode == 0, out.stderr
            assert b"new states" in out.stdout
        stdout, stderr = monitor.communicate(timeout=120)
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.wait()
    assert monitor.returncode == 0, stderr
    assert b"from 4 nodes" in stdout and b"1 dead letters" in stdout

    report = json.loads(ursprung(settings, "winnower", "anomalies", "--json",
                                 check=True).stdout)
    assert report["origins"] == ["a", "b", "c", "d"]
    assert report["anomalies"]
    assert all(a["origins"].keys() == {"d"} for a in report["anomalies"])
    assert any("bin/train.py" in a["source"] for a in report["anomalies"])
    first = report["anomalies"][0]
    table = ursprung(settings, "winnower", "anomalies", check=True).stdout
    assert b"4 nodes" in table and b"seen on: d" in table

    drilled = json.loads(ursprung(settings, "winnower", "drill", *map(str, first["ids"]),
                                  "--node", "d", "--state-dir", str(tmp_path / "d"), "--json",
                                  check=True).stdout)
    assert drilled and all(f["id"] in first["ids"] for f in drilled)
    assert all((f["vertex"] or f["source"])["host"] == "d" for f in drilled)
    elsewhere = json.loads(ursprung(settings, "winnower", "drill", *map(str, first["ids"]),
                                    "--node", "a", "--state-dir", str(tmp_path / "a"),
                                    "--json", check=True).stdout)
    assert elsewhere == []

    missing = ursprung(settings, "winnower", "anomalies", "--model", "nope")
    assert missing.returncode == 1 and b"no Winnower model 'nope'" in missing.stderr


def test_stored_model_is_merge_idempotent(store):
    events = [e for e in normalize_file(str(DATA / "two_runs.audit.log"), "n")
              if isinstance(e, Event)]
    graph = graph_of_events(events)
    model = merge(induce(graph, Abstractor(), k=1, origin="n1").model,
                  induce(graph, Abstractor(), k=1, origin="n2").model)
    order = Ordinals()
    order.cover(model)
    persist.save(store, "m", model, order, epoch=3)
    persist.save(store, "m", model, order, epoch=3)
    # parts again, in another order
    persist.save(store, "m", model, order, states=sorted(model.states, reverse=True),
                 transitions=list(model.transitions)[::-1][:50])
    loaded = persist.load(store, "m")
    assert loaded is not None and canonical(loaded[0]) == canonical(model)
    assert loaded[1].states == order.states  # the monitor's ordinals survive a restart
    assert loaded[1].transitions == order.transitions
    rows = store.read(persist.READ_STATES, {"name": "m"})
    assert len(rows) == len(model.states)
    assert len(store.read(persist.READ_TRANSITIONS, {"name": "m"})) == len(model.transitions)
    assert persist.model_names(store) == ["m"]
    assert persist.load(store, "other") is None
