"""The GraphQL API on a large synthetic provenance graph: build time, then p50/p99 latency of
lineage (depth 10, upstream and downstream, with and without system files) and compareRuns
through HTTP, each request under the API's time budget.

    .venv/bin/python bench/bench_api.py            # >= 1,000,000 nodes, >= 5,000,000 edges
    .venv/bin/python bench/bench_api.py --small    # 2 % of it (a test runs this)

The graph is shaped like real provenance: runs of pipelines as long chains of short-lived
processes (each forked by its run's root, reading the previous step's output and its
pipeline's raw data set, writing an output and a log and deleting a temp file), every
process reading ~15 of 200 hot library files and executing one of 20 programs. It is
built in a fresh graph of the embedded store with ``UNWIND $rows ... CREATE`` batches
(the benchmark's own statements; ingest's MERGE path is measured by bench_parse/cluster).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests
import uvicorn

from ursprung_graph.api.app import create_app
from ursprung_graph.api.limits import Limits
from ursprung_graph.config import Settings
from ursprung_graph.query.lineage_view import lineage_view
from ursprung_graph.query.nodes import ping
from ursprung_graph.schema import graph as g
from ursprung_graph.store import embedded_server
from ursprung_graph.store.cypher import Cypher
from ursprung_graph.store.falkordb import FalkorDBStore

HOST = "bench"
LIBS = 200
PROGRAMS = 20
LIB_READS = 15
STEPS = 50

CREATE_PROCESSES = Cypher(
    f"UNWIND $rows AS r CREATE (:{g.PROCESS} {{key: r.key, host: r.host, pid: r.pid, "
    "start: r.start, end: r.end, exe: r.exe, cmdline: r.cmdline, argv: r.argv, cwd: r.cwd, "
    "exit_code: 0, first: r.start, last: r.end})")
CREATE_FILES = Cypher(
    f"UNWIND $rows AS r CREATE (:{g.FILE} {{key: r.key, host: r.host, path: r.path, "
    "first: r.t, last: r.t})")
CREATE_RUNS = Cypher(
    f"UNWIND $rows AS r CREATE (:{g.PIPELINE_RUN} {{key: r.key, id: r.id, pipeline: r.pipeline, "
    "command: r.command, argv: r.argv, cwd: r.cwd, host: r.host, start: r.start, end: r.end, "
    "exit_code: 0, origin: 'trace', params: r.params, environment: '{}', metrics: '{}', "
    "root: r.root})")


def _edges(rel: str, src: str, dst: str) -> Cypher:
    return Cypher(
        f"UNWIND $rows AS r MATCH (a:{src} {{key: r.a}}) MATCH (b:{dst} {{key: r.b}}) "
        f"CREATE (a)-[:{rel} {{first: r.f, last: r.l}}]->(b)")


EDGE_STATEMENTS = {
    "READ": _edges(g.READ.name, g.PROCESS, g.FILE),
    "WROTE": _edges(g.WROTE.name, g.PROCESS, g.FILE),
    "EXECUTED": _edges(g.EXECUTED.name, g.PROCESS, g.FILE),
    "DELETED": _edges(g.DELETED.name, g.PROCESS, g.FILE),
    "FORKED": _edges(g.FORKED.name, g.PROCESS, g.PROCESS),
    "INCLUDES": _edges(g.INCLUDES.name, g.PIPELINE_RUN, g.PROCESS),
}


class Builder:
    """Rows of the synthetic graph, written in batches as they fill."""

    def __init__(self, store: FalkorDBStore, batch: int) -> None:
        self.store = store
        self.batch = batch
        self.rows: dict[Cypher, list[dict[str, Any]]] = {}
        self.nodes = 0
        self.edges = 0

    def add(self, statement: Cypher, row: dict[str, Any], edge: bool) -> None:
        rows = self.rows.setdefault(statement, [])
        rows.append(row)
        if edge:
            self.edges += 1
        else:
            self.nodes += 1
        if len(rows) >= self.batch:
            self.flush(statement)

    def flush(self, statement: Cypher | None = None) -> None:
        for stmt in ([statement] if statement else list(self.rows)):
            rows = self.rows.pop(stmt, [])
            if rows:
                self.store.write([(stmt, {"rows": rows})])

    def edge(self, rel: str, a: str, b: str, first: int, last: int) -> None:
        self.add(EDGE_STATEMENTS[rel], {"a": a, "b": b, "f": first, "l": last}, True)


def file_key(path: str) -> str:
    return f"f:{HOST}:{path}"


def build(store: FalkorDBStore, runs: int, batch: int = 20_000) -> dict[str, Any]:
    """Nodes first (all of them), then edges, so that every MATCH finds its ends."""
    rng = random.Random(7)
    b = Builder(store, batch)
    t0 = 1_700_000_000 * 10**9
    libs = [f"/usr/lib/x86_64-linux-gnu/lib{i}.so.1" for i in range(LIBS)]
    programs = [f"/usr/bin/tool{i}" for i in range(PROGRAMS)]
    pipelines = max(1, runs // 50)
    for path in libs + programs:
        b.add(CREATE_FILES, {"key": file_key(path), "host": HOST, "path": path, "t": 0}, False)
    for p in range(pipelines):
        path = f"/data/p{p}/raw.csv"
        b.add(CREATE_FILES, {"key": file_key(path), "host": HOST, "path": path, "t": t0},
              False)
    plan = []  # per run: (run id, cwd, start, step process keys)
    pid = 1000
    for r in range(runs):
        start = t0 + r * 60 * 10**9
        cwd = f"/work/run{r}"
        keys = []
        for s in range(STEPS):
            pid += 1
            t = start + s * 10**9
            key = g.process_key(HOST, pid, t)
            keys.append(key)
            exe = programs[(r + s) % PROGRAMS]
            argv = [exe, f"step{s}.py", "--lr", str(0.01 * (1 + r % 3))] if s else [
                "sh", "run.sh", "--lr", str(0.01 * (1 + r % 3))]
            b.add(CREATE_PROCESSES, {
                "key": key, "host": HOST, "pid": pid, "start": t, "end": t + 9 * 10**8,
                "exe": exe, "cmdline": " ".join(argv), "argv": argv, "cwd": cwd}, False)
            for kind in ("out", "log", "tmp"):
                path = f"{cwd}/{kind}/s{s}.{kind}"
                b.add(CREATE_FILES, {"key": file_key(path), "host": HOST, "path": path,
                                     "t": t}, False)
        plan.append((f"run{r:06d}", cwd, start, keys, r % pipelines))
        run_key = g.run_key(f"run{r:06d}")
        b.add(CREATE_RUNS, {
            "key": run_key, "id": f"run{r:06d}", "pipeline": f"pipeline{r % pipelines}",
            "command": f"sh run.sh --lr {0.01 * (1 + r % 3)}",
            "argv": ["sh", "run.sh", "--lr", str(0.01 * (1 + r % 3))], "cwd": cwd, "host": HOST,
            "start": start, "end": start + STEPS * 10**9,
            "params": json.dumps({"lr": str(0.01 * (1 + r % 3))}), "root": keys[0]}, False)
    b.flush()
    nodes_done = time.perf_counter()
    for run_id, cwd, start, keys, p in plan:
        raw = file_key(f"/data/p{p}/raw.csv")
        run_key = g.run_key(run_id)
        for s, key in enumerate(keys):
            t = start + s * 10**9
            b.edge("INCLUDES", run_key, key, t, t)
            if s:
                b.edge("FORKED", keys[0], key, t, t)
                prev = file_key(f"{cwd}/out/s{s - 1}.out")
                b.edge("READ", key, prev, t + 2, t + 3)
            b.edge("EXECUTED", key, file_key(programs[(int(run_id[3:]) + s) % PROGRAMS]),
                   t, t)
            b.edge("READ", key, raw, t + 2, t + 3)
            for lib in rng.sample(libs, LIB_READS):
                b.edge("READ", key, file_key(lib), t + 1, t + 1)
            out, log, tmp = (file_key(f"{cwd}/{k}/s{s}.{k}") for k in ("out", "log", "tmp"))
            b.edge("WROTE", key, tmp, t + 4, t + 5)
            b.edge("READ", key, tmp, t + 6, t + 6)
            b.edge("DELETED", key, tmp, t + 7, t + 7)
            b.edge("WROTE", key, out, t + 8, t + 9)
            b.edge("WROTE", key, log, t + 3, t + 10)
    b.flush()
    return {"nodes": b.nodes, "edges": b.edges, "nodes_done": nodes_done, "plan": plan}


def _fast_build(sock: Path) -> None:
    """The benchmark's own throw-away server: no fsync per write and no rewrites of the
    append-only file while the graph is built (the project's server keeps both)."""
    import redis

    client = redis.Redis(unix_socket_path=str(sock))
    client.config_set("appendfsync", "no")
    client.config_set("auto-aof-rewrite-percentage", "0")
    client.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


LINEAGE = """query ($path: String!, $d: Direction!, $s: Boolean!) {
  lineage(path: $path, direction: $d, depth: 10, includeSystem: $s, maxNodes: 2000) {
    truncated reason nodes { __typename } edges { kind } } }"""
COMPARE = """query ($a: String!, $b: String!) { compareRuns(a: $a, b: $b) {
  differs params { changed { name a b } } inputs { changed { name } same { name } }
  outputs { changed { name } } programs { same { name } } duration { changed { name } } } }"""
EXPLAIN = """query ($a: String!, $b: String!) { compareRuns(a: $a, b: $b) {
  explanations { truncated reason items { output facts { section name } } } } }"""


def serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}/graphql"


def measure(session: requests.Session, url: str, query: str, variables: list[dict[str, Any]],
            budget: float) -> dict[str, Any]:
    times, truncated, over, errors = [], 0, 0, 0
    for v in variables:
        started = time.perf_counter()
        r = session.post(url, json={"query": query, "variables": v}, timeout=60)
        took = time.perf_counter() - started
        body = r.json()
        if r.status_code != 200 or body.get("errors"):
            errors += 1
        data = json.dumps(body.get("data"))
        truncated += data.count('"truncated": true')
        over += took > budget
        times.append(took * 1000)
    return {"n": len(times), "p50_ms": round(statistics.median(times), 1),
            "p99_ms": round(percentile(times, 0.99), 1), "max_ms": round(max(times), 1),
            "truncated": truncated, "over_budget": over, "errors": errors}


def anchor(store: FalkorDBStore, paths: list[str]) -> dict[str, float]:
    """The same machine at the same time without HTTP and GraphQL: one store round trip,
    and the upstream walk of the query layer called directly."""
    pings = []
    for _ in range(200):
        started = time.perf_counter()
        ping(store)
        pings.append((time.perf_counter() - started) * 1000)
    walks = []
    for path in paths:
        started = time.perf_counter()
        lineage_view(store, file_key(path), direction="up", depth=10, max_nodes=2000)
        walks.append((time.perf_counter() - started) * 1000)
    return {"store_ping_p50_ms": round(statistics.median(pings), 2),
            "lineage_up_direct_p50_ms": round(statistics.median(walks), 1),
            "lineage_up_direct_p99_ms": round(percentile(walks, 0.99), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="2 %% of the graph (for tests)")
    parser.add_argument("--runs", type=int, default=None, help="runs (50 steps each)")
    parser.add_argument("--requests", type=int, default=200, help="requests per case")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    runs = args.runs or (100 if args.small else 5000)
    requests_per_case = min(args.requests, 40) if args.small else args.requests
    home = Path(tempfile.mkdtemp(prefix="ursprung-bench-api-"))
    settings = Settings(home=home, store_url=None, graph="bench")
    server = embedded_server(settings)
    server.start()
    try:
        store = FalkorDBStore(unix_socket=str(server.socket), graph="bench", timeout=600)
        _fast_build(server.socket)
        store.ensure_schema()
        started = time.perf_counter()
        built = build(store, runs)
        build_s = time.perf_counter() - started
        report: dict[str, Any] = {
            "nodes": built["nodes"], "edges": built["edges"], "build_s": round(build_s, 1),
            "build_nodes_s": round(built["nodes_done"] - started, 1)}
        print(f"built {built['nodes']:,} nodes and {built['edges']:,} edges in {build_s:.1f} s",
              file=sys.stderr)
        limits = Limits()
        app = create_app(store, limits=limits)
        uv, thread, url = serve(app)
        rng = random.Random(11)
        plan = built["plan"]
        session = requests.Session()
        last = [f"{cwd}/out/s{STEPS - 1}.out" for _, cwd, _, _, _ in plan]
        first = [f"{cwd}/out/s{STEPS - 12}.out" for _, cwd, _, _, _ in plan]
        cases = {}
        for name, paths, direction in (("lineage_up", last, "UPSTREAM"),
                                       ("lineage_down", first, "DOWNSTREAM")):
            for system in (False, True):
                variables = [{"path": rng.choice(paths), "d": direction, "s": system}
                             for _ in range(requests_per_case)]
                key = f"{name}{'_with_system' if system else ''}"
                cases[key] = measure(session, url, LINEAGE, variables, limits.time_budget)
        pairs = []
        for _ in range(requests_per_case):
            i = rng.randrange(len(plan) - 3)
            pairs.append({"a": plan[i][0], "b": plan[i + 3][0]})  # same pipeline, lr differs
        cases["compareRuns"] = measure(session, url, COMPARE, pairs, limits.time_budget)
        report["anchor"] = anchor(store, [rng.choice(last) for _ in range(requests_per_case)])
        cases["compareRuns_explanations"] = measure(
            session, url, EXPLAIN, pairs[:max(5, requests_per_case // 10)], limits.time_budget)
        report["cases"] = cases
        report["time_budget_s"] = limits.time_budget
        uv.should_exit = True
        thread.join(timeout=10)
        store.clear()
        store.close()
    finally:
        server.stop(compact=False)
        shutil.rmtree(home, ignore_errors=True)
    if args.json:
        print(json.dumps(report))
        return
    print(f"graph: {report['nodes']:,} nodes, {report['edges']:,} edges, built in "
          f"{report['build_s']} s (nodes {report['build_nodes_s']} s)")
    print("anchor (same run, no HTTP/GraphQL): " + ", ".join(
        f"{k} {v}" for k, v in report["anchor"].items()))
    print(f"{'case':28} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} trunc over err")
    for name, c in cases.items():
        print(f"{name:28} {c['n']:>4} {c['p50_ms']:>8} {c['p99_ms']:>8} {c['max_ms']:>8} "
              f"{c['truncated']:>5} {c['over_budget']:>4} {c['errors']:>3}")


if __name__ == "__main__":
    os.environ.setdefault("URSPRUNG_LOG", "warning")
    main()
