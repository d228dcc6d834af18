"""Review fixes of the run recorder: replaying a run's writes in any order leaves the graph
unchanged (traced runs, `runs define`, and run/version events one by one), the human output
of `runs show`/`runs compare` escapes control characters from the graph, and the tracer
takes its Linux constants from the one shared module."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.events import S, Script
from tests.graphdump import dump
from ursprung_graph.ingest.upserts import Batch
from ursprung_graph.query.runs import find_run
from ursprung_graph.schema.event import (
    SCHEMA_VERSION,
    Event,
    FileRef,
    Kind,
    ProcessInfo,
    RunInfo,
    VersionInfo,
)

from .helpers import REPO

HOST = "h1"


class Recording:
    """A store that remembers every write (a batch of statements), to replay them."""

    def __init__(self, store) -> None:
        self.store = store
        self.writes: list = []

    def write(self, statements) -> None:
        statements = list(statements)
        self.writes.append(statements)
        self.store.write(statements)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def _replayed_reversed_is_unchanged(store, writes: list) -> None:
    before = dump(store)
    for statements in reversed(writes):
        store.write(statements)
    assert dump(store) == before
    for statements in writes:  # and forwards again, over the reversed replay
        store.write(statements)
    assert dump(store) == before


def _write_each(store, events: list[Event]) -> None:
    for ev in events:
        batch = Batch()
        batch.add(ev)
        store.write(batch.statements())


def _run_events() -> list[Event]:
    """A run's events as the recorder once wrote them: the run without its environment,
    then with it (same time and seq), and two versions of one file observed at two
    times."""
    s = Script(HOST)
    p = s.proc(100, 1, ["python3", "job.py"])
    s.exec(1, p, "/usr/bin/python3")
    s.read(2, p, "/d/in.csv")
    s.write(3, p, "/d/out.csv")
    s.exit(4, p, 0)
    info = RunInfo(id="r1", pipeline="job", argv=["python3", "job.py"], cwd="/d", start=1 * S,
                   end=4 * S, exit_code=0, members=[(100, 1 * S)])
    root = ProcessInfo(pid=100, start=1 * S)

    def ev(kind: Kind, ts: int, seq: str, **kw) -> Event:
        return Event(v=SCHEMA_VERSION, source="test", host=HOST, ts=ts, seq=seq, kind=kind,
                     proc=root, **kw)

    full = RunInfo(**{**{n: getattr(info, n) for n in info.__struct_fields__},
                      "environment": {"/usr/bin/python3": "3.11.2"}})
    version = VersionInfo(run="r1", size=3, mtime=2 * S, sha256="ab" * 32)
    return [*s.events, ev(Kind.RUN, 4 * S, "run:r1", run=info),
            ev(Kind.RUN, 4 * S, "run:r1", run=full),
            ev(Kind.VERSION, 5 * S, "v0", file=FileRef("/d/in.csv"), version=version),
            ev(Kind.VERSION, 6 * S, "v1", file=FileRef("/d/in.csv"), version=version)]


def test_run_and_version_events_in_any_order(store):
    events = _run_events()
    _write_each(store, events)
    forwards = dump(store)
    run = find_run(store, "r1")
    assert run.environment == {"/usr/bin/python3": "3.11.2"}
    assert run.end == 4 * S and run.exit_code == 0
    _write_each(store, list(reversed(events)))  # a replay, in reverse order
    assert dump(store) == forwards
    # and the events of a run in one batch combine as they do one by one
    store.clear()
    batch = Batch()
    for ev in reversed(events):
        batch.add(ev)
    store.write(batch.statements())
    assert dump(store) == forwards


def test_runs_define_replayed_in_reverse(store):
    from ursprung_graph.pipeline.define import define_runs
    from ursprung_graph.pipeline.importer import import_file

    log = REPO / "tests" / "data" / "two_runs.audit.log"
    if not log.is_file():
        pytest.skip("the recorded two-run audit log is not there")
    import_file(store, log, host="recorder")
    recording = Recording(store)
    ids = define_runs(recording, "train", r"python3(\.[0-9]+)? .*bin/train\.py --lr",
                      host="recorder")
    assert len(ids) == 2 and len(recording.writes) == 2
    assert all(find_run(store, i).environment for i in ids)
    _replayed_reversed_is_unchanged(store, recording.writes)
    assert all(find_run(store, i).environment for i in ids)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_traced_run_replayed_in_reverse(tmp_path: Path, store):
    from ursprung_graph.pipeline.record import record_run

    script = tmp_path / "job.py"
    script.write_text("open('out.txt', 'w').write(open('job.py').read())\n")
    recording = Recording(store)
    recorded = record_run(recording, [sys.executable, str(script), "--lr", "0.1"], host="h",
                          pipeline="p", cwd=str(tmp_path))
    assert recorded.error is None and recorded.versions >= 2
    assert find_run(store, recorded.id).environment
    _replayed_reversed_is_unchanged(store, recording.writes)


# --------------------------------------------------------------------------- output

EVIL_IN = "/d/in\n\x1b[31mforged.csv"
EVIL_OUT = "/d/out\x1b[31m.csv"


def _evil_run(store, run_id: str, pid: int, t: int, inputs: list[str]) -> None:
    s = Script(HOST)
    argv = ["python3", "job.py", "--name", "a\nb\x1b[31m"]
    p = ProcessInfo(pid=pid, start=t * S, exe="/usr/bin/python3", argv=argv, cwd="/d")
    s.exec(t, p, "/usr/bin/python3")
    for i, path in enumerate(inputs):
        s.read(t + 1 + i, p, path)
    s.write(t + 5, p, EVIL_OUT)
    s.exit(t + 6, p, 0)
    info = RunInfo(id=run_id, pipeline="job", argv=argv, cwd="/d", start=t * S,
                   end=(t + 6) * S, exit_code=0, origin="audit",
                   params={"name": "a\nb\x1b[31m"}, members=[(pid, t * S)])
    s.events.append(Event(v=SCHEMA_VERSION, source="test", host=HOST, ts=(t + 6) * S,
                          seq=f"run:{run_id}", kind=Kind.RUN, proc=p, run=info))
    batch = Batch()
    for ev in s.events:
        batch.add(ev)
    store.write(batch.statements())


def test_show_and_compare_escape_control_characters(store):
    from ursprung_graph.cli.runs import runs

    _evil_run(store, "a" * 32, 100, 10, [EVIL_IN])
    _evil_run(store, "b" * 32, 200, 20, ["/d/plain.csv"])
    runner = CliRunner()
    for args in (["show", "a" * 8], ["compare", "a" * 8, "b" * 8], ["list"]):
        out = runner.invoke(runs, args)
        assert out.exit_code == 0, out.output
        assert "\x1b" not in out.output, args
        assert "forged" not in out.output or "in\\x0a\\x1b[31mforged" in out.output, args
        for line in out.output.splitlines():
            assert not line.startswith("b\\x1b") and not line.startswith("\x1b"), args
    shown = runner.invoke(runs, ["show", "a" * 8]).output
    assert "in\\x0a\\x1b[31mforged.csv" in shown
    assert "out\\x1b[31m.csv" in shown
    compared = runner.invoke(runs, ["compare", "a" * 8, "b" * 8]).output
    assert "--name a\\x0ab\\x1b[31m" in compared


def test_tracer_takes_the_shared_linux_constants():
    from ursprung_graph.collectors import linux
    from ursprung_graph.collectors.trace import convert

    assert convert.OPEN_FLAGS is linux.OPEN_FLAGS
    for name in ("O_WRONLY", "O_CREAT", "O_TRUNC", "CLONE_THREAD"):
        assert getattr(convert, name) == getattr(linux, name)
    assert "OPEN_FLAGS =" not in Path(convert.__file__).read_text()


def test_ingest_runs_only_builds_rows_and_upserts():
    import ursprung_graph.ingest.runs as ingest_runs
    from ursprung_graph.pipeline import environment
    from ursprung_graph.query import runs as query_runs

    for name in ("CANDIDATE_PROCESSES", "PROCESS_PARENTS", "PROCESS_CHILDREN", "define_runs",
                 "environment_of", "probe_versions", "_distributions", "_subtree"):
        assert not hasattr(ingest_runs, name), name
    assert "subprocess" not in Path(ingest_runs.__file__).read_text()
    assert callable(environment.environment_of) and callable(query_runs.is_interpreter)
    assert callable(query_runs.run_roots)


def test_run_rows_are_chunked_by_the_upserts_rule(monkeypatch: pytest.MonkeyPatch):
    from ursprung_graph.ingest import rows as upserts
    from ursprung_graph.ingest.runs import UPSERT_RUNS, RunRows

    monkeypatch.setattr(upserts, "ROWS_PER_STATEMENT", 2)
    rows = RunRows()
    for i in range(5):
        rows.add(Event(v=SCHEMA_VERSION, source="test", host=HOST, ts=S, seq=str(i),
                       kind=Kind.RUN, proc=ProcessInfo(pid=i), run=RunInfo(id=f"r{i}",
                                                                           pipeline="p")))
    sizes = [len(p["rows"]) for s, p in rows.statements() if s == UPSERT_RUNS]
    assert sizes == [2, 2, 1]
