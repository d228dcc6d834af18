"""What the FalkorDB store costs its client on `ursprung run`'s write path, this tree against
an older one, side by side (issue 13, item 5).

One run's statements are made first: this tree's `record_run` traces the file-heavy
workload of ``bench_tracers.py`` (3,000 small files written, then read, on tmpfs) into a
store that only keeps what it is given, chunk by chunk as `ursprung run` writes them. Then,
each round every mode once (interleaved; the machine's speed drifts), a fresh interpreter
with the tree by PYTHONPATH opens the embedded store (its server already running, data on
disk or on tmpfs), ensures the schema of a new graph and writes those statements, and
reports its CPU time (all threads) and wall time from its first import of the project to
the last reply; the server's CPU for the same is read from /proc. Then the same
interpreter times ``params_header`` over all the statements (best of 5).

    .venv/bin/python bench/bench_store_write.py --baseline /tmp/old [--repeat 9]
        [--tmpfs] [--pipelining]

``--baseline``: a checkout of older code (its C extension built or copied in).
``--own-statements``: each tree writes the statements its own `record_run` made (a
capture per tree), so that a change of the statements' text is measured too.
``--pipelining``: also this tree with each write's statements pipelined (all sent, then
all replies read) and in MULTI/EXEC, through `store.resp` directly (not what the store
does: what the choice was measured with). Prints a table, writes bench/out/store_write.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_tracers import AGG, GEN  # noqa: E402

CAPTURE = textwrap.dedent("""
    import sys, msgspec
    from ursprung_graph.pipeline.record import record_run

    out, work, data = sys.argv[1:4]

    class Keep:
        def __init__(self):
            self.writes = []
        def ensure_schema(self):
            pass
        def write(self, statements):
            self.writes.append([(str(s), p) for s, p in statements])
        def read(self, statement, params=None, *, timeout=None):
            return []
        def clear(self):
            pass
        def close(self):
            pass

    keep = Keep()
    py = sys.executable
    argv = ["sh", "-c", f'"{py}" {work}/gen.py {data} {sys.argv[4]} && '
            f'"{py}" {work}/agg.py {data} {data}.sum']
    run = record_run(keep, argv, host="bench", pipeline="bench", cwd=work)
    assert run.returncode == 0 and run.error is None, run.error
    open(out, "wb").write(msgspec.msgpack.encode(keep.writes))
""")

#: One measurement in a fresh interpreter: open + schema + writes, then params_header.
CHILD = textwrap.dedent("""
    import json, sys, time
    import msgspec
    path, home, graph, how = sys.argv[1:5]
    writes = msgspec.msgpack.decode(open(path, "rb").read())
    wall0, cpu0 = time.perf_counter(), time.process_time()
    from pathlib import Path
    from ursprung_graph.config import Settings
    from ursprung_graph.store import open_store

    store = open_store(Settings(home=Path(home), store_url=None, graph=graph),
                       autostart=False)
    store.ensure_schema()
    if how == "store":
        for statements in writes:
            store.write(statements)
    else:  # the same commands through store.resp, pipelined or in MULTI/EXEC per write
        from ursprung_graph.store.falkordb import header_bytes, literal_header
        for statements in writes:
            cmds = [(b"GRAPH.QUERY", graph,
                     (header_bytes(p) or literal_header(p)) + s.encode(), b"--compact")
                    for s, p in statements]
            if how == "multi":
                cmds = [(b"MULTI",), *cmds, (b"EXEC",)]
            store._resp.pipeline(cmds)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    loaded = sorted(m for m in ("falkordb", "redis") if m in sys.modules)
    from ursprung_graph.store.falkordb import params_header
    params = [p for statements in writes for _, p in statements]
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for p in params:
            params_header(p)
        best = min(best, time.perf_counter() - t0)
    store.clear()
    store.close()
    print(json.dumps({"wall": wall, "cpu": cpu, "header": best, "imported": loaded}))
""")


def server_cpu(pid: int) -> float:
    """utime + stime of the server (all its threads), seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def capture(root: Path, files: int, tree: Path, name: str) -> tuple[Path, int, int]:
    """``tree``'s statements for one traced run of the workload."""
    work = root / f"work-{name}"
    work.mkdir()
    for script, text in (("gen.py", GEN), ("agg.py", AGG)):
        (work / script).write_text(text)
    shm = Path(tempfile.mkdtemp(prefix="ursprung-bench-", dir="/dev/shm"))
    out = root / f"writes-{name}.msgpack"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    try:
        subprocess.run([sys.executable, "-c", CAPTURE, str(out), str(work), str(shm / "d"),
                        str(files)], check=True, env=env, cwd=work)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
    import msgspec

    writes = msgspec.msgpack.decode(out.read_bytes())
    return out, sum(map(len, writes)), len(writes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="A checkout of older code to time side by side (PYTHONPATH).")
    parser.add_argument("--tmpfs", action="store_true", help="The store's data on /dev/shm.")
    parser.add_argument("--pipelining", action="store_true")
    parser.add_argument("--own-statements", action="store_true",
                        help="Each tree writes the statements its own record_run made.")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "store_write.json")
    args = parser.parse_args()
    trees = {"this": HERE.parent}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    modes = {name: (tree, "store", name if args.own_statements else "this")
             for name, tree in trees.items()}
    if args.pipelining:
        modes["this-pipelined"] = (HERE.parent, "pipeline", "this")
        modes["this-multi"] = (HERE.parent, "multi", "this")
    import compileall

    for tree in trees.values():  # bytecode as an installed package has it
        compileall.compile_dir(str(tree / "ursprung_graph"), quiet=1)
    root = Path(tempfile.mkdtemp(prefix="ursprung-bench-"))
    home = Path(tempfile.mkdtemp(prefix="ursprung-bench-", dir="/dev/shm")) if args.tmpfs \
        else root / "home"
    from ursprung_graph.config import Settings
    from ursprung_graph.store import embedded_server

    server = embedded_server(Settings(home=home, store_url=None, graph="bench"))
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    load = [os.getloadavg()[0]]
    try:
        captured = {name: capture(root, args.files, trees[name], name)
                    for name in sorted({m[2] for m in modes.values()})}
        for name, (path, statements, chunks) in captured.items():
            print(f"{name}: {statements} statements in {chunks} writes, "
                  f"{path.stat().st_size / 2**20:.1f} MiB of msgpack", flush=True)
        server.start()
        pid = server.pid()
        assert pid is not None
        for round_ in range(args.repeat):
            for mode, (tree, how, made_by) in modes.items():
                env = {**os.environ, "PYTHONPATH": str(tree)}
                cpu0 = server_cpu(pid)
                path = captured[made_by][0]
                out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(home),
                                      f"b{round_}{mode}", how], env=env, cwd=root,
                                     capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    raise SystemExit(f"{mode}: {out.stderr[-2000:]}")
                got = json.loads(out.stdout)
                got["server_cpu"] = server_cpu(pid) - cpu0  # includes the graph's delete
                runs[mode].append(got)
                time.sleep(0.2)
            load.append(os.getloadavg()[0])
    finally:
        server.stop(compact=False)
        shutil.rmtree(root, ignore_errors=True)
        if args.tmpfs:
            shutil.rmtree(home, ignore_errors=True)
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("cpu", "wall", "header",
                                                                  "server_cpu")}
           for m, rs in runs.items()}
    where = "tmpfs" if args.tmpfs else "disk"
    statements = {name: c[1] for name, c in captured.items()}
    print(f"open + schema + {statements} statements ({where}), medians of {args.repeat}; "
          f"load {min(load):.2f}-{max(load):.2f}")
    print(f"{'mode':16} {'client CPU':>11} {'wall':>9} {'server CPU':>11} "
          f"{'params_header':>14}  imported")
    for mode, m in med.items():
        print(f"{mode:16} {m['cpu']:10.3f}s {m['wall']:8.3f}s {m['server_cpu']:10.3f}s "
              f"{m['header'] * 1000:11.1f} ms  {','.join(runs[mode][0]['imported']) or '-'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"files": args.files, "repeat": args.repeat, "where": where,
                                    "statements": statements,
                                    "writes": {name: c[2] for name, c in captured.items()},
                                    "baseline": str(trees.get("baseline", "")),
                                    "load": load, "median": med, "runs": runs}, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
