"""Rule engine overhead: audit-log ingestion with 0 and with 50 typical rules, side by side.

    .venv/bin/python bench/bench_rules.py [--log tests/data/pipeline.audit.log]
        [--copies 8] [--repeat 5]

The log is concatenated --copies times (one import of a few ten thousand events). Each
round imports it into a fresh graph of one embedded FalkorDB server (parse, OS model,
upserts, store writes: ``import_stream``), once without rules and once with 50 rules
(engine.observe after each chunk, as ``ursprung import --rules`` does), alternating the
order per round so that drift of the machine's speed hits both alike. Reported: the best
and the median wall time and CPU time of this process (parsing, folding, the client, the
engine's thread; not the server's, which does the same work in both) and the slowdowns;
the target is <= 10%. On a shared machine the CPU time is the steadier number.
The rules are the kinds a training project writes (TRACK of sources and configs, LOGLOAD of
logs, CAPTURESOUT of a training script, RUN of a pipeline's entry point, DBLOAD of result
files) over paths of that project; as in real use, few events match them, so the
measure is the cost of testing every event against all of them (their actions, run by the
engine's worker, mostly never fire).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ursprung_graph.config import Settings  # noqa: E402
from ursprung_graph.pipeline.importer import import_stream  # noqa: E402
from ursprung_graph.rules import parse_rules  # noqa: E402
from ursprung_graph.rules.engine import RuleEngine  # noqa: E402
from ursprung_graph.store import embedded_server  # noqa: E402
from ursprung_graph.store.falkordb import FalkorDBStore  # noqa: E402


def typical_rules(n: int = 50) -> str:
    lines = []
    for i in range(n):
        proj = f"/gpfs/fs0/proj{i}"
        kind = i % 5
        if kind == 0:
            lines.append(rf"event@CLOSE && bytes_written>0 && path@{proj}/[.*]\.py -> "
                         rf"TRACK {proj}/.*\.py")
        elif kind == 1:
            lines.append(rf"event@CLOSE && bytes_written>0 && path@[.*]/proj{i}/logs/app\.log "
                         rf"-> LOGLOAD path MATCH ERROR FIELDS 0-1,2,3-e DELIM  ")
        elif kind == 2:
            lines.append(rf"syscall_name@execve && data@[.*]train{i}\.py[.*] -> CAPTURESOUT "
                         rf"MATCH ^epoch FIELDS pid,1,2 DELIM ,")
        elif kind == 3:
            lines.append(rf'kind=exec && proc.argv@".*run_pipeline{i}\.sh.*" -> RUN p{i}')
        else:
            lines.append(rf'kind=write && path@"{proj}/results/.*\.csv" -> DBLOAD path')
    return "\n".join(lines) + "\n"


def once(settings: Settings, graph: str, data: bytes, rules: list | None,
         home: Path) -> tuple[float, float, int]:
    server = embedded_server(settings)
    store = FalkorDBStore(unix_socket=str(server.socket), graph=graph)
    store.ensure_schema()
    engine = RuleEngine(rules, store, home) if rules else None
    started, cpu = time.perf_counter(), time.process_time()
    stats = import_stream(store, io.BytesIO(data), host="bench",
                          observe=engine.observe if engine else None)
    if engine is not None:
        engine.flush()
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    if engine is not None:
        engine.close()
    store.clear()
    store.close()
    return took, cpu, stats.events


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", default=str(REPO / "tests/data/pipeline.audit.log"))
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    data = Path(args.log).read_bytes() * args.copies
    rules = parse_rules(typical_rules(50), "typical.rules")
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        home = Path(tmp)
        settings = Settings(home=home, store_url=None, graph="bench")
        server = embedded_server(settings)
        server.start()
        try:
            times: dict[str, list[float]] = {"0 rules": [], "50 rules": []}
            cpus: dict[str, list[float]] = {"0 rules": [], "50 rules": []}
            events = 0
            for r in range(args.repeat):
                order = ["0 rules", "50 rules"] if r % 2 == 0 else ["50 rules", "0 rules"]
                for name in order:
                    took, cpu, events = once(settings, f"b{r}{name[0]}", data,
                                             rules if name == "50 rules" else None, home)
                    times[name].append(took)
                    cpus[name].append(cpu)
        finally:
            server.stop()
    print(f"{len(data):,} bytes of audit log, {events:,} events, {args.repeat} rounds")
    for name, values in times.items():
        print(f"{name:>9}: wall best {min(values):.3f}s median {statistics.median(values):.3f}s "
              f"({events / statistics.median(values):,.0f} events/s); CPU of this process "
              f"best {min(cpus[name]):.3f}s median {statistics.median(cpus[name]):.3f}s")
    # the conditions alone, on the same events (best of 5): what the ingest path pays
    from ursprung_graph.collectors.auditd import normalize_file
    from ursprung_graph.rules.engine import Matcher

    evs = [e for e in normalize_file(args.log, "bench") if hasattr(e, "kind")] * args.copies
    matcher = Matcher(rules)
    alone = []
    for _ in range(5):
        started = time.process_time()
        hits = sum(1 for _ in matcher.matches(evs))
        alone.append(time.process_time() - started)
    print(f"conditions alone: {min(alone):.3f}s CPU for {len(evs):,} events "
          f"({min(alone) / len(evs) * 1e6:.2f} us/event, {hits} matches) = "
          f"{min(alone) / min(cpus['0 rules']) * 100:.1f}% of the import's client CPU, "
          f"{min(alone) / min(times['0 rules']) * 100:.1f}% of its wall time")
    for what, table in (("wall", times), ("CPU", cpus)):
        best = min(table["50 rules"]) / min(table["0 rules"]) - 1
        median = statistics.median(table["50 rules"]) / statistics.median(table["0 rules"]) - 1
        print(f"slowdown with 50 rules, {what}: best {best * 100:+.1f}%, "
              f"median {median * 100:+.1f}%  (target <= +10%)")


if __name__ == "__main__":
    main()
