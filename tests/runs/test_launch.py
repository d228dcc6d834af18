"""`ursprung run` starts the command before it imports the recorder (`collectors.trace.
launch`), and a command so started runs to its end even when recording fails."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ursprung_graph.cli import main
from ursprung_graph.store.base import StoreError

#: What `ursprung run` imports while the command runs, not before it starts.
AFTER_START = ("ursprung_graph.pipeline.record", "ursprung_graph.collectors.trace.runner",
               "ursprung_graph.collectors.trace.convert", "ursprung_graph.store.falkordb",
               "ursprung_graph.ingest.upserts", "ursprung_graph.query.runs",
               "ursprung_graph.content")


def test_the_command_starts_before_the_recorder_is_imported() -> None:
    probe = ("import sys, ursprung_graph.cli.run, ursprung_graph.collectors.trace.launch\n"
             f"print([m for m in {AFTER_START!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout
    only_stdlib = ("import sys, ursprung_graph.collectors.trace.launch\n"
                   "print(sorted(m for m in sys.modules if m.startswith('ursprung_graph.')))")
    out = subprocess.run([sys.executable, "-c", only_stdlib], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == ("['ursprung_graph.collectors', "
                                  "'ursprung_graph.collectors.trace', "
                                  "'ursprung_graph.collectors.trace.launch']"), out.stdout


def test_a_started_command_ends_even_when_recording_fails(
        settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ursprung_graph.pipeline.record as record

    def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("the store went away")

    monkeypatch.setattr(record, "record_run", broken)
    done = tmp_path / "done"
    started = time.monotonic()
    result = CliRunner().invoke(main, ["run", "--tracer", "strace", "--", "sh", "-c",
                                       f"sleep 0.5; touch {done}"])
    assert result.exit_code == StoreError.exit_code, result.output
    assert "the store went away" in result.output and "Traceback" not in result.output
    assert done.exists() and time.monotonic() - started >= 0.5
