"""Acceptance, as a new user would do it: the example pipeline (prepare | train, a rename,
evaluate) run twice through `ursprung run` in one directory, with a different learning rate
and a changed raw input; then `runs compare` and `lineage`."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from .helpers import EXAMPLE, ursprung

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")


def run_pipeline(settings, work: Path, lr: str) -> str:
    out = ursprung(settings, "run", "--pipeline", "demo", "--id-file", str(work / "id"),
                   "--verbose", "--", "sh", str(EXAMPLE / "run.sh"), "--lr", lr, "--python",
                   sys.executable, cwd=work)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"mse=")  # evaluate's output passes through
    # --verbose says what was recorded, and how long after the command's end it was stored
    said = re.search(rb"(\d+) file versions \((\d+) hashed and (\d+) stored while it ran, "
                     rb"\d+ contents kept\).*all stored (\d+\.\d\d) s after the command ended",
                     out.stderr)
    assert said is not None, out.stderr
    assert int(said[3]) <= int(said[2]) <= int(said[1]) and 0 <= float(said[4]) < 60
    return (work / "id").read_text().strip()




def test_two_runs_compare_exactly_and_lineage(tmp_path: Path, settings):
    shutil.copytree(EXAMPLE / "data", tmp_path / "data")
    first = run_pipeline(settings, tmp_path, "0.01")
    with open(tmp_path / "data" / "raw.csv", "a", encoding="utf-8") as fh:
        fh.write("6,12.2\n")
    second = run_pipeline(settings, tmp_path, "0.02")

    result = json.loads(ursprung(settings, "runs", "compare", first, second, "--json",
                                 check=True).stdout)
    assert set(result) >= {"params", "inputs", "outputs", "programs", "environment",
                           "metrics", "exit", "duration"}
    changes = {(section, e["name"]) for section in result if isinstance(result[section], dict)
               and "changed" in result[section] for e in result[section]["changed"]}
    one_sided = [(s, k, e) for s in ("params", "inputs", "outputs", "programs", "environment",
                                     "metrics", "exit") for k in ("only_a", "only_b")
                 for e in result[s][k]]
    assert one_sided == []
    changes.discard(("duration", "seconds"))  # wall time is not a property of the pipeline
    assert changes == {("params", "lr"), ("inputs", "data/raw.csv"),
                       ("outputs", "work/model.json"), ("outputs", "out/report.txt")}
    params = {e["name"]: (e["a"], e["b"]) for e in result["params"]["changed"]}
    assert params == {"lr": ("0.01", "0.02")}
    [raw] = result["inputs"]["changed"]
    assert raw["basis"] == "sha256" and raw["a"]["sha256"] != raw["b"]["sha256"]
    same_inputs = {e["name"]: e for e in result["inputs"]["same"]}
    assert "data/test.csv" in same_inputs
    assert same_inputs["data/test.csv"]["a"]["sha256"] == same_inputs["data/test.csv"]["b"][
        "sha256"]
    # the scripts are the same programs in both runs
    same_programs = {Path(e["name"]).name for e in result["programs"]["same"]}
    assert {"prepare.py", "train.py", "evaluate.py", "run.sh"} <= same_programs
    assert result["exit"]["same"] == [{"name": "exit_code", "a": 0, "b": 0}]

    table = ursprung(settings, "runs", "compare", first[:8], second[:8], check=True).stdout
    assert b"data/raw.csv" in table and b"lr" in table

    # where did the second run's report come from?
    report = str(tmp_path / "out" / "report.txt")
    up = json.loads(ursprung(settings, "lineage", report, "--json", check=True).stdout)
    paths = {n.get("path") for n in up["nodes"] if n["kind"] == "file"}
    assert str(tmp_path / "data" / "raw.csv") in paths
    assert str(tmp_path / "data" / "test.csv") in paths
    assert str(tmp_path / "work" / "model.json") in paths
    assert str(tmp_path / "work" / "model.tmp") in paths  # through the rename
    assert any(n["kind"] == "pipe" for n in up["nodes"])  # prepare | train

    # the run's own facts
    facts = json.loads(ursprung(settings, "runs", "show", second, "--json", check=True).stdout)
    assert {f["rel"] for f in facts["inputs"]} >= {"data/raw.csv", "data/test.csv"}
    assert {f["rel"] for f in facts["outputs"]} == {"work/model.json", "out/report.txt"}
    assert {f["rel"] for f in facts["intermediates"]} == {"work/model.tmp"}
    listed = json.loads(ursprung(settings, "runs", "list", "--pipeline", "demo", "--json",
                                 check=True).stdout)
    assert [r["id"] for r in listed] == [first, second]
