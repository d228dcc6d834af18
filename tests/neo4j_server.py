"""A real Neo4j 5 server for tests and benchmarks: the launcher of ``tools/neo4j`` (the
community database with Bolt on loopback, built by ``make neo4j``), or an external Neo4j
named by ``NEO4J_URI`` (with ``NEO4J_USER`` / ``NEO4J_PASSWORD``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import neo4j
from neo4j import exceptions as nex

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "tools" / "neo4j"
CLASSPATH = f"{LAUNCHER / 'target' / 'classes'}:{LAUNCHER / 'target' / 'lib' / '*'}"
MAIN = "org.ursprung.neo4j.Launcher"
START_TIMEOUT = 180.0
#: JVM flags for tests: the client compiler only, which warms up in a fraction of the time
#: (tests run many different statements a few times each); benchmarks pass ``jvm=[]``.
TEST_JVM = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]


class Neo4jUnavailable(RuntimeError):
    """The launcher is not built or the server did not start."""


@dataclass(frozen=True, slots=True)
class Neo4jTarget:
    uri: str
    user: str | None = None
    password: str | None = None

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.user, self.password or "") if self.user else None


def external() -> Neo4jTarget | None:
    uri = os.environ.get("NEO4J_URI")
    if not uri:
        return None
    return Neo4jTarget(uri, os.environ.get("NEO4J_USER"), os.environ.get("NEO4J_PASSWORD"))


class Neo4jServer:
    """One launcher process; ``start`` returns once Bolt accepts connections."""

    def __init__(self, data_dir: Path, *, heap: str = "1g", pagecache_mb: int = 256,
                 jvm: list[str] | None = None, settings: list[str] | None = None,
                 driver_options: dict[str, object] | None = None) -> None:
        """``driver_options``: for the readiness check (e.g. TLS trust of a TLS-only Bolt)."""
        self.data_dir = data_dir
        self.heap = heap
        self.pagecache_mb = pagecache_mb
        self.jvm = TEST_JVM if jvm is None else jvm
        self.settings = settings or []
        self.driver_options = driver_options or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.uri: str | None = None
        self.seconds_to_start = 0.0
        self._log: list[str] = []

    def start(self) -> Neo4jTarget:
        java = shutil.which("java")
        if java is None:
            raise Neo4jUnavailable("java is not installed (make setup installs openjdk-17)")
        if not (LAUNCHER / "target" / ".built").is_file():
            raise Neo4jUnavailable("the Neo4j launcher is not built: run `make neo4j`")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [java, f"-Xmx{self.heap}", *self.jvm, "-cp", CLASSPATH, MAIN, "0",
             str(self.data_dir), str(self.pagecache_mb), *self.settings],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(ready,), daemon=True).start()
        if not ready.wait(START_TIMEOUT) or self.uri is None:
            self.stop()
            tail = "\n".join(self._log[-20:])
            raise Neo4jUnavailable(f"Neo4j did not start within {START_TIMEOUT:.0f} s:\n{tail}")
        self._wait_for_bolt(started + START_TIMEOUT)
        self.seconds_to_start = time.monotonic() - started
        return Neo4jTarget(self.uri)

    def _wait_for_bolt(self, deadline: float) -> None:
        """The port is bound before Bolt answers its first handshake, which on a starved
        machine took over a minute: wait until a query runs."""
        assert self.uri is not None
        with neo4j.GraphDatabase.driver(self.uri, connection_timeout=10,
                                        connection_acquisition_timeout=20,
                                        **self.driver_options) as driver:  # type: ignore[arg-type]
            while True:
                try:
                    driver.execute_query("RETURN 1")
                    return
                except (nex.ServiceUnavailable, nex.SessionExpired, OSError) as exc:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise Neo4jUnavailable(f"Neo4j's Bolt does not answer: {exc}") from exc
                    time.sleep(0.5)

    def _pump(self, ready: threading.Event) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._log.append(line)
            if line.startswith("started bolt://"):
                self.uri = line.split(" ", 1)[1]
                ready.set()
        ready.set()  # the process ended

    def stop(self) -> None:
        """Close stdin (the launcher shuts the database down), then wait; kill if stuck."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
