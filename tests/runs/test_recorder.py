"""The recorder's fast paths give what the slow ones gave: the run ledger classifies a
traced run's files exactly as the graph does, the parser's shortcuts parse as the general
parser, strace's TZ trick leaves the command's environment alone, events reach the sink in
order, and interpreter versions are cached only for binaries."""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

from ursprung_graph.collectors.trace import strace as strace_mod
from ursprung_graph.collectors.trace.runner import ChunkWriter, Tracer, trace
from ursprung_graph.collectors.trace.strace import StraceParser
from ursprung_graph.pipeline import environment as trace_environment
from ursprung_graph.pipeline.ledger import RunLedger
from ursprung_graph.pipeline.record import record_run
from ursprung_graph.pipeline.sinks import StoreSink
from ursprung_graph.query.runs import find_run, run_files

from .test_trace_real import WORKLOAD

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")


def _names(files) -> dict[str, list[str]]:
    return {group: [f.path for f in getattr(files, group)]
            for group in ("inputs", "outputs", "intermediates", "programs", "environment",
                          "ignored")}


@needs_strace
def test_ledger_classifies_like_the_graph(tmp_path: Path, store):
    script = tmp_path / "work.py"
    script.write_text(WORKLOAD)
    recorded = record_run(store, [sys.executable, str(script), "0"], host="h", pipeline="p",
                          cwd=str(tmp_path), content_root=tmp_path / "content")
    assert recorded.error is None
    run = find_run(store, recorded.id)
    from_graph = run_files(store, run)
    # the same run traced again, its files taken from the ledger
    shutil.rmtree(tmp_path / "d")
    ledger = RunLedger()
    tracer = Tracer([sys.executable, str(script), "0"], StoreSink(store), host="h",
                    cwd=str(tmp_path), observe=ledger.add)
    result = tracer.wait_stored(tracer.run())
    from_ledger = ledger.run_files(result.start, result.end, str(tmp_path))
    assert _names(from_ledger) == _names(from_graph)
    assert {f.path for f in from_graph.outputs} >= {str(tmp_path / "d" / "renamed.txt")}
    # every file the graph calls a program, input or output got a version
    with_version = [f.path for f in from_graph.observed() if f.version]
    assert sorted(with_version) == sorted(f.path for f in from_graph.observed())
    assert recorded.versions == len(with_version)


@needs_strace
def test_the_example_pipeline_ledger_matches_the_graph(tmp_path: Path, store):
    from .helpers import EXAMPLE

    shutil.copytree(EXAMPLE / "data", tmp_path / "data")
    argv = ["sh", str(EXAMPLE / "run.sh"), "--lr", "0.01", "--python", sys.executable]
    ledger = RunLedger()
    tracer = Tracer(argv, StoreSink(store), host="h", cwd=str(tmp_path), observe=ledger.add)
    result = tracer.run()
    tracer.wait_stored(result)
    recorded = record_run(store, argv, host="h", pipeline="demo", cwd=str(tmp_path))
    graph = run_files(store, find_run(store, recorded.id))
    mine = ledger.run_files(result.start, result.end, str(tmp_path))
    assert _names(mine) == _names(graph)
    assert {Path(f.path).name for f in graph.intermediates} == {"model.tmp"}


def test_fast_parsing_equals_the_general_parser(monkeypatch: pytest.MonkeyPatch):
    lines = [
        '5 1.000001 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3',
        '5 1.000002 openat(AT_FDCWD, "d/f00001.txt", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 3',
        '5 1.000003 openat(3, "x", O_RDONLY) = -1 ENOENT (No such file or directory)',
        '5 1.000004 openat(AT_FDCWD, "caf\\303\\251 \\"q\\"", O_RDONLY) = 4',
        '5 1.000005 openat(AT_FDCWD, "cut"..., O_RDONLY) = 4',
        '5 1.000006 openat(AT_FDCWD, "x", O_RDONLY|0x80000) = 4',
        "5 1.000007 close(3)                                = 0",
        "5 1.000008 close(99) = -1 EBADF (Bad file descriptor)",
    ]
    fast = StraceParser()
    got = [fast.feed(line) for line in lines]
    never = re.compile("(?!)")
    monkeypatch.setattr(strace_mod, "_FAST_CLOSE", never)
    monkeypatch.setattr(strace_mod, "_FAST_OPENAT", never)
    general = StraceParser()
    want = [general.feed(line) for line in lines]
    assert got == want
    assert [[type(a) for a in c.args] for c in got] == [[type(a) for a in c.args] for c in want]
    assert fast.bad == general.bad == 0


def test_int_of_caches_flag_words():
    flags = {"A": 1, "B": 4}
    assert strace_mod.int_of("A|B|0x10", flags) == 21
    assert strace_mod.int_of("A|B|0x10", flags) == 21
    assert strace_mod.int_of("A|B|0x10", {"A": 2}) == 18  # another table, another answer
    assert strace_mod.int_of("0644") == 0o644 and strace_mod.int_of("12") == 12
    assert strace_mod.int_of("-100") == -100


@needs_strace
@pytest.mark.parametrize("tz", [None, "Europe/Berlin", ""])
def test_the_command_gets_the_callers_environment(tmp_path: Path, tz: str | None):
    env = {k: v for k, v in os.environ.items() if k != "TZ"}
    if tz is not None:
        env["TZ"] = tz
    out = tmp_path / "env"
    code = f"import os; open({str(out)!r}, 'w').write(repr(dict(os.environ)))"
    result = trace([sys.executable, "-c", code], lambda evs: None, host="h", env=env,
                   cwd=str(tmp_path))
    assert result.returncode == 0
    assert eval(out.read_text()) == env


def test_writer_delivers_in_order_and_reports_errors():
    got: list[int] = []
    writer = ChunkWriter(lambda evs: got.extend(evs), min_events=3, max_delay=0.05)
    for i in range(10):
        writer.put([i])
    time.sleep(0.2)  # below min_events, delivered after max_delay
    writer.put([10, 11])
    writer.join()
    assert got == list(range(12))
    assert writer.delivered == 12

    calls = []

    def failing(evs: list) -> None:
        calls.append(list(evs))
        raise RuntimeError("store down")

    writer = ChunkWriter(failing, min_events=1, max_delay=0)
    writer.put([1])
    writer.put([2])
    writer.join()
    assert isinstance(writer.error, RuntimeError) and calls[0][0] == 1
    assert writer.delivered == 0


def test_writer_delivers_a_lone_small_chunk_after_max_delay():
    """A first put below ``min_events`` still goes out once it has waited ``max_delay``
    (the writer used to sleep until ``min_events`` gathered: nothing was stored while a
    quiet command ran)."""
    delivered = threading.Event()
    writer = ChunkWriter(lambda evs: delivered.set(), min_events=1000, max_delay=0.05)
    writer.put([1])
    assert delivered.wait(5)
    writer.join()


def test_writer_does_not_wait_once_hurried():
    delivered = threading.Event()
    writer = ChunkWriter(lambda evs: delivered.set(), min_events=1000, max_delay=60)
    writer.put([1])
    assert not delivered.wait(0.1)
    writer.hurry()
    assert delivered.wait(5)
    writer.join()


def test_interpreter_versions_are_cached_for_binaries_only(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch):
    binary = tmp_path / "python3"
    binary.write_bytes(b"\x7fELF fake")
    script = tmp_path / "python3.11"
    script.write_text("#!/bin/sh\nexec python3 \"$@\"\n")
    asked: list[str] = []
    answers = iter(range(100))

    def probe(path: str) -> str:
        asked.append(path)
        return f"v-{next(answers)}"

    monkeypatch.setattr(trace_environment, "_probe_version", probe)
    cache = tmp_path / "cache" / "interpreters.json"
    first = trace_environment.probe_versions([str(binary), str(script)], cache)
    assert first == {str(binary): first[str(binary)], str(script): first[str(script)]}
    assert sorted(asked) == sorted([str(binary), str(script)])
    asked.clear()
    second = trace_environment.probe_versions([str(binary), str(script)], cache)
    assert asked == [str(script)]  # a script is asked again, the binary is not
    assert second[str(binary)] == first[str(binary)]
    asked.clear()
    binary.write_bytes(b"\x7fELF another build")
    third = trace_environment.probe_versions([str(binary)], cache)
    assert asked == [str(binary)] and third[str(binary)] != first[str(binary)]


def test_a_binary_without_a_version_is_not_asked_again(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    binary = tmp_path / "sh"
    binary.write_bytes(b"\x7fELF fake")
    asked: list[str] = []
    answers = iter(["", None, "v-1"])  # ran without a version; could not be asked; ...

    def probe(path: str) -> str | None:
        asked.append(path)
        return next(answers)

    monkeypatch.setattr(trace_environment, "_probe_version", probe)
    cache = tmp_path / "cache" / "interpreters.json"
    assert trace_environment.probe_versions([str(binary)], cache) == {}
    assert trace_environment.probe_versions([str(binary)], cache) == {}
    assert asked == [str(binary)]  # its "no version" was cached
    binary.write_bytes(b"\x7fELF another build")
    assert trace_environment.probe_versions([str(binary)], cache) == {}  # timed out: None
    assert trace_environment.probe_versions([str(binary)], cache) == {str(binary): "v-1"}
    assert len(asked) == 3  # a failure to ask is not cached


def test_the_recorders_sink_writes_what_a_plain_batch_writes(store):
    from tests.graphdump import dump
    from ursprung_graph.ingest.upserts import Batch
    from ursprung_graph.schema.event import (
        SCHEMA_VERSION,
        Event,
        FileRef,
        Kind,
        ProcessInfo,
        RunInfo,
        VersionInfo,
    )

    root = ProcessInfo(pid=10, start=5)

    def ev(kind: Kind, ts: int, **kw) -> Event:
        return Event(v=SCHEMA_VERSION, source="strace", host="h", ts=ts, seq=str(ts),
                     kind=kind, proc=root, **kw)

    events = [
        ev(Kind.EXEC, 5, file=FileRef("/bin/x")),
        ev(Kind.WRITE, 6, file=FileRef("/w/out")),
        ev(Kind.READ, 7, file=FileRef("/w/in", fs="gpfs1")),
        ev(Kind.RUN, 9, run=RunInfo(id="r1", pipeline="p", argv=["x"], cwd="/w", start=5,
                                    end=9, exit_code=0, members=[(10, 5)])),
        ev(Kind.VERSION, 9, file=FileRef("/w/out"),
           version=VersionInfo(run="r1", size=3, mtime=8, sha256="ab" * 32, stored=True)),
        ev(Kind.VERSION, 9, file=FileRef("/w/in", fs="gpfs1"),
           version=VersionInfo(run="r1", size=30, mtime=4)),
        ev(Kind.VERSION, 9, file=FileRef("/w/never-seen"),
           version=VersionInfo(run="r1", size=1, mtime=2, sha256="cd" * 32)),
    ]
    sink = StoreSink(store)
    sink(events[:3])
    sink(events[3:])
    mine = dump(store)
    store.clear()
    batch = Batch()
    for e in events:
        batch.add(e)
    store.write(batch.statements())
    assert dump(store) == mine


def test_hashing_skips_fifos_without_waiting(tmp_path: Path):
    from ursprung_graph.content import hash_file

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    started = time.monotonic()
    assert hash_file(str(fifo)) is None
    assert time.monotonic() - started < 5


@needs_strace
def test_not_live_delivers_everything_after_the_command(tmp_path: Path):
    chunks: list[int] = []
    script = tmp_path / "work.py"
    script.write_text(WORKLOAD)
    result = trace([sys.executable, str(script), "0"], lambda evs: chunks.append(len(evs)),
                   host="h", cwd=str(tmp_path), live=False, chunk_events=50)
    assert result.returncode == 0 and result.sink_error is None
    assert sum(chunks) == result.events > 50 and max(chunks) == 50


@needs_strace
def test_the_store_is_opened_while_the_command_runs(tmp_path: Path, store):
    """`record_run` given a function that opens the store calls it beside the command,
    which does not wait for it: here the opener waits until the command has started."""
    marker = tmp_path / "started"
    script = tmp_path / "wait.py"
    script.write_text(
        "import pathlib, sys, time\n"
        f"pathlib.Path({str(marker)!r}).write_text('x')\n"
        "time.sleep(1.0)\n")
    seen: list[bool] = []

    def opener():
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(marker.exists())
        return store

    recorded = record_run(opener, [sys.executable, str(script)], host="h", pipeline="p",
                          cwd=str(tmp_path))
    assert recorded.error is None and recorded.returncode == 0
    assert seen == [True]
    assert find_run(store, recorded.id) is not None


@needs_strace
def test_a_store_that_cannot_be_opened_is_reported_after_the_command(tmp_path: Path):
    from ursprung_graph.store import StoreError

    def opener():
        raise StoreError("no such server")

    out = tmp_path / "out.txt"
    recorded = record_run(opener, ["sh", "-c", f"echo hi > {out}; exit 3"], host="h",
                          pipeline="p", cwd=str(tmp_path))
    assert recorded.returncode == 3 and out.read_text() == "hi\n"
    assert recorded.error is not None and "no such server" in recorded.error
