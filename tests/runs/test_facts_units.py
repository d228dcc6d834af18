"""Pure parts of runs: parameters, file matching and comparison, content versions, config,
and idempotent run upserts."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from ursprung_graph.cli.compare_text import render
from ursprung_graph.config import ConfigError, load_config
from ursprung_graph.content import ContentStore, hash_file
from ursprung_graph.ingest.runs import params_from_argv
from ursprung_graph.ingest.upserts import Batch
from ursprung_graph.query.compare import compare, differs, match_files
from ursprung_graph.query.types import OneSidedValue, RunFacts, RunFileFact, ValueEntry
from ursprung_graph.schema.event import (
    SCHEMA_VERSION,
    Event,
    FileRef,
    Kind,
    ProcessInfo,
    RunInfo,
    VersionInfo,
)


def test_params_from_the_command_line():
    argv = ["python", "train.py", "--lr", "0.1", "--epochs=5", "seed=3", "--verbose",
            "--shift", "-1", "data.csv", "--", "--not", "x=1"]
    assert params_from_argv(argv) == {"lr": "0.1", "epochs": "5", "seed": "3",
                                      "verbose": "true", "shift": "-1"}
    assert params_from_argv(["sh", "-c", "a=1 b"]) == {}


def f(path: str, rel: str | None = None, sha: str | None = None, **kw) -> RunFileFact:
    return RunFileFact(path=path, rel=rel, sha256=sha, **kw)


def test_files_match_by_relative_then_absolute_then_unique_basename():
    a = [f("/a/data/x.csv", "data/x.csv"), f("/shared/y.csv"), f("/a/z.txt", "z.txt"),
         f("/a/1/m.txt", "1/m.txt"), f("/a/2/m.txt", "2/m.txt")]
    b = [f("/b/data/x.csv", "data/x.csv"), f("/shared/y.csv"), f("/b/out/z.txt", "out/z.txt"),
         f("/b/3/m.txt", "3/m.txt")]
    pairs, only_a, only_b = match_files(a, b)
    got = {(name, how) for name, how, _, _ in pairs}
    assert got == {("data/x.csv", "relative"), ("/shared/y.csv", "absolute"),
                   ("z.txt", "basename")}
    # m.txt is not unique in A: no basename match
    assert {x.path for x in only_a} == {"/a/1/m.txt", "/a/2/m.txt"}
    assert {x.path for x in only_b} == {"/b/3/m.txt"}


def facts(**kw) -> RunFacts:
    base = {"id": "r", "key": "run:r", "params": {}, "inputs": [], "outputs": [],
            "programs": [], "environment": {}, "metrics": {}, "exit_code": 0,
            "duration": 10.0}
    base.update(kw)
    return RunFacts(**base)


def test_compare_sections_and_bases():
    a = facts(params={"lr": "0.1", "seed": "1"}, metrics={"loss": "0.5"},
              inputs=[f("/a/raw.csv", "raw.csv", "h1"), f("/a/t.csv", "t.csv", "h2"),
                      f("/a/old.csv", "old.csv", None, prior_write=None),
                      f("/a/big.bin", "big.bin", None, size=10, mtime=5)],
              outputs=[f("/a/m", "m", "h3")], environment={"/usr/bin/python3": "3.11.2"},
              exit_code=0, duration=10.0)
    b = facts(params={"lr": "0.2", "seed": "1", "new": "x"}, metrics={"loss": "0.5"},
              inputs=[f("/b/raw.csv", "raw.csv", "h9"), f("/b/t.csv", "t.csv", "h2"),
                      f("/b/old.csv", "old.csv", None, prior_write=77),
                      f("/b/big.bin", "big.bin", None, size=10, mtime=5)],
              outputs=[f("/b/m", "m", "h3")], environment={"/usr/bin/python3": "3.11.4"},
              exit_code=1, duration=10.4)
    r = compare(a, b)
    assert r.params.changed == [ValueEntry(name="lr", a="0.1", b="0.2")]
    assert r.params.same == [ValueEntry(name="seed", a="1", b="1")]
    assert r.params.only_b == [OneSidedValue(name="new", value="x")]
    changed = {e.name: e.basis for e in r.inputs.changed}
    assert changed == {"raw.csv": "sha256", "old.csv": "prior write"}
    same = {e.name: e.basis for e in r.inputs.same}
    assert same == {"t.csv": "sha256", "big.bin": "size+mtime"}
    assert [e.name for e in r.outputs.same] == ["m"]
    assert r.environment.changed[0].b == "3.11.4"
    assert r.metrics.same and r.exit.changed == [ValueEntry(name="exit_code", a=0, b=1)]
    assert r.duration.same  # within the tolerance
    assert compare(a, msgspec.structs.replace(b, duration=30.0)).duration.changed
    assert differs(r)
    text = render(r)
    assert "lr" in text and "raw.csv" in text and "only in B" in text
    assert not differs(compare(a, a))
    assert "no differences" in render(compare(a, a))


def test_hash_file_streams_and_respects_the_limit(tmp_path: Path):
    import hashlib

    p = tmp_path / "x.bin"
    data = b"abc" * 700_000  # > one read chunk
    p.write_bytes(data)
    v = hash_file(str(p))
    assert v is not None and v.sha256 == hashlib.sha256(data).hexdigest()
    assert v.size == len(data)
    big = hash_file(str(p), limit=1000)
    assert big is not None and big.sha256 is None and big.size == len(data)
    assert hash_file(str(tmp_path / "missing")) is None
    assert hash_file(str(tmp_path)) is None  # not a regular file


def test_hash_file_reads_to_the_end_whatever_the_size_says(tmp_path: Path):
    import hashlib

    from ursprung_graph.content.hashing import CHUNK

    for n in (0, 1, 50, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK):
        p = tmp_path / f"f{n}"
        data = bytes(range(256)) * (n // 256) + bytes(n % 256)
        p.write_bytes(data)
        v = hash_file(str(p))
        assert v is not None and v.sha256 == hashlib.sha256(data).hexdigest(), n
    # a pseudo-file whose size (0) says nothing of its content is read to its end
    status = hash_file("/proc/self/status")
    assert status is not None and status.size == 0
    assert status.sha256 != hashlib.sha256(b"").hexdigest()


def test_content_store_deduplicates_and_diffs(tmp_path: Path):
    store = ContentStore(tmp_path / "content")
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    a.write_text("one\ntwo\n")
    b.write_text("one\ntwo\n")
    c.write_text("one\nthree\n")
    ha, hc = hash_file(str(a)).sha256, hash_file(str(c)).sha256
    assert store.put(str(a), ha) and store.put(str(b), ha) and store.put(str(c), hc)
    blobs = [p for p in (tmp_path / "content").rglob("*") if p.is_file()]
    assert len(blobs) == 2  # a and b share one blob
    assert store.get(ha) == b"one\ntwo\n"
    diff = store.diff(ha, hc, name_a="a", name_b="c")
    assert "-two" in diff and "+three" in diff
    a.write_text("changed since it was hashed")
    assert not store.put(str(a), "0" * 64)  # content no longer matches: not stored
    with pytest.raises(ValueError):
        store.path_of("../etc")


def test_runs_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("URSPRUNG_CONFIG", raising=False)
    monkeypatch.setenv("URSPRUNG_PARAM_ENV", "B")
    monkeypatch.chdir(tmp_path)
    file = tmp_path / "ursprung.toml"
    assert load_config().runs.param_env == ("B",)
    file.write_text(
        '[runs]\nparam_env = ["A"]\nhash_limit = 10\nstore_patterns = ["*.py"]\n')
    config = load_config(file).runs
    assert config.param_env == ("A", "B") and config.hash_limit == 10
    assert config.store_patterns == ("*.py",)
    file.write_text('[runs]\nhash_limit = "big"\n')
    with pytest.raises(ConfigError, match="hash_limit"):
        load_config(file)


def test_run_and_version_upserts_are_idempotent(store):
    from tests.graphdump import dump

    proc = ProcessInfo(pid=10, start=5)

    def ev(kind: Kind, ts: int, **kw) -> Event:
        return Event(v=SCHEMA_VERSION, source="t", host="h", ts=ts, seq=str(ts), kind=kind,
                     proc=proc, **kw)

    events = [
        ev(Kind.EXEC, 5, file=FileRef("/bin/x")),
        ev(Kind.WRITE, 6, file=FileRef("/w/out")),
        ev(Kind.RUN, 9, run=RunInfo(id="r1", pipeline="p", argv=["x", "--a", "1"], cwd="/w",
                                    start=5, end=9, exit_code=0, params={"a": "1"},
                                    members=[(10, 5)])),
        ev(Kind.VERSION, 9, file=FileRef("/w/out"),
           version=VersionInfo(run="r1", size=3, mtime=8, sha256="ab" * 32, stored=True)),
    ]

    def write() -> None:
        batch = Batch()
        for e in events:
            batch.add(e)
        store.write(batch.statements())

    write()
    first = dump(store)
    write()
    assert dump(store) == first
    from ursprung_graph.query.runs import find_run, run_facts

    run = find_run(store, "r1")
    assert run.params == {"a": "1"} and run.root == "p:h:10:5"
    got = run_facts(store, run)
    assert [o.path for o in got.outputs] == ["/w/out"]
    assert got.outputs[0].sha256 == "ab" * 32 and got.outputs[0].stored
