"""Benchmark of the two store backends side by side in one run: a real Neo4j 5 (the
launcher of tools/neo4j, full JIT) and the embedded FalkorDB, on the same events.

    .venv/bin/python bench/bench_backends.py [--hosts 4] [--batch 5000] [--rounds 2]
        [--writers 1] [--warmups 10]

Input: the recorded audit logs of tests/data/ (parsed once, before any timing), replayed
as N hosts so the graph grows as a cluster's would. For each backend:

* import: batches of ``--batch`` events folded into upserts (ingest/upserts.py) and written
  (one ``store.write`` per batch, as an ingest worker does), events/s over the whole
  import. Rounds alternate the order of the backends (the machine's speed drifts); each
  round starts from an empty graph. Neo4j gets ``--warmups`` whole imports first (a server
  runs for months; its JIT warm-up is not the steady state: on a quiet machine C2 kept
  compiling for ~10 imports of these events, the server's CPU time per import falling from
  24 s to ~1.2 s), reported separately;
* ``--writers N``: N writers at once, the hosts split between them (as Kafka partitions
  split them between ingest workers), each with its own batches;
* lineage: upstream and downstream of files that were written, on the graph of the last
  round, p50/p99 in milliseconds; the same files on both backends.

Prints a table and writes bench/out/backends.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.neo4j_server import Neo4jServer  # noqa: E402
from ursprung_graph.collectors.auditd.source import normalize_file  # noqa: E402
from ursprung_graph.ingest.upserts import Batch  # noqa: E402
from ursprung_graph.query.lineage import lineage  # noqa: E402
from ursprung_graph.schema.event import Event  # noqa: E402
from ursprung_graph.store.base import GraphStore  # noqa: E402
from ursprung_graph.store.cypher import Cypher  # noqa: E402
from ursprung_graph.store.embedded import EmbeddedServer  # noqa: E402
from ursprung_graph.store.falkordb import FalkorDBStore  # noqa: E402
from ursprung_graph.store.neo4j import Neo4jStore  # noqa: E402

LOGS = ("pipeline.audit.log", "pipeline.enriched.audit.log", "two_runs.audit.log")
WRITTEN_FILES = Cypher("MATCH (:Process)-[:WROTE]->(f:File) RETURN DISTINCT f.key AS key "
                       "ORDER BY key")
COUNTS = Cypher("MATCH (n) RETURN count(n) AS n")


def load_events(hosts: int) -> list[Event]:
    base = []
    for name in LOGS:
        base += [e for e in normalize_file(str(REPO / "tests" / "data" / name), "n0")
                 if isinstance(e, Event)]
    events = []
    for h in range(hosts):
        events += [msgspec.structs.replace(e, host=f"n{h}") for e in base]
    return events


def import_events(store: GraphStore, events: list[Event], batch: int, writers: int = 1) -> float:
    """Seconds to write ``events`` by ``writers`` threads, each taking whole hosts."""
    hosts = sorted({e.host for e in events})
    shares: list[list[Event]] = [[] for _ in range(min(writers, len(hosts)) or 1)]
    for ev in events:
        shares[hosts.index(ev.host) % len(shares)].append(ev)
    errors: list[BaseException] = []

    def write(share: list[Event]) -> None:
        try:
            for i in range(0, len(share), batch):
                rows = Batch()
                for ev in share[i:i + batch]:
                    rows.add(ev)
                store.write(rows.statements())
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=write, args=(share,)) for share in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def lineage_ms(store: GraphStore, roots: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for direction in ("up", "down"):
        times = []
        for root in roots:
            started = time.perf_counter()
            lineage(store, root, direction=direction)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        out[f"{direction}_p50"] = statistics.median(times)
        out[f"{direction}_p99"] = times[min(len(times) - 1, int(len(times) * 0.99))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--roots", type=int, default=200, help="files whose lineage is timed")
    parser.add_argument("--writers", type=int, default=1, help="writers at once, by host")
    parser.add_argument("--warmups", type=int, default=10,
                        help="Neo4j imports before timing (JIT warm-up)")
    args = parser.parse_args()

    events = load_events(args.hosts)
    print(f"{len(events):,} events ({len(LOGS)} recorded logs x {args.hosts} hosts), "
          f"batches of {args.batch:,}, {args.writers} writer(s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        falkor_server = EmbeddedServer(Path(tmp) / "falkordb")
        falkor_server.start()
        neo = Neo4jServer(Path(tmp) / "neo4j", heap="2g", pagecache_mb=512, jvm=[])
        try:
            target = neo.start()
            print(f"Neo4j started in {neo.seconds_to_start:.1f} s", flush=True)
            stores: dict[str, GraphStore] = {
                "falkordb": FalkorDBStore(unix_socket=str(falkor_server.socket), graph="bench"),
                "neo4j": Neo4jStore(target.uri),
            }
            for store in stores.values():
                store.ensure_schema()
            warm = []
            for _ in range(args.warmups):
                stores["neo4j"].clear()
                stores["neo4j"].ensure_schema()
                warm.append(len(events) / import_events(stores["neo4j"], events, args.batch,
                                                        args.writers))
            results: dict[str, list[float]] = {name: [] for name in stores}
            loads: list[float] = []
            for rnd in range(args.rounds):
                order = list(stores) if rnd % 2 == 0 else list(reversed(stores))
                for name in order:
                    stores[name].clear()
                    stores[name].ensure_schema()
                    seconds = import_events(stores[name], events, args.batch, args.writers)
                    results[name].append(len(events) / seconds)
                    loads.append(os.getloadavg()[0])
                    print(f"  round {rnd + 1} {name:8} {len(events) / seconds:>10,.0f} "
                          f"events/s ({seconds:.1f} s, load {loads[-1]:.1f})", flush=True)
            keys = [r["key"] for r in stores["falkordb"].read(WRITTEN_FILES)]
            assert keys == [r["key"] for r in stores["neo4j"].read(WRITTEN_FILES)]
            roots = random.Random(7).sample(keys, min(args.roots, len(keys)))
            lineages = {name: lineage_ms(store, roots) for name, store in stores.items()}
            nodes = {name: store.read(COUNTS)[0]["n"] for name, store in stores.items()}
            for store in stores.values():
                store.clear()
                store.close()
        finally:
            neo.stop()
            falkor_server.stop(compact=False)

    print("\nNeo4j warm-up imports (JIT warming): "
          + ", ".join(f"{w:,.0f}" for w in warm) + " events/s")
    print(f"load average during the rounds: {min(loads):.1f}-{max(loads):.1f} "
          f"({os.cpu_count()} cores)")
    print(f"{'backend':10}{'import events/s (best)':>24}{'median':>10}"
          f"{'up p50/p99 ms':>18}{'down p50/p99 ms':>18}{'nodes':>9}")
    for name in stores:
        lin = lineages[name]
        print(f"{name:10}{max(results[name]):>24,.0f}{statistics.median(results[name]):>10,.0f}"
              f"{lin['up_p50']:>10.1f}/{lin['up_p99']:<7.1f}"
              f"{lin['down_p50']:>10.1f}/{lin['down_p99']:<7.1f}{nodes[name]:>9,}")
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "backends.json").write_text(json.dumps({
        "events": len(events), "hosts": args.hosts, "batch": args.batch,
        "writers": args.writers, "import_events_per_s": results,
        "neo4j_warmup_events_per_s": warm, "load_average": loads,
        "lineage_ms": lineages, "roots": len(roots), "nodes": nodes,
    }, indent=2))


if __name__ == "__main__":
    main()
