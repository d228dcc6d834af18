"""Runs as replicas on audit data: the two runs of tests/data/two_runs.audit.log, defined with
`runs define`, go through the same model as traced runs. The second run also reads
raw/extra.csv: that is among what it did and the first did not."""

from __future__ import annotations

from tests.runs.helpers import REPO
from ursprung_graph.pipeline.define import define_runs
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.winnower.abstraction import Abstractor
from ursprung_graph.winnower.runs import runs_report

LOG = REPO / "tests" / "data" / "two_runs.audit.log"


def test_runs_defined_on_audit_data(store):
    import_file(store, LOG, host="recorder")
    ids = define_runs(store, "train", r"python3(\.[0-9]+)? .*bin/train\.py --lr",
                      host="recorder")
    report = runs_report(store, "train", Abstractor())
    assert report.runs == ids and len(ids) == 2
    second = {d.run: d for d in report.deviations}[ids[1]]
    reads = [f for f in second.facts if f.rel == "READ" and f.target.endswith("/extra.csv")]
    assert reads and all(f.origins == {ids[1]: 1} for f in reads)
    assert any(e.text.endswith("raw/extra.csv") for f in reads for e in f.examples)
    first = {d.run: d for d in report.deviations}.get(ids[0])
    assert first is None or not any(f.target.endswith("/extra.csv") for f in first.facts)
