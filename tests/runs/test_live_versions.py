"""`ursprung run` stores the run and the versions it hashed early while the command still
runs; the run's version of a file is the latest it observed, none once the run deleted it."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path

import msgspec
import pytest

from tests.runs.helpers import ursprung
from ursprung_graph.content.hashing import hash_file
from ursprung_graph.pipeline.record import RecordedRun, record_run
from ursprung_graph.query.runs import latest_versions, run_facts
from ursprung_graph.store.cypher import Cypher

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")

#: The run (by id) and the versions it observed so far, by path.
OBSERVED = Cypher(
    "MATCH (x:PipelineRun {id: $id}) OPTIONAL MATCH (x)-[o:OBSERVED]->(v:Version) "
    "RETURN x.end AS end, v.path AS path, v.sha256 AS sha256, o.at AS at"
)

#: The script waits for the test to create ``go.N`` before each step, so the test can look
#: at the store while it runs.
SCRIPT = """\
import os, sys, time

def step(n):
    deadline = time.monotonic() + 60
    while not os.path.exists(f"go.{n}"):
        if time.monotonic() > deadline:
            sys.exit(3)
        time.sleep(0.02)

open("result.txt", "w").write("first\\n")
open("scratch.txt", "w").write("scratch\\n")
step(1)
open("result.txt", "w").write("second, longer\\n")
os.unlink("scratch.txt")
"""


def _observed(store, run_id: str) -> tuple[bool, dict[str, list[tuple[int, str]]]]:
    rows = store.read(OBSERVED, {"id": run_id})
    seen: dict[str, list[tuple[int, str]]] = {}
    for r in rows:
        if r["path"] is not None:
            seen.setdefault(r["path"], []).append((r["at"], r["sha256"]))
    return bool(rows) and all(r["end"] is None for r in rows), seen


@needs_strace
def test_versions_are_stored_while_the_command_runs(tmp_path: Path, store, settings) -> None:
    check_live_versions(store, tmp_path, "strace", settings)


def check_live_versions(store, tmp_path: Path, tracer: str, settings=None) -> None:
    """While the command waits, the test finds the run (without an end) and the versions of
    what it wrote in the store; the run's versions at the end are the final contents."""
    (tmp_path / "work.py").write_text(SCRIPT)
    result, scratch = tmp_path / "result.txt", str(tmp_path / "scratch.txt")
    done: list[RecordedRun] = []
    runner = threading.Thread(target=lambda: done.append(record_run(
        store, [sys.executable, "work.py"], host="h", pipeline="p", cwd=str(tmp_path),
        run_id="live1", tracer=tracer)))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while True:  # the run is there, without an end, with its early versions
            running, seen = _observed(store, "live1")
            if running and str(result) in seen and scratch in seen:
                break
            assert time.monotonic() < deadline, f"nothing stored while it ran: {seen}"
            time.sleep(0.05)
        first = hash_file(str(result))
        assert first is not None and seen[str(result)] == [(seen[str(result)][0][0],
                                                            first.sha256)]
        if settings is not None:  # and `runs show` says it has no end yet
            shown = ursprung(settings, "runs", "show", "live1")
            assert shown.returncode == 0 and b"no end yet" in shown.stdout, shown.stderr
    finally:
        (tmp_path / "go.1").touch()
        runner.join(120)
    (recorded,) = done
    assert recorded.error is None and recorded.returncode == 0
    assert recorded.stored_early >= 1  # work.py was read once, and unchanged since
    running, seen = _observed(store, "live1")
    assert not running
    final = hash_file(str(result))
    assert final is not None and final.sha256 != first.sha256
    # both contents were observed, the early one first; the run's version is the last
    assert sorted(seen[str(result)]) == sorted(seen[str(result)], key=lambda s: s[0])
    assert [sha for _, sha in sorted(seen[str(result)])] == [first.sha256, final.sha256]
    facts = run_facts(store, recorded.id)
    versions = {f.path: f.sha256 for f in
                (*facts.inputs, *facts.outputs, *facts.intermediates, *facts.programs)}
    assert versions[str(result)] == final.sha256
    # scratch.txt had a version while it ran; the run deleted it after: none now
    assert versions.get(scratch, msgspec.UNSET) is msgspec.UNSET
    assert scratch in seen


def test_the_latest_observed_version_is_the_runs_whatever_the_row_order() -> None:
    def row(at: int | None, sha: str) -> dict:
        return {"run": "r", "file": "f", "at": at, "sha256": sha, "size": 1, "mtime": 1,
                "stored": False}

    rows = [row(5, "early"), row(9, "end"), row(None, "unknown")]
    for order in (rows, rows[::-1], [rows[1], rows[2], rows[0]]):
        (at, version), = latest_versions(order).values()
        assert (at, version.sha256) == (9, "end")
    tie = [row(9, "a"), row(9, "b")]
    assert latest_versions(tie)[("r", "f")][1].sha256 == \
        latest_versions(tie[::-1])[("r", "f")][1].sha256 == "b"
