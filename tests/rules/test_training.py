"""Acceptance: a training job traced by `ursprung run` with rules yields per-epoch loss
metrics, a tracked config with two versions and a diff, CSV rows loaded; `runs compare`
shows the metric differences."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..runs.helpers import ursprung

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is missing")


def _run(settings, work: Path, lr: str, tmp: Path) -> str:
    done = ursprung(settings, "run", "--rules", str(DATA / "train.rules"),
                    "--pipeline", "train", "--id-file", str(work / f"id-{lr}"), "--",
                    sys.executable, str(work / "train_job.py"), "--lr", lr, cwd=work)
    assert done.returncode == 0, done.stderr.decode()
    # the job's output passes through unchanged (CAPTURESOUT reads it on the way)
    alone = tmp / f"alone-{lr}"
    alone.mkdir()
    plain = subprocess.run([sys.executable, str(work / "train_job.py"), "--lr", lr],
                           cwd=alone, capture_output=True, check=True)
    assert done.stdout == plain.stdout and done.stdout.startswith(b"epoch 1 loss ")
    return (work / f"id-{lr}").read_text().strip()


def test_training_run_with_rules(settings, store, tmp_path: Path) -> None:
    work = tmp_path / "job"
    work.mkdir()
    shutil.copy(DATA / "train_job.py", work)
    first = _run(settings, work, "0.1", tmp_path)
    second = _run(settings, work, "0.05", tmp_path)

    runs = {r["id"]: r for r in store.read(
        "MATCH (x:PipelineRun) RETURN x.id AS id, x.metrics AS metrics")}
    metrics = {run: json.loads(runs[run]["metrics"]) for run in (first, second)}
    for m in metrics.values():
        assert {"loss[epoch=1]", "loss[epoch=2]", "loss[epoch=3]", "loss",
                "acc[epoch=3]", "acc"} <= set(m)
        assert m["loss"] == m["loss[epoch=3]"]
        for epoch in (1, 2, 3):  # from stdout: the same values as from the log
            assert m[f"stdout_loss[epoch={epoch}]"] == m[f"loss[epoch={epoch}]"]
        assert float(m["loss[epoch=3]"]) < float(m["loss[epoch=1]"])
    assert metrics[first]["loss[epoch=1]"] != metrics[second]["loss[epoch=1]"]

    compare = ursprung(settings, "runs", "compare", first, second)
    assert compare.returncode == 0, compare.stderr.decode()
    text = compare.stdout.decode()
    assert "loss[epoch=1]" in text and metrics[first]["loss[epoch=1]"] in text

    versions = ursprung(settings, "versions", str(work / "config.json"))
    assert versions.returncode == 0, versions.stderr.decode()
    assert len(versions.stdout.decode().splitlines()) == 2
    diff = ursprung(settings, "diff", str(work / "config.json"))
    assert diff.returncode == 0, diff.stderr.decode()
    assert '- "lr": 0.1,' in diff.stdout.decode() and '+ "lr": 0.05,' in diff.stdout.decode()

    rows = store.read("MATCH (v:Version)-[:HAS_RECORD]->(r:Record {action: 'dbload'}) "
                      "RETURN v.path AS path, r.fields AS fields ORDER BY r.pos")
    assert len(rows) == 6  # three epochs, two runs (two versions of results.csv)
    assert {json.loads(r["fields"])["epoch"] for r in rows} == {"1", "2", "3"}
    writers = store.read("MATCH (p:Process)-[:WROTE_VERSION]->(v:Version) "
                         "RETURN p.cmdline AS cmd")
    assert writers and all("train_job.py" in w["cmd"] for w in writers)
