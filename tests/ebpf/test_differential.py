"""Differential: the same pipelines traced by eBPF and by strace give the same lineage
answers and the same run comparison (the example pipeline run twice with a changed input
and parameter; the recorded pipeline script of tests/realaudit with its pipe, rename, HTTP
download and late read)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runs.helpers import EXAMPLE, ursprung
from ursprung_graph.config import Settings

from .conftest import needs_ebpf

pytestmark = [needs_ebpf,
              pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")]

REALAUDIT = Path(__file__).resolve().parents[1] / "realaudit" / "pipeline.sh"
TRACERS = ("strace", "ebpf")


def graph(settings: Settings, tracer: str) -> Settings:
    return Settings(home=settings.home, store_url=None, graph=f"{settings.graph}_{tracer}")


def run(settings: Settings, work: Path, tracer: str, *cmd: str) -> str:
    out = ursprung(settings, "run", "--tracer", tracer, "--pipeline", "demo", "--id-file",
                   str(work / "id"), "-v", "--", *cmd, cwd=work)
    assert out.returncode == 0, out.stderr
    assert b"recorded run" in out.stderr
    return (work / "id").read_text().strip()


def lineage(settings: Settings, path: Path, work: Path) -> dict[str, object]:
    """The lineage answer, with the work directory's name taken out."""
    up = json.loads(ursprung(settings, "lineage", str(path), "--json", check=True).stdout)
    files = sorted(str(n.get("path")).replace(str(work), "<work>") for n in up["nodes"]
                   if n["kind"] == "file")
    kinds = sorted(n["kind"] for n in up["nodes"])
    edges = sorted({e.get("kind") or e.get("rel") or e.get("type") for e in up["edges"]},
                   key=str)
    return {"files": files, "kinds": kinds, "edges": edges}


def comparison(settings: Settings, first: str, second: str) -> dict[str, object]:
    """What `runs compare` says changed, stayed and is one-sided (names), and the changed
    parameters' values; durations and times are the runs' own."""
    result = json.loads(ursprung(settings, "runs", "compare", first, second, "--json",
                                 check=True).stdout)
    out: dict[str, object] = {}
    for section, value in sorted(result.items()):
        if section == "duration" or not isinstance(value, dict):
            continue
        for k in ("changed", "same", "only_a", "only_b"):
            names = sorted(Path(str(e["name"])).name if section == "programs" else str(e["name"])
                           for e in value.get(k, []))
            out[f"{section}.{k}"] = names
    out["params.values"] = sorted((e["name"], e["a"], e["b"])
                                  for e in result["params"]["changed"])
    return out


def test_example_pipeline_same_answers(tmp_path: Path, settings: Settings):
    answers = {}
    for tracer in TRACERS:
        s = graph(settings, tracer)
        work = tmp_path / tracer
        shutil.copytree(EXAMPLE / "data", work / "data")
        cmd = ("sh", str(EXAMPLE / "run.sh"), "--python", sys.executable)
        first = run(s, work, tracer, *cmd, "--lr", "0.01")
        with open(work / "data" / "raw.csv", "a", encoding="utf-8") as fh:
            fh.write("6,12.2\n")
        second = run(s, work, tracer, *cmd, "--lr", "0.02")
        answers[tracer] = (comparison(s, first, second),
                           lineage(s, work / "out" / "report.txt", work))
    strace, ebpf = answers["strace"], answers["ebpf"]
    assert ebpf[0] == strace[0]
    assert ebpf[1] == strace[1]
    # and the answer is the right one, not just the same
    assert ebpf[0]["params.values"] == [("lr", "0.01", "0.02")]
    assert "<work>/work/model.tmp" in ebpf[1]["files"] and "pipe" in ebpf[1]["kinds"]


def test_recorded_pipeline_script_same_lineage(tmp_path: Path, settings: Settings):
    answers = {}
    for tracer in TRACERS:
        s = graph(settings, tracer)
        work = tmp_path / tracer
        work.mkdir()
        subprocess.run(["bash", str(REALAUDIT), "prepare", str(work)], check=True)
        run(s, work, tracer, "bash", str(REALAUDIT), "run", str(work))
        answers[tracer] = lineage(s, work / "final" / "result.txt", work)
    assert answers["ebpf"] == answers["strace"]
    files = answers["ebpf"]["files"]
    assert "<work>/raw/a.txt" in files and "<work>/srv/served.txt" in files
    assert "<work>/raw/late_in.txt" not in files  # read only after the result was written
    assert "<work>/unrelated_in.txt" not in files
