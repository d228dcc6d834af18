"""Run comparison rules that no other test pins: a basename match must be unique on both
sides, and size+mtime equality needs both equal (files of the recorded runs in
tests/data/two_runs.audit.log: runs/<N>/model.txt, raw/data.csv, ...)."""

from __future__ import annotations

from ursprung_graph.query.compare import compare, match_files, same_content
from ursprung_graph.query.types import RunFacts, RunFileFact

GIB = 2**30


def test_basename_unique_on_one_side_only_is_no_match() -> None:
    """Run a read one data.csv, run b two (raw/ and old/): which of b's is a's is unknown."""
    a = [RunFileFact(path="/w1/input/data.csv", rel="input/data.csv")]
    b = [RunFileFact(path="/w2/raw/data.csv", rel="raw/data.csv"),
         RunFileFact(path="/w2/old/data.csv", rel="old/data.csv")]
    pairs, only_a, only_b = match_files(a, b)
    assert pairs == []
    assert only_a == a and sorted(f.path for f in only_b) == ["/w2/old/data.csv",
                                                             "/w2/raw/data.csv"]
    pairs, only_a, only_b = match_files(b, a)  # and the mirror image
    assert pairs == [] and only_b == a


def test_basename_unique_on_both_sides_matches() -> None:
    a = [RunFileFact(path="/w1/input/data.csv", rel="input/data.csv")]
    b = [RunFileFact(path="/w2/raw/data.csv", rel="raw/data.csv")]
    assert [(name, how) for name, how, _, _ in match_files(a, b)[0]] == [
        ("data.csv", "basename")]


def test_size_and_mtime_must_both_match() -> None:
    """Above the hashing limit a file is judged by size and mtime: same size, a newer mtime
    is a changed file."""
    fa = RunFileFact(path="/w/runs/1/model.txt", rel="runs/1/model.txt", sha256=None,
                     size=3 * GIB, mtime=1_796_117_826_000_000_000)
    fb = RunFileFact(path="/w/runs/1/model.txt", rel="runs/1/model.txt", sha256=None,
                     size=3 * GIB, mtime=1_796_117_999_000_000_000)
    assert same_content(fa, fb, "output") == (False, "size+mtime")
    assert same_content(fa, fa, "output") == (True, "size+mtime")
    result = compare(RunFacts(id="a", key="run:a", pipeline="p", outputs=[fa]),
                     RunFacts(id="b", key="run:b", pipeline="p", outputs=[fb]))
    assert [e.name for e in result.outputs.changed] == ["runs/1/model.txt"]
    assert result.outputs.same == []
