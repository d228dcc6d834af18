"""`ursprung runs define` on a real audit log of two runs of a pipeline
(tests/realaudit/pipeline2.sh, recorded into tests/data/two_runs.audit.log)."""

from __future__ import annotations

import json
import re

import pytest

from ursprung_graph.pipeline.define import define_runs
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.query.compare import compare
from ursprung_graph.query.runs import list_runs, run_facts
from ursprung_graph.query.types import RunFileFact, ValueEntry

from .helpers import REPO, ursprung

DATA = REPO / "tests" / "data"
LOG = DATA / "two_runs.audit.log"
MANIFEST = REPO / "tests" / "realaudit" / "manifest.json"
HOST = "recorder"

pytestmark = pytest.mark.skipif(not LOG.is_file() or not MANIFEST.is_file(),
                                reason="the recorded two-run audit log is not there yet")


def _spec() -> tuple[str, dict]:
    manifest = json.loads(MANIFEST.read_text())
    spec = manifest["pipeline2.sh"]
    workdir = re.search(r"recorded in (/[^ )]+)", manifest["comment"]).group(1)
    return workdir, spec


def _rels(files: list[RunFileFact]) -> set[str]:
    return {f.rel or f.path for f in files}


@pytest.fixture()
def defined(store):
    import_file(store, LOG, host=HOST)
    pattern = r"python3(\.[0-9]+)? .*bin/train\.py --lr"
    ids = define_runs(store, "train", pattern, host=HOST)
    return store, ids


def test_two_runs_with_their_inputs_and_outputs(defined):
    store, ids = defined
    workdir, spec = _spec()
    assert len(ids) == 2
    runs = list_runs(store, "train")
    assert [r.id for r in runs] == ids  # oldest first
    for run, expected in zip(runs, spec["runs"], strict=True):
        assert re.search(expected["root_cmdline_regex"], run.command)
        assert run.cwd == workdir and run.origin == "audit"
        facts = run_facts(store, run.id)
        for name, value in expected["params"].items():
            assert facts.params[name.lstrip("-")] == value
        inputs, outputs = _rels(facts.inputs), _rels(facts.outputs)
        assert outputs == set(expected["outputs"])
        assert set(expected["must_include"]) <= inputs
        assert not set(expected["must_exclude"]) & (inputs | outputs)
        assert "bin/train.py" in _rels(facts.programs)
        # nothing of the interpreter's installation or of the system counts as data
        assert all(not p.startswith(("/usr/", "/etc/", "/lib")) for p in inputs)
        # (the recording script itself is inherited as an open descriptor by the run's
        # root, which the OS model counts as read when the root execs)
        others = {p for p in inputs if not p.startswith(("raw/", "bin/"))}
        assert all(p.endswith("/pipeline2.sh") for p in others), inputs


def test_defining_again_changes_nothing(defined):
    from tests.graphdump import dump

    store, ids = defined
    before = dump(store)
    assert define_runs(store, "train", r"python3(\.[0-9]+)? .*bin/train\.py --lr",
                       host=HOST) == ids
    assert dump(store) == before


def test_compare_the_audited_runs(defined):
    store, ids = defined
    _, spec = _spec()
    result = compare(run_facts(store, ids[0]), run_facts(store, ids[1]))
    expected = spec["compare"]
    changed = {e.name: (e.a, e.b) for e in result.params.changed}
    for name, (a, b) in expected["params_differ"].items():
        assert changed[name.lstrip("-")] == (a, b)
    assert {e.name for e in result.inputs.only_b} == set(
        expected["inputs_only_in_second"])
    assert not result.inputs.only_a
    assert {e.name for e in result.inputs.changed} == set(
        expected["inputs_in_both_changed"])
    assert set(expected["inputs_in_both_same_content"]) <= {
        e.name for e in result.inputs.same}
    [changed_data] = result.inputs.changed
    assert changed_data.basis == "prior write"
    assert result.exit.same == [ValueEntry(name="exit_code", a=0, b=0)]


def test_runs_define_cli(settings, store):
    import_file(store, LOG, host=HOST)
    out = ursprung(settings, "runs", "define", "train", "--match",
                   r"bin/train\.py --lr", "--host", HOST, "--json", check=True)
    runs = json.loads(out.stdout)
    assert len(runs) == 2
    listed = json.loads(ursprung(settings, "runs", "list", "--pipeline", "train", "--json",
                                 check=True).stdout)
    assert [r["id"] for r in listed] == [r["id"] for r in runs]
    table = ursprung(settings, "runs", "compare", runs[0]["id"][:10], runs[1]["id"][:10],
                     check=True).stdout.decode()
    assert "raw/data.csv" in table and "raw/extra.csv" in table
    bad = ursprung(settings, "runs", "define", "x", "--match", "([")
    assert bad.returncode == 2 and b"not a regular expression" in bad.stderr
