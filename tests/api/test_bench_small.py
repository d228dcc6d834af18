"""bench/bench_api.py on a tiny graph: it builds, serves, and every request answers without
an error and within the time budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_api.py"


def test_bench_runs_on_a_tiny_graph():
    out = subprocess.run([sys.executable, str(BENCH), "--small", "--runs", "4",
                          "--requests", "5", "--json", "--no-cache"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.splitlines()[-1])
    assert report["nodes"] == 4 * 50 * 4 + 220 + 1 + 4 and report["edges"] > 4 * 50 * 20
    for name, case in report["cases"].items():
        assert case["errors"] == 0, name
        assert case["n"] > 0
