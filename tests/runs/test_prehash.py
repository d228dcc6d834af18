"""Early hashes: a file hashed while the run ran is used at the end only when ``stat``
proves it unchanged; anything else is hashed again, so the recorded version is always the
content at the end."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from ursprung_graph.content.hashing import FileVersion, Identity, hash_file, still
from ursprung_graph.pipeline.prehash import MAX_EARLY, EarlyHashes
from ursprung_graph.pipeline.record import record_run
from ursprung_graph.query.classify import Classifier
from ursprung_graph.query.runs import run_facts
from ursprung_graph.schema.event import SCHEMA_VERSION, Event, FileRef, Kind, ProcessInfo

#: A classifier for which nothing is software environment.
ANY = Classifier(system_prefixes=(), ignore_patterns=())

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")


def _event(kind: Kind, path: Path) -> Event:
    return Event(v=SCHEMA_VERSION, source="strace", host="h", ts=1, seq="s", kind=kind,
                 proc=ProcessInfo(pid=1, start=1), file=FileRef(str(path)))


def _hashed(early: EarlyHashes, count: int, timeout: float = 10) -> None:
    """Wait until ``count`` early hashes were taken."""
    deadline = time.monotonic() + timeout
    while early.taken < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert early.taken == count, "the file was never hashed early"


def test_an_unchanged_file_keeps_its_early_hash(tmp_path: Path):
    f = tmp_path / "out.txt"
    f.write_text("final\n")
    early = EarlyHashes(1 << 30, ANY, None, settle=0.05)
    early.observe([_event(Kind.WRITE, f)])
    _hashed(early, 1)
    time.sleep(0.05)
    early.stop()
    assert early.version(str(f)) == hash_file(str(f))
    assert (early.reused, early.hashed_late) == (1, 0)


def test_a_file_changed_after_its_early_hash_is_hashed_again(tmp_path: Path):
    """Same size, mtime put back: only ctime tells, and it is enough."""
    f = tmp_path / "out.txt"
    f.write_text("first\n")
    early = EarlyHashes(1 << 30, ANY, None, settle=0.05)
    early.observe([_event(Kind.WRITE, f)])
    _hashed(early, 1)
    early.stop()
    st = f.stat()
    f.write_text("other\n")  # not seen by the tracer: a process outside the run
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    v = early.version(str(f))
    assert v is not None and v.sha256 == hash_file(str(f)).sha256  # type: ignore[union-attr]
    assert (early.reused, early.hashed_late) == (0, 1)


def test_a_change_within_the_clock_tick_of_the_hash_is_not_trusted(tmp_path: Path):
    f = tmp_path / "f"
    f.write_text("x")
    v = hash_file(str(f))
    assert v is not None and v.identity is not None
    changed = max(v.identity.mtime, v.identity.ctime)
    assert not still(v, changed + 1_000_000, f.stat())  # racily clean: hash again
    assert still(v, changed + 100_000_000, f.stat())
    coarse = FileVersion(v.size, 5_000_000_000, v.sha256,
                         Identity(1, 2, v.size, 5_000_000_000, 5_000_000_000))
    assert not still(coarse, 5_500_000_000, os.stat_result((0, 2, 1, 0, 0, 0, v.size, 0, 5,
                                                             5, 0, 0, 0, 0, 0, 0)))


def test_a_file_written_again_and_again_is_left_for_the_end(tmp_path: Path):
    log = tmp_path / "train.log"
    early = EarlyHashes(1 << 30, ANY, None, settle=0.02)
    for i in range(MAX_EARLY):
        with log.open("a") as fh:
            fh.write(f"step {i}\n")
        early.observe([_event(Kind.WRITE, log)])
        _hashed(early, i + 1)
    with log.open("a") as fh:
        fh.write("last step\n")
    early.observe([_event(Kind.WRITE, log)])
    time.sleep(0.3)
    assert early.taken == MAX_EARLY  # no fourth early hash
    early.stop()
    assert early.version(str(log)) == hash_file(str(log)) and early.hashed_late == 1


def test_the_software_environment_is_never_hashed_early(tmp_path: Path):
    """System files, and files in the installation tree of a program the run executed
    (a virtualenv's site-packages), get no version: they are not hashed ahead either."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "lib").mkdir()
    python, module = venv / "bin" / "python", venv / "lib" / "numpy.py"
    python.write_text("#!"), module.write_text("x = 1\n")
    data = tmp_path / "work" / "data.csv"
    data.parent.mkdir()
    data.write_text("a,b\n")
    early = EarlyHashes(1 << 30, Classifier(system_prefixes=(str(tmp_path / "sys"),)),
                        str(data.parent), settle=0.01)
    lib = tmp_path / "sys" / "libc.txt"
    lib.parent.mkdir()
    lib.write_text("x")
    time.sleep(0.05)  # older than a clock tick when hashed: not racily clean
    early.observe([_event(Kind.EXEC, python), _event(Kind.READ, module),
                   _event(Kind.READ, lib), _event(Kind.READ, data)])
    _hashed(early, 1)
    time.sleep(0.2)
    early.stop()
    assert early.taken == 1  # data.csv only
    assert early.version(str(data)) == hash_file(str(data)) and early.reused == 1
    assert early.version(str(module)) == hash_file(str(module)) and early.hashed_late == 1


@needs_strace
def test_a_run_records_the_content_at_its_end(tmp_path: Path, store):
    """The command writes out.txt, waits long enough for it to be hashed early, then
    rewrites it with the same size and puts its mtime back: the run's version is the
    final content; a file left alone keeps its early hash."""
    script = tmp_path / "work.py"
    script.write_text(
        "import os, time\n"
        "open('kept.txt', 'w').write('kept\\n')\n"
        "open('out.txt', 'w').write('AAAA\\n')\n"
        "st = os.stat('out.txt')\n"
        "time.sleep(1.0)\n"
        "open('out.txt', 'w').write('BBBB\\n')\n"
        "os.utime('out.txt', ns=(st.st_atime_ns, st.st_mtime_ns))\n")
    recorded = record_run(store, [sys.executable, str(script)], host="h", pipeline="p",
                          cwd=str(tmp_path))
    assert recorded.error is None and recorded.returncode == 0
    assert recorded.hashed_early >= 1  # kept.txt (and the script)
    facts = run_facts(store, recorded.id)
    assert facts is not None
    sha = {f.path: f.sha256 for f in facts.outputs}
    for name in ("out.txt", "kept.txt"):
        final = hash_file(str(tmp_path / name))
        assert final is not None and sha[str(tmp_path / name)] == final.sha256


def test_hashing_and_keeping_a_file_leave_its_access_time_alone(tmp_path: Path):
    """Looking at a run's files must not change what other tools see of them: a read would
    set the access time of a file whose atime is older than its mtime (relatime)."""
    from ursprung_graph.content.store import ContentStore

    f = tmp_path / "out.txt"
    f.write_text("result\n")
    st = f.stat()
    os.utime(f, ns=(st.st_mtime_ns - 10**12, st.st_mtime_ns))  # atime well before mtime
    before = f.stat().st_atime_ns
    v = hash_file(str(f))
    assert v is not None and v.sha256 is not None
    assert ContentStore(tmp_path / "content").put(str(f), v.sha256)
    assert f.stat().st_atime_ns == before
    with f.open("rb") as fh:  # an ordinary read does set it here (else the test says nothing)
        fh.read()
    assert f.stat().st_atime_ns != before
