"""Capture gaps through the API: `lineage { complete gaps }` and `run(id) { complete gaps }`
over the recorded log with an auditd restart and cut-off events."""

from __future__ import annotations

from pathlib import Path

from ursprung_graph.pipeline.define import define_runs
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.query.runs import find_run

from .conftest import PATIENT, serving

LOG = Path(__file__).resolve().parents[1] / "data" / "gaps.audit.log"
WORK = "/tmp/ursprung-gaps"

LINEAGE = """query ($path: String!) { lineage(path: $path, includeSystem: true) {
  complete gaps { key host source start end count reason runId } } }"""
RUN = """query ($id: String!) { run(id: $id) { complete gaps { source start end } } }"""


def test_lineage_and_runs_say_where_they_cross_gaps(store) -> None:
    import_file(store, LOG, host="h1")
    # the first of the script's bash subshells of the burst ran while the kernel dropped
    # records; tr ran before auditd was stopped
    script = min((find_run(store, r) for r in define_runs(
        store, "gaps", r"^bash .*gaps\.sh run", host="h1")), key=lambda r: r.start or 0).id
    (tr,) = define_runs(store, "upper", r"^tr a-z A-Z", host="h1")
    with serving(store, limits=PATIENT) as api:
        out = api.query(LINEAGE, path=f"{WORK}/final/out.txt")["lineage"]
        assert out["complete"] is False
        daemon = [g for g in out["gaps"] if g["source"] == "auditd-daemon"]
        assert daemon == [{"key": "gap:h1:auditd-daemon:1796127675250000000", "host": "h1",
                           "source": "auditd-daemon", "start": "1796127675250000000",
                           "end": "1796127675825000000", "count": None,
                           "reason": "auditd end (op=terminate, res=success)", "runId": None}]
        assert len(out["gaps"]) == 209
        before = api.query(LINEAGE, path=f"{WORK}/work/a.txt")["lineage"]
        assert before == {"complete": True, "gaps": []}
        whole = api.query(RUN, id=script)["run"]
        assert whole["complete"] is False
        assert {"source": "truncated-event", "start": "1796127675984000000",
                "end": "1796127675984000000"} in whole["gaps"]
        assert api.query(RUN, id=tr)["run"] == {"complete": True, "gaps": []}
