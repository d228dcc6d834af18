"""The GUI's fixtures: one graph per session built from real recorded data (the audit logs of
tests/data imported; the example pipeline traced twice by `ursprung run`; a traced run with
hostile names), a synthetic 5,000-node lineage, and the GUI served by uvicorn on a free
loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ursprung_graph.config import Settings
from ursprung_graph.content.store import ContentStore
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.pipeline.sinks import write_events
from ursprung_graph.query.runs import run_facts
from ursprung_graph.store import embedded_server
from ursprung_graph.store.falkordb import FalkorDBStore

from .bigraph import big_lineage

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
EXAMPLE = REPO / "examples" / "pipeline"
URSPRUNG = str(Path(sys.executable).parent / "ursprung")
ARTIFACTS = REPO / "tests" / "artifacts"

HOSTILE_FILE = "<img src=x onerror=alert(1)>.csv"
HOSTILE_SCRIPT = "</script><script>alert(1)</script>"
LOGS = {"pipeline.audit.log": "lab1", "pipeline.enriched.audit.log": "lab2",
        "two_runs.audit.log": "lab3"}


@dataclass
class World:
    settings: Settings
    store: FalkorDBStore
    content: ContentStore
    runs: list[str]  # the two traced runs of the example pipeline
    hostile_run: str
    hostile_run2: str  # the same hostile command on changed data: its output changed
    work: Path
    big_root: str
    diff_pair: tuple[str, str]  # sha256 of the hostile run's raw input and of its output


def _ursprung(settings: Settings, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, URSPRUNG_HOME=str(settings.home), URSPRUNG_GRAPH=settings.graph)
    env.pop("URSPRUNG_STORE", None)
    return subprocess.run([URSPRUNG, *args], cwd=cwd, env=env, capture_output=True,
                          timeout=120, check=False)


def _traced(settings: Settings, cwd: Path, *command: str) -> str:
    out = _ursprung(settings, "run", "--pipeline", "demo", "--id-file", str(cwd / "id"), "--",
                    *command, cwd=cwd)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return (cwd / "id").read_text().strip()


@pytest.fixture(scope="session")
def world(store_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (make setup installs it)")
    settings = Settings(home=store_home, store_url=None, graph=f"gui{os.getpid()}")
    server = embedded_server(settings)
    store = FalkorDBStore(unix_socket=str(server.socket), graph=settings.graph)
    store.ensure_schema()
    for name, host in LOGS.items():
        import_file(store, DATA / name, host=host, from_start=True)
    work = tmp_path_factory.mktemp("gui-runs")
    runs = []
    for i, lr in enumerate(("0.01", "0.02")):
        d = work / f"run{i + 1}"
        shutil.copytree(EXAMPLE / "data", d / "data")
        if i == 1:
            with open(d / "data" / "raw.csv", "a", encoding="utf-8") as fh:
                fh.write("6,12.2\n")
        runs.append(_traced(settings, d, "sh", str(EXAMPLE / "run.sh"), "--lr", lr,
                            "--python", sys.executable))
    hostile_runs = []
    for name in ("hostile", "hostile2"):
        hostile = work / name
        shutil.copytree(EXAMPLE / "data", hostile / "data")
        if name == "hostile2":
            with open(hostile / "data" / "raw.csv", "a", encoding="utf-8") as fh:
                fh.write("7,13.9\n")
        hostile_runs.append(_traced(
            settings, hostile, "sh", "-c", f"cat data/raw.csv > '{HOSTILE_FILE}'; "
            f"echo '{HOSTILE_SCRIPT}' >> '{HOSTILE_FILE}'; echo '{HOSTILE_SCRIPT}'"))
    hostile_run = hostile_runs[0]
    facts = run_facts(store, hostile_run)
    raw = next(f.sha256 for f in facts.inputs if f.rel == "data/raw.csv")
    made = next(f.sha256 for f in facts.outputs if f.rel == HOSTILE_FILE)
    big_root = big_lineage(lambda events: write_events(store, events), nodes=5000)
    yield World(settings, store, ContentStore(store_home / "content"), runs, hostile_run,
                hostile_runs[1], work, big_root, (str(raw), str(made)))
    store.clear()
    store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def base_url(world: World) -> Iterator[str]:
    """The GUI served by uvicorn on loopback, stopped at the end of the session."""
    import uvicorn

    from .app import gui_app

    app = gui_app(world.store, world.content)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the GUI server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
