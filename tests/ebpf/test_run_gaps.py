"""A traced run whose eBPF tracer lost records is incomplete: its gaps are Gap nodes linked
to the run, and `ursprung runs show` says so (text and JSON)."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import pytest

from tests.runs.helpers import ursprung
from ursprung_graph.collectors.ebpf import runner
from ursprung_graph.collectors.ebpf.capture import Capture
from ursprung_graph.pipeline.record import record_run
from ursprung_graph.query.runs import run_facts

from .conftest import needs_ebpf

pytestmark = needs_ebpf


def test_an_ebpf_run_with_lost_records_is_incomplete(tmp_path: Path, store, settings,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # The real tracer with a one-page ring buffer (as test_capture's lost-events test): the
    # burst grows until the kernel drops records, whatever the machine's speed.
    monkeypatch.setattr(runner, "Capture", functools.partial(Capture, ring_pages=1))
    for n in (20000, 100000, 400000):
        burst = (f"import os\nfor i in range({n}):\n"
                 f"    os.close(os.open({str(tmp_path)!r} + '/f%d' % (i % 50), 65))\n")
        recorded = record_run(store, [sys.executable, "-c", burst], host="h", pipeline="burst",
                              cwd=str(tmp_path), tracer="ebpf")
        assert recorded.error is None and recorded.returncode == 0
        if recorded.trace.lost:
            break
    assert recorded.trace.lost > 0
    facts = run_facts(store, recorded.id)
    assert not facts.complete
    assert {g.source for g in facts.gaps} == {"ebpf-lost"}
    assert sum(g.count or 0 for g in facts.gaps) == recorded.trace.lost
    assert all(g.run == recorded.id and g.host == "h" for g in facts.gaps)
    shown = ursprung(settings, "runs", "show", recorded.id, "--json")
    assert shown.returncode == 0, shown.stderr
    as_json = json.loads(shown.stdout)
    assert as_json["complete"] is False and len(as_json["gaps"]) == len(facts.gaps)
    text = ursprung(settings, "runs", "show", recorded.id).stdout.decode()
    assert f"INCOMPLETE: this run crosses {len(facts.gaps)} capture gaps" in text
    assert "ebpf-lost" in text and "lost by the eBPF tracer" in text
