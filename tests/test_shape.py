"""Regressions of the shape (issue 8): one configuration file with a ``[runs]`` section, one
checkpoint validator for imports and followers, configuration errors as one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ursprung_graph.cli.group import cli
from ursprung_graph.config import load_config

DATA = Path(__file__).resolve().parent / "data"


def test_a_runs_section_is_part_of_the_one_configuration(
        settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``[runs]`` written as documented: every command still reads the file (it used to
    make `ursprung db status` die with "unknown field 'runs'"), and run options come from
    it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ursprung.toml").write_text(
        '[runs]\nparam_env = ["LR"]\nstore_limit = 4096\n\n[collect]\npair_seconds = 5.0\n')
    result = CliRunner().invoke(cli, ["db", "status"])
    assert result.exit_code == 0, result.output
    config = load_config()
    assert config.runs.param_env == ("LR",) and config.runs.store_limit == 4096
    assert config.collect.pair_seconds == 5.0


def test_configuration_errors_are_one_line_with_their_own_exit_status(
        settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ursprung.toml").write_text('[runs]\nhash_limit = "big"\n')
    for command in (["db", "status"], ["runs", "list"], ["lineage", "/x"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 3, (command, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "runs.hash_limit" in lines[0], result.output
        assert "Traceback" not in result.output


def test_a_small_log_that_grows_is_resumed_not_read_again(settings, tmp_path: Path) -> None:
    """A log under 4 KiB that grows between two imports: the second import reads only what
    was appended (it used to hash the first 4 KiB of the file, which the growth changed,
    and read everything again)."""
    lines = (DATA / "pipeline.audit.log").read_bytes().splitlines(keepends=True)
    # whole events (each ends with its PROCTITLE record), well under 4 KiB in all
    ends = [i + 1 for i, line in enumerate(lines) if line.startswith(b"type=PROCTITLE")]
    first, second = ends[0], ends[1]
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(lines[:first]))
    assert log.stat().st_size < 4096
    runner = CliRunner()
    one = runner.invoke(cli, ["import", "--host", "g", "--no-progress", str(log)])
    assert one.exit_code == 0 and f"imported {first} audit records" in one.output, one.output
    with log.open("ab") as fh:
        fh.write(b"".join(lines[first:second]))
    assert log.stat().st_size < 4096
    two = runner.invoke(cli, ["import", "--host", "g", "--no-progress", str(log)])
    assert two.exit_code == 0, two.output
    assert f"imported {second - first} audit records" in two.output, two.output
    assert "resumed at byte" in two.output
