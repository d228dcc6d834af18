"""Lineage, idempotence and crash recovery on real audit logs of a real pipeline.

The fixtures in tests/data/ were recorded under the kernel audit subsystem (see
tests/data/README.md); when this machine can record (root, auditd), one more recording is
made here and checked the same way. Expected answers come from tests/realaudit/manifest.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.graphdump import dump
from ursprung_graph.config import Settings
from ursprung_graph.pipeline.checkpoint import CheckpointStore
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.query.lineage import find_file, lineage
from ursprung_graph.query.types import ProcessNode
from ursprung_graph.store import embedded_server
from ursprung_graph.store.falkordb import FalkorDBStore

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
MANIFEST = json.loads((REPO / "tests" / "realaudit" / "manifest.json").read_text())
PIPELINE = MANIFEST["pipeline.sh"]
FIXTURE_WORKDIR = "/tmp/ursprung-fixture"
HOST = "rec"


def check_manifest(store, workdir: str) -> None:
    """The pipeline's lineage answers, against what the pipeline really did."""
    root = find_file(store, f"{workdir}/{PIPELINE['output']}", HOST)
    up = {n.path for n in lineage(store, root, direction="up").nodes if n.kind == "file"}
    missing = [p for p in PIPELINE["must_include"] if f"{workdir}/{p}" not in up]
    wrong = [p for p in PIPELINE["must_exclude"] if f"{workdir}/{p}" in up]
    assert not missing, f"upstream lacks {missing}"
    assert not wrong, f"upstream wrongly has {wrong}"
    down = {n.path for n in lineage(store, root, direction="down").nodes
            if n.kind == "file"}
    assert all(f"{workdir}/{p}" in down for p in PIPELINE["downstream_must_include"])
    assert not [p for p in PIPELINE["downstream_must_exclude"] if f"{workdir}/{p}" in down]


@pytest.mark.parametrize("fixture", PIPELINE["fixtures"])
def test_lineage_of_recorded_pipeline(store, fixture: str) -> None:
    stats = import_file(store, DATA / fixture, host=HOST)
    assert stats.dead_letters == 0 and stats.events > 1000
    check_manifest(store, FIXTURE_WORKDIR)


def test_socket_download_is_linked_to_the_server(store) -> None:
    import_file(store, DATA / "pipeline.audit.log", host=HOST)
    root = find_file(store, f"{FIXTURE_WORKDIR}/download/served_copy.txt", HOST)
    result = lineage(store, root)
    assert any(n.kind == "endpoint" for n in result.nodes)
    servers = [n for n in result.nodes
               if isinstance(n, ProcessNode) and "http.server" in (n.cmdline or "")]
    assert servers, "the HTTP server process should be upstream of the download"


def test_importing_twice_leaves_the_graph_identical(store) -> None:
    import_file(store, DATA / "pipeline.audit.log", host=HOST)
    first = dump(store)
    import_file(store, DATA / "pipeline.audit.log", host=HOST, from_start=True)
    assert dump(store) == first


class Crash(Exception):
    pass


class CrashingStore:
    """Applies part of the statements of the N-th write, then dies: a crash mid-chunk."""

    def __init__(self, inner, crash_at: int) -> None:
        self.inner, self.crash_at, self.writes = inner, crash_at, 0

    def write(self, statements) -> None:
        self.writes += 1
        if self.writes == self.crash_at:
            self.inner.write(statements[: len(statements) // 2])
            raise Crash
        self.inner.write(statements)


@pytest.mark.parametrize("crash_at", [2, 5, 9])
def test_crash_midway_then_resume_equals_clean_import(store, settings, tmp_path,
                                                      crash_at: int) -> None:
    log = DATA / "pipeline.audit.log"
    import_file(store, log, host=HOST, chunk_events=400)
    clean = dump(store)
    store.clear()
    checkpoints = CheckpointStore(tmp_path / "ckpt")
    with pytest.raises(Crash):
        import_file(CrashingStore(store, crash_at), log, host=HOST, checkpoints=checkpoints,
                    chunk_events=400)
    stats = import_file(store, log, host=HOST, checkpoints=checkpoints, chunk_events=400)
    assert stats.resumed_from > 0
    assert dump(store) == clean


def test_kill_9_during_cli_import_then_rerun(settings: Settings, store) -> None:
    """A real `ursprung import` process killed with SIGKILL after some checkpoints."""
    log = DATA / "pipeline.enriched.audit.log"
    import_file(store, log, host=HOST)
    clean = dump(store)
    store.clear()
    env = {**os.environ, "URSPRUNG_HOME": str(settings.home), "URSPRUNG_GRAPH": settings.graph}
    cmd = [sys.executable, "-m", "ursprung_graph", "import", "--host", HOST, "--no-progress",
           "--chunk-events", "50", str(log)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpts = settings.checkpoint_dir
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(ckpts.glob("*.ckpt")):
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert "resumed at byte" in rerun.stderr
    assert dump(store) == clean


def test_junk_lines_become_dead_letters_and_lose_nothing(store, tmp_path) -> None:
    log = DATA / "pipeline.audit.log"
    import_file(store, log, host=HOST)
    clean = dump(store)
    store.clear()
    junk = [b"\x00\xff\xfe binary junk\n", b"type=SYSCALL msg=audit(garbage): a0=1\n",
            b"this is not an audit record\n"]
    lines = log.read_bytes().splitlines(keepends=True)
    mixed = tmp_path / "mixed.log"
    with mixed.open("wb") as fh:
        for i, line in enumerate(lines):
            fh.write(line)
            if i % 5000 == 17:
                fh.write(junk[(i // 5000) % len(junk)])
        fh.write(b"type=SYSCALL msg=audit(1795305999.000:999999): arch=c000003e sysc")  # cut off
    stats = import_file(store, mixed, host=HOST)
    inserted = len(range(17, len(lines), 5000)) + 1
    assert stats.dead_letters == inserted
    rows = store.read("MATCH (d:DeadLetter) RETURN d.reason AS reason, d.raw AS raw")
    assert len(rows) == inserted and all(r["reason"] for r in rows)
    # a dead letter whose record has a time is a capture gap then (the cut-off SYSCALL)
    gaps = store.read("MATCH (x:Gap {source: 'dead-letter'}) RETURN x.start AS start")
    assert gaps == [{"start": 1795305999_000_000_000}]
    store.write([("MATCH (d:DeadLetter) DELETE d", {}),
                 ("MATCH (x:Gap {source: 'dead-letter'}) DELETE x", {})])
    assert dump(store) == clean


def _record_reason() -> str | None:
    from tests.realaudit.record import auditd_available

    return auditd_available()


@pytest.mark.skipif(_record_reason() is not None,
                    reason=f"cannot record a real audit log here: {_record_reason()}")
def test_fresh_recording_of_the_pipeline(store, tmp_path) -> None:
    from tests.realaudit.record import record

    workdir = tmp_path / "work"
    log, _ = record(REPO / "tests" / "realaudit" / "pipeline.sh", workdir, tmp_path / "a.log")
    stats = import_file(store, log, host=HOST)
    assert stats.dead_letters == 0
    check_manifest(store, str(workdir.absolute()))


def test_store_and_settings_fixtures_point_at_one_server(settings: Settings) -> None:
    server = embedded_server(settings)
    assert server.is_running()
    FalkorDBStore(unix_socket=str(server.socket), graph=settings.graph).close()


def test_replaying_batches_newest_first_changes_nothing(store) -> None:
    """At-least-once delivery may redeliver an old batch after newer ones: every update is
    min/max/ranked, so the graph must not move (command lines of one millisecond included)."""
    from ursprung_graph.collectors.auditd import normalize_file
    from ursprung_graph.ingest.upserts import Batch
    from ursprung_graph.schema.event import Event

    events = [e for e in normalize_file(str(DATA / "pipeline.audit.log"), HOST)
              if isinstance(e, Event)]
    chunks = [events[i:i + 500] for i in range(0, len(events), 500)]

    def write(parts) -> None:
        for part in parts:
            batch = Batch()
            for ev in part:
                batch.add(ev)
            store.write(batch.statements())

    write(chunks)
    clean = dump(store)
    write(reversed(chunks))
    assert dump(store) == clean
