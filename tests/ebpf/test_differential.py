"""Differential: the same pipelines traced by eBPF, by strace and by the kernel audit
subsystem give the same lineage answers and the same run comparison (the example pipeline
run twice with a changed input and parameter; the recorded pipeline script of
tests/realaudit with its pipe, rename, HTTP download and late read).

eBPF against strace: runs recorded by ``ursprung run``, everything equal. The auditd leg
records with a private auditd and the project's rules filtered to the pipeline's audit
session (tests/realaudit/record.py: the rules it added are removed and the audit state is
restored after), imports the log, and defines the runs on it (``runs define``); so that the
three legs are made alike, the example's two runs are then one traced command
(example_runs.sh) in every leg, their runs defined the same way. The lineage answer
compared with auditd is the data lineage (files that are not system files, processes, pipes,
sockets, edge kinds): the audit collector names a few system files differently (the
resolved program of a pyenv shim; no directory opened for reading), which the lineage
hides unless ``--all``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.realaudit.record import auditd_available, record
from tests.runs.helpers import EXAMPLE, ursprung
from ursprung_graph.cli.common import classifier
from ursprung_graph.config import Settings
from ursprung_graph.pipeline.importer import default_host

from .conftest import needs_ebpf

pytestmark = [needs_ebpf,
              pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")]

REALAUDIT = Path(__file__).resolve().parents[1] / "realaudit" / "pipeline.sh"
EXAMPLE_RUNS = Path(__file__).resolve().parent / "example_runs.sh"
AUDIT_REASON = auditd_available()
DEFINE = r"run\.sh --python"


def graph(settings: Settings, tracer: str) -> Settings:
    return Settings(home=settings.home, store_url=None, graph=f"{settings.graph}_{tracer}")


def run(settings: Settings, work: Path, tracer: str, *cmd: str) -> str:
    out = ursprung(settings, "run", "--tracer", tracer, "--pipeline", "demo", "--id-file",
                   str(work / "id"), "-v", "--", *cmd, cwd=work)
    assert out.returncode == 0, out.stderr
    assert b"recorded run" in out.stderr
    return (work / "id").read_text().strip()


def audited(settings: Settings, script: Path, work: Path) -> None:
    """``SCRIPT run WORK`` recorded by auditd (session-filtered rules) and imported."""
    if AUDIT_REASON is not None:
        pytest.skip(f"the auditd leg cannot run here: {AUDIT_REASON}")
    log, _ = record(script, work, work.parent / f"{work.name}.audit.log")
    ursprung(settings, "import", "--host", default_host(), "--no-progress", str(log),
             check=True)


def define(settings: Settings) -> list[str]:
    """The example's runs defined on what was captured (oldest first)."""
    defined = json.loads(ursprung(settings, "runs", "define", "demo-defined", "--match",
                                  DEFINE, "--json", check=True).stdout)
    return [r["id"] for r in defined]


def lineage(settings: Settings, path: Path, work: Path) -> dict[str, list[str]]:
    """The lineage answer, with the work directory's name taken out; ``data``: its files
    that are not system files, and its other nodes' kinds."""
    up = json.loads(ursprung(settings, "lineage", str(path), "--json", check=True).stdout)
    files = sorted(str(n.get("path")).replace(str(work), "<work>") for n in up["nodes"]
                   if n["kind"] == "file")
    kinds = sorted(n["kind"] for n in up["nodes"])
    edges = sorted({e.get("kind") or e.get("rel") or e.get("type") for e in up["edges"]},
                   key=str)
    system = classifier()
    data = sorted(f for f in files if not system.environment(f)) + \
        sorted(k for k in kinds if k != "file")
    return {"files": files, "kinds": kinds, "edges": edges, "data": data}


def data_lineage(answer: dict[str, list[str]]) -> dict[str, list[str]]:
    return {"data": answer["data"], "edges": answer["edges"]}


def same(got: dict[str, list[str]], want: dict[str, list[str]]) -> None:
    """``got == want``, saying what differs."""
    for key, b in want.items():
        a = got[key]
        missing, extra = sorted(set(b) - set(a)), sorted(set(a) - set(b))
        assert a == b, f"{key}: missing {missing}, extra {extra}"


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
    """Runs recorded by `ursprung run --tracer ebpf` and `--tracer strace`."""
    answers = {}
    for tracer in ("strace", "ebpf"):
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
    same(ebpf[1], strace[1])
    # and the answer is the right one, not just the same
    assert ebpf[0]["params.values"] == [("lr", "0.01", "0.02")]
    assert "<work>/work/model.tmp" in ebpf[1]["files"] and "pipe" in ebpf[1]["kinds"]


def test_example_runs_same_answers_with_auditd(tmp_path: Path, settings: Settings,
                                               monkeypatch: pytest.MonkeyPatch):
    """The example's two runs as one command, captured by each tracer; runs defined on it."""
    monkeypatch.setenv("PYTHON", sys.executable)
    answers = {}
    for tracer in ("strace", "ebpf", "auditd"):
        s = graph(settings, tracer)
        work = tmp_path / tracer
        if tracer == "auditd":
            audited(s, EXAMPLE_RUNS, work)
        else:
            work.mkdir()
            subprocess.run(["bash", str(EXAMPLE_RUNS), "prepare", str(work)], check=True)
            run(s, work, tracer, "bash", str(EXAMPLE_RUNS), "run", str(work))
        first, second = define(s)
        answers[tracer] = (comparison(s, first, second),
                           lineage(s, work / "out" / "report.txt", work))
    strace, ebpf, auditd = answers["strace"], answers["ebpf"], answers["auditd"]
    assert ebpf[0] == strace[0]
    same(ebpf[1], strace[1])
    assert auditd[0] == strace[0]
    same(data_lineage(auditd[1]), data_lineage(strace[1]))
    assert auditd[0]["params.values"] == [("lr", "0.01", "0.02")]
    assert "<work>/work/model.tmp" in auditd[1]["data"] and "pipe" in auditd[1]["data"]


def test_recorded_pipeline_script_same_lineage(tmp_path: Path, settings: Settings):
    answers = {}
    for tracer in ("strace", "ebpf", "auditd"):
        s = graph(settings, tracer)
        work = tmp_path / tracer
        if tracer == "auditd":
            audited(s, REALAUDIT, work)
        else:
            work.mkdir()
            subprocess.run(["bash", str(REALAUDIT), "prepare", str(work)], check=True)
            run(s, work, tracer, "bash", str(REALAUDIT), "run", str(work))
        answers[tracer] = lineage(s, work / "final" / "result.txt", work)
    same(answers["ebpf"], answers["strace"])
    same(data_lineage(answers["auditd"]), data_lineage(answers["strace"]))
    files = answers["auditd"]["data"]
    assert "<work>/raw/a.txt" in files and "<work>/srv/served.txt" in files
    assert "<work>/raw/late_in.txt" not in files  # read only after the result was written
    assert "<work>/unrelated_in.txt" not in files
