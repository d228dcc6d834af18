"""The replicated cluster, recorded with the real kernel audit subsystem (root): three
replicas in their own network namespaces with their own request mixes; in epoch 1 replica-01
is attacked (a request makes its server spawn a shell that downloads a file from another
local address and runs it), in epoch 2 the other two are, at once. Every attack edge is
reported, with the right replica, and nothing benign is; the attack on every replica of a
cluster at once is reported as new relative to the model before it. Afterwards nothing of
the simulation is left (namespaces, rules, auditd)."""

from __future__ import annotations

import dataclasses
import subprocess
import tomllib
from pathlib import Path

import msgspec
import pytest

from tests.winnower.cluster_sim import ATTACKER, RULES_TOML, ClusterSim, unavailable
from tests.winnower.replay import replay, required, triple
from ursprung_graph.winnower.abstraction import Abstractor, RulesFile
from ursprung_graph.winnower.anomalies import rank

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"cluster simulation: {REASON}")


def test_attacks_on_a_replicated_cluster(tmp_path: Path):
    with ClusterSim(3, tmp_path / "sim", seed=7) as sim:
        sim.epoch(8)
        sim.epoch(8, attack=[1])
        sim.epoch(8, attack=[0, 2])
        logs = sim.finish()
    assert logs.attacks == {1: ["replica-01"], 2: ["replica-00", "replica-02"]}
    # nothing left behind
    assert f"ws{sim.tag}" not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                text=True).stdout
    assert "key=ursprung" not in subprocess.run(["auditctl", "-l"], capture_output=True,
                                                text=True).stdout
    assert ATTACKER not in subprocess.run(["ip", "addr", "show", "dev", "lo"],
                                          capture_output=True, text=True).stdout
    assert all(p.read_bytes().startswith(f"node={name} ".encode())
               for name, p in logs.logs.items())

    rules = Abstractor(msgspec.convert(tomllib.loads(RULES_TOML), RulesFile))
    done = replay(logs, rules)
    # one replica attacked: judged on the model after epoch 1
    truth = done.attack_edges[1]["replica-01"]
    edges = required(truth)
    assert sorted(edges) == ["downloaded file executed", "server spawns shell",
                             "shell connects out"]
    report = rank(done.models[1])
    reported = {triple(a): a for a in report.anomalies}
    for what, edge in edges.items():
        assert edge in reported, what
        assert reported[edge].origins.keys() == {"replica-01"}, what
    benign = [a for a in report.anomalies if triple(a) not in truth]
    assert len(benign) <= 0.01 * report.transitions, [a.text() for a in benign]

    # the same attack on every replica of the cluster {replica-00, replica-02} at once
    pair = dataclasses.replace(logs, logs={n: p for n, p in logs.logs.items()
                                               if n != "replica-01"})
    both = replay(pair, rules)
    everywhere = required(both.attack_edges[2]["replica-00"])
    assert len(everywhere) == 3
    common = {triple(a) for a in rank(both.models[2]).anomalies}
    assert not common & set(everywhere.values())  # on every replica: not rare
    new = {triple(a): a for a in rank(both.models[2], since=2).anomalies}
    for what, edge in everywhere.items():
        assert edge in new, what
        assert new[edge].origins.keys() == {"replica-00", "replica-02"}, what
        assert new[edge].reasons == ["new"]
    benign_new = [a for a in new.values() if triple(a) not in both.attack_edges[2]["replica-00"]
                  | both.attack_edges[2]["replica-02"]]
    assert len(benign_new) <= 0.01 * rank(both.models[2]).transitions

    # bytes: what the nodes sent is a small part of the raw logs
    assert done.sent_total() < 0.05 * done.raw_total()
