"""Winnower: bytes to the monitor, attack detection and acceptance time.

Two parts, in one run:

* ``cluster`` (root and the kernel audit subsystem; skipped with the reason otherwise): a
  replicated cluster (`tests/winnower/cluster_sim.py`, 10 replicas in their own network
  namespaces, per-replica request mixes) recorded with real auditd over several epochs;
  one replica attacked in one epoch (its server spawns a shell that downloads a file from
  another local address and runs it). The recording is replayed through one agent per
  replica and a monitor (`tests/winnower/replay.py`). Printed: bytes the agents sent versus
  the raw audit logs and versus the raw logs compressed with zstd -19 (each replica's whole
  log at once, the best case for compression, and epoch by epoch, what shipping per epoch
  costs); whether every attack edge is among the anomalies with the right replica; benign
  anomalies as a share of all label-level transitions. Then a second cluster, attacked on
  every replica at once after a baseline: what is reported as new since then.
* ``acceptance``: time to accept graphs of growing size (the model of a replicated server
  graph of n requests, checked against the global model), next to an anchor measured in the
  same run (one pass over the graph's edges building a dict), per vertex and edge.

    .venv/bin/python bench/bench_winnower.py [--replicas 10] [--epochs 6] [--requests 60]
        [--skip-cluster] [--sizes 1000,4000,16000,32000]

Prints tables and writes bench/out/winnower.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.winnower.cluster_sim import RULES_TOML, ClusterSim, unavailable  # noqa: E402
from tests.winnower.replay import replay, required, triple, zstd_baselines  # noqa: E402
from ursprung_graph.winnower.abstraction import Abstractor, RulesFile  # noqa: E402
from ursprung_graph.winnower.anomalies import rank  # noqa: E402
from ursprung_graph.winnower.induction import induce, unaccepted  # noqa: E402
from ursprung_graph.winnower.model import merge  # noqa: E402
from ursprung_graph.winnower.pgraph import ProvGraph, Vertex  # noqa: E402

OUT = REPO / "bench" / "out"


def cluster(replicas: int, epochs: int, requests: int, rules: Abstractor) -> dict:
    attacked_epoch, victim = epochs // 2, min(3, replicas - 1)
    with tempfile.TemporaryDirectory(prefix="wbench-") as tmp:
        t0 = time.monotonic()
        with ClusterSim(replicas, Path(tmp) / "a", seed=1) as sim:
            for e in range(epochs):
                sim.epoch(requests, attack=[victim] if e == attacked_epoch else [])
            logs = sim.finish()
        recorded = time.monotonic() - t0
        t0 = time.monotonic()
        done = replay(logs, rules)
        replayed = time.monotonic() - t0
        whole, per_epoch = zstd_baselines(logs)
        name = f"replica-{victim:02d}"
        truth = done.attack_edges[attacked_epoch][name]
        report = rank(done.models[-1])
        reported = {triple(a): a for a in report.anomalies}
        edges = {what: {"reported": edge in reported,
                        "nodes": sorted(reported[edge].origins) if edge in reported else []}
                 for what, edge in required(truth).items()}
        benign = [a.text() for a in report.anomalies if triple(a) not in truth]
        raw, sent = done.raw_total(), done.sent_total()
        one = {
            "replicas": replicas, "epochs": epochs, "requests_per_epoch": requests,
            "requests": logs.requests, "events": done.events, "record_s": round(recorded, 1),
            "replay_s": round(replayed, 1), "raw_bytes": raw, "zstd19_whole_bytes": whole,
            "zstd19_per_epoch_bytes": per_epoch, "sent_bytes": sent,
            "sent_per_epoch": [sum(v[e] for v in done.sent.values()) for e in range(epochs)],
            "reduction_vs_raw": 1 - sent / raw, "x_vs_zstd19_whole": whole / sent,
            "x_vs_zstd19_per_epoch": per_epoch / sent, "victim": name,
            "attack_edges": edges, "attack_transitions": len(truth),
            "anomalies": len(report.anomalies), "benign_anomalies": benign,
            "transitions": report.transitions,
            "benign_share": len(benign) / report.transitions,
            "states": len(done.models[-1].states),
        }
        # the same attack on every replica at once, after a baseline of clean epochs
        baseline = max(2, epochs // 2)
        with ClusterSim(replicas, Path(tmp) / "b", seed=2) as sim:
            for e in range(baseline + 1):
                sim.epoch(requests, attack=range(replicas) if e == baseline else [])
            logs_b = sim.finish()
        done_b = replay(logs_b, rules)
        truth_b = set().union(*done_b.attack_edges[baseline].values())
        rare_b = {triple(a) for a in rank(done_b.models[-1]).anomalies}
        new_b = {triple(a): a for a in rank(done_b.models[-1], since=baseline).anomalies}
        everywhere = required(truth_b)
        one["all_at_once"] = {
            "baseline_epochs": baseline,
            "attack_edges": {what: {"new": edge in new_b, "rare": edge in rare_b,
                                    "nodes": len(new_b[edge].origins) if edge in new_b else 0}
                             for what, edge in everywhere.items()},
            "new": len(new_b), "benign_new": len([t for t in new_b if t not in truth_b]),
            "transitions": rank(done_b.models[-1]).transitions,
        }
    return one


def server_graph(requests: int, host: str = "n") -> ProvGraph:
    """A server forking one worker per request; workers read one of 50 pages, write a log,
    a tenth of them run a helper that reads a data file (realistic fan-out, few labels)."""
    g = ProvGraph()
    srv = g.add_vertex(Vertex(f"p:{host}:1:0", "process", host=host, pid=1,
                              exe="/usr/bin/python3", argv=["python3", "app.py"]))
    for i in range(requests):
        w = g.add_vertex(Vertex(f"p:{host}:w{i}", "process", host=host, pid=i + 2,
                                exe="/usr/bin/python3", argv=["python3", "app.py"]))
        g.add_edge(srv.key, "FORKED", w.key, i)
        page = f"f:{host}:/srv/www/page{i % 50}.html"
        g.add_vertex(Vertex(page, "file", host=host, path=f"/srv/www/p{i % 50:02d}.html"))
        g.add_edge(w.key, "READ", page, i)
        log = f"f:{host}:/tmp/tmpl{i}"
        g.add_vertex(Vertex(log, "file", host=host, path=f"/tmp/tmpl{i}x/access.log"))
        g.add_edge(w.key, "WROTE", log, i)
        if i % 10 == 0:
            h = g.add_vertex(Vertex(f"p:{host}:h{i}", "process", host=host, pid=10**6 + i,
                                    exe="/usr/bin/gzip", argv=["gzip", "-c", "data.json"]))
            g.add_edge(w.key, "FORKED", h.key, i)
            g.add_vertex(Vertex(f"f:{host}:/srv/data.json", "file", host=host,
                                path="/srv/data.json"))
            g.add_edge(h.key, "READ", f"f:{host}:/srv/data.json", i)
    return g


def anchor(graph: ProvGraph) -> None:
    seen: dict[tuple[str, str, str], int] = {}
    for e in graph.edges.values():
        seen[(e.src, e.rel, e.dst)] = e.first


def acceptance(sizes: list[int], rules: Abstractor, repeat: int = 3) -> list[dict]:
    model = merge(*(induce(server_graph(200, f"m{i}"), rules, k=1, origin=f"m{i}").model
                    for i in range(3)))
    rows = []
    for n in sizes:
        g = server_graph(n)
        items = len(g.vertices) + len(g.edges)
        accept_t, anchor_t = [], []
        for _ in range(repeat):  # interleaved, so that both see the same machine
            t0 = time.perf_counter()
            local = induce(g, rules, k=1, origin="x", examples=False).model
            left = unaccepted(model.states, model.transitions, local)
            accept_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            anchor(g)
            anchor_t.append(time.perf_counter() - t0)
        assert not left, "the replicated graph must be accepted"
        a, b = statistics.median(accept_t), statistics.median(anchor_t)
        rows.append({"requests": n, "vertices_edges": items, "accept_s": a,
                     "accept_us_per_item": a / items * 1e6, "anchor_s": b,
                     "anchor_us_per_item": b / items * 1e6, "ratio": a / b})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=int, default=10)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--requests", type=int, default=60, help="per replica and epoch")
    p.add_argument("--sizes", default="1000,4000,16000,32000")
    p.add_argument("--skip-cluster", action="store_true")
    args = p.parse_args()
    rules = Abstractor(msgspec.convert(tomllib.loads(RULES_TOML), RulesFile))
    result: dict = {}
    reason = unavailable()
    if args.skip_cluster or reason:
        print(f"cluster: skipped ({'--skip-cluster' if args.skip_cluster else reason})")
    else:
        c = result["cluster"] = cluster(args.replicas, args.epochs, args.requests, rules)
        print(f"cluster: {c['replicas']} replicas x {c['epochs']} epochs x "
              f"{c['requests_per_epoch']} requests ({c['requests']} requests, {c['events']} "
              f"events; recorded in {c['record_s']} s, replayed in {c['replay_s']} s)")
        print(f"  raw audit logs        {c['raw_bytes']:>12,} B")
        print(f"  zstd -19, whole logs  {c['zstd19_whole_bytes']:>12,} B")
        print(f"  zstd -19, per epoch   {c['zstd19_per_epoch_bytes']:>12,} B")
        print(f"  sent to the monitor   {c['sent_bytes']:>12,} B  "
              f"(per epoch: {c['sent_per_epoch']})")
        print(f"  reduction vs raw {c['reduction_vs_raw']:.2%}; "
              f"{c['x_vs_zstd19_whole']:.1f}x less than zstd -19 whole, "
              f"{c['x_vs_zstd19_per_epoch']:.1f}x less than per epoch")
        for what, e in c["attack_edges"].items():
            print(f"  attack edge {what:26} reported={e['reported']} nodes={e['nodes']}")
        print(f"  anomalies {c['anomalies']} ({c['attack_transitions']} attack transitions); "
              f"benign {len(c['benign_anomalies'])} of {c['transitions']} transitions "
              f"({c['benign_share']:.2%})")
        b = c["all_at_once"]
        print(f"  all replicas at once after {b['baseline_epochs']} clean epochs: "
              f"{b['new']} new, {b['benign_new']} benign, of {b['transitions']} transitions")
        for what, e in b["attack_edges"].items():
            print(f"    attack edge {what:26} new={e['new']} on {e['nodes']} nodes "
                  f"(rare={e['rare']})")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = result["acceptance"] = acceptance(sizes, rules)
    print("\nacceptance (k=1) of a replicated server graph against the global model:")
    print(f"  {'requests':>8} {'items':>8} {'accept':>9} {'us/item':>8} {'anchor':>9} "
          f"{'us/item':>8} {'ratio':>6}")
    for r in rows:
        print(f"  {r['requests']:>8} {r['vertices_edges']:>8} {r['accept_s']:>8.4f}s "
              f"{r['accept_us_per_item']:>8.2f} {r['anchor_s']:>8.4f}s "
              f"{r['anchor_us_per_item']:>8.3f} {r['ratio']:>6.1f}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "winnower.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
