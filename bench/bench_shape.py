"""This tree against another checkout of the project, side by side in one run.

    .venv/bin/python bench/bench_shape.py --against /tmp/old [--repeat 5]
        [--target-records 200000] [--log tests/data/pipeline.audit.log] [--vary]

Made for refactors that must not slow anything down: ``git worktree add /tmp/old REV``,
copy or build its C extension, and compare. Each measurement runs in a child process with
``PYTHONPATH`` set to the tree under test (so the same venv, interpreter and compiled
parser serve both), alternating the trees round by round; the median of ``--repeat`` rounds
is kept (this machine's speed drifts, interleaving spreads the drift over both sides).

- ``parse``: ``normalize_file`` over the log (parser + OS model), records/s.
- ``follow``: the collector's follower reading the log to its end into a sink that only
  counts (``collect auditd --once`` without the bus), records/s.
- ``import``: ``ursprung import LOG`` end to end into a fresh embedded store (wall time,
  store start included), records/s.

The log is the recording concatenated with shifted timestamps and serials up to about
``--target-records`` records (``bench_parse.replicate``; with ``--vary`` the copies also
differ in pids, inodes and paths). Prints a table and writes
``bench/out/shape.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_parse import count_records, replicate  # noqa: E402

PARSE = """
import sys, time
from ursprung_graph.collectors.auditd import normalize_file
t = time.perf_counter()
n = sum(1 for _ in normalize_file(sys.argv[1], "bench"))
print(time.perf_counter() - t)
"""

# Both layouts: the follower moved from collectors/ to pipeline/ with the shape change.
FOLLOW = """
import sys, time
from pathlib import Path
try:
    from ursprung_graph.pipeline.follow import Follower, FollowOptions
    from ursprung_graph.collectors.auditd import AuditdSource
    factory = lambda state: AuditdSource("bench", state)
except ImportError:
    from ursprung_graph.collectors.follow import Follower, FollowOptions, audit_factory
    factory = audit_factory("bench")

class Count:
    n = 0
    def emit(self, events, dead, host):
        self.n += len(events) + len(dead)

t = time.perf_counter()
Follower(Path(sys.argv[1]), factory, Count(), host="bench", checkpoints=None,
         options=FollowOptions(follow=False)).run()
print(time.perf_counter() - t)
"""


def child(tree: Path, code: str, log: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", code, str(log)], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def import_run(tree: Path, log: Path) -> float:
    ursprung = [sys.executable, "-c", "from ursprung_graph.cli import main; main()"]
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PYTHONPATH": str(tree), "URSPRUNG_HOME": home}
        env.pop("URSPRUNG_STORE", None)
        t = time.perf_counter()
        subprocess.run([*ursprung, "import", "--host", "bench", "--no-progress", str(log)],
                       env=env, check=True, capture_output=True)
        took = time.perf_counter() - t
        subprocess.run([*ursprung, "db", "stop"], env=env, check=False, capture_output=True)
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", type=Path, required=True, help="the other checkout")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--target-records", type=int, default=200_000)
    ap.add_argument("--log", type=Path, default=REPO / "tests/data/pipeline.audit.log")
    ap.add_argument("--vary", action="store_true",
                    help="copies of the log differ in pids, inodes and paths, not only times")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "shape.json")
    args = ap.parse_args()
    trees = {"this": REPO, "against": args.against.resolve()}
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.log"
        base = count_records(args.log)
        replicate(args.log, big, max(1, args.target_records // base), vary=args.vary)
        records = count_records(big)
        print(f"log: {records:,} records; trees: {trees['this']} vs {trees['against']}",
              file=sys.stderr)
        times: dict[str, dict[str, list[float]]] = {
            part: {name: [] for name in trees} for part in ("parse", "follow", "import")}
        for round_ in range(args.repeat):
            order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
            for name in order:
                tree = trees[name]
                times["parse"][name].append(child(tree, PARSE, big))
                times["follow"][name].append(child(tree, FOLLOW, big))
                times["import"][name].append(import_run(tree, big))
            print(f"round {round_ + 1}/{args.repeat} done", file=sys.stderr)
    result: dict[str, object] = {"records": records, "against": str(trees["against"]),
                                 "parts": {}}
    print(f"\n{'part':8} {'this rec/s':>12} {'against rec/s':>14} {'this/against':>13}")
    for part, by_tree in times.items():
        med = {name: statistics.median(v) for name, v in by_tree.items()}
        rate = {name: records / t for name, t in med.items()}
        ratio = rate["this"] / rate["against"]
        result["parts"][part] = {"median_seconds": med, "records_per_second": rate,  # type: ignore[index]
                                 "speedup": ratio, "all_seconds": by_tree}
        print(f"{part:8} {rate['this']:12,.0f} {rate['against']:14,.0f} {ratio:12.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
