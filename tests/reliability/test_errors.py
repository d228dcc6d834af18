"""Clear one-line errors with their own exit status instead of tracebacks, and answers
that do not mislead: an import the store cut short says how far it got, unreadable and
closed inputs say so, gzip logs are read, a file of which nothing was understood fails,
relative paths are taken from the working directory."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.events import Script
from ursprung_graph.cli.group import cli
from ursprung_graph.ingest.upserts import Batch
from ursprung_graph.store.base import StoreError

from .conftest import DATA, URSPRUNG, env_for, servers_of, ursprung

LOG = DATA / "pipeline.enriched.audit.log"


def _one_line(stderr: str) -> str:
    """The one error line (besides the notice that a command started the store)."""
    lines = [line for line in stderr.strip().splitlines()
             if not line.startswith("started the embedded store")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_store_gone_during_import_says_how_far_and_resumes(home: Path, how: str) -> None:
    env = env_for(home)
    proc = subprocess.Popen([URSPRUNG, "import", "--host", "h", "--no-progress",
                             "--chunk-events", "100", str(LOG)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(home.glob("checkpoints/**/*.ckpt")):  # some of it is stored
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    if how == "kill":
        for pid in servers_of(home):
            os.kill(pid, signal.SIGKILL)
    else:
        assert ursprung(home, "db", "stop").returncode == 0
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 8, err
    line = _one_line(err)
    assert "the store went away" in line and "bytes" in line and "are stored" in line
    assert "run the same command again to resume" in line
    again = ursprung(home, "import", "--host", "h", "--no-progress", str(LOG))
    assert again.returncode == 0 and "resumed at byte" in again.stderr, again.stderr


def test_unreadable_file_is_one_line(home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "audit.log"
    secret.write_bytes(LOG.read_bytes()[:10000])
    secret.chmod(0)
    # root without the capabilities that let it read any file
    result = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                             URSPRUNG, "import", str(secret)], env=env_for(home),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 9, result.stderr
    assert "permission denied" in _one_line(result.stderr)
    assert servers_of(home) == []  # refused before anything was started


def test_closed_stdin_is_one_line(home: Path) -> None:
    result = subprocess.run(["sh", "-c", 'exec "$0" import - <&-', URSPRUNG],
                            env=env_for(home), capture_output=True, text=True, timeout=60)
    assert result.returncode == 9, result.stderr
    assert "standard input is closed" in _one_line(result.stderr)


def test_a_directory_says_so(home: Path, tmp_path: Path) -> None:
    result = ursprung(home, "import", str(tmp_path))
    assert result.returncode == 9
    assert "is a directory" in _one_line(result.stderr)


def test_parameter_name_with_a_backtick(store) -> None:
    result = CliRunner().invoke(cli, ["cypher", "RETURN $x AS x", "--param", "a`b=1"])
    assert result.exit_code == 2 and "not a parameter name" in result.output
    with pytest.raises(StoreError, match="parameter name"):
        store.read("RETURN 1 AS x", {"a` = 1 MATCH (n) DETACH DELETE n //": 1})


def test_gzip_logs_are_read(settings, tmp_path: Path) -> None:
    plain = DATA / "two_runs.audit.log"
    rotated = tmp_path / "audit.log.1.gz"
    rotated.write_bytes(gzip.compress(plain.read_bytes()))
    result = CliRunner().invoke(cli, ["import", "--host", "n1", "--no-progress",
                                       str(rotated)])
    assert result.exit_code == 0, result.output
    assert "12,617 audit records" in result.output and " 0 dead letters" in result.output
    corrupt = tmp_path / "cut.log.gz"
    corrupt.write_bytes(rotated.read_bytes()[:5000])
    cut = CliRunner().invoke(cli, ["import", "--host", "n1", "--no-progress", str(corrupt)])
    assert cut.exit_code == 9 and "gzip data is corrupt" in cut.output


def test_nothing_understood_fails_with_a_hint(settings, tmp_path: Path) -> None:
    noise = tmp_path / "noise.bin"
    noise.write_bytes(random.Random(16).randbytes(64 << 10))
    result = CliRunner().invoke(cli, ["import", "--host", "n1", "--no-progress", str(noise)])
    assert result.exit_code == 12, result.output
    assert "nothing in" in result.output and "audit log" in result.output


def test_relative_paths_and_closest_known(store, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    result, other = tmp_path / "out" / "result.txt", tmp_path / "old" / "result.txt"
    s = Script()
    p = s.proc(10, 1, ["sort"])
    s.read(2, p, str(tmp_path / "in.txt"))
    s.write(3, p, str(result))
    s.write(4, p, str(other))
    batch = Batch()
    for ev in s.events:
        batch.add(ev)
    store.write(batch.statements())
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path / "out")
    for given in ("result.txt", "./result.txt", "../out/result.txt"):
        shown = CliRunner().invoke(cli, ["lineage", given, "--json"])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.output)["root"].endswith(f":{result}")
    typo = CliRunner().invoke(cli, ["lineage", "resutl.txt"])
    assert typo.exit_code == 7
    assert f"no file {tmp_path}/out/resutl.txt in the graph; closest known: {result}" \
        in typo.output
    (tmp_path / "new").mkdir()
    monkeypatch.chdir(tmp_path / "new")
    elsewhere = CliRunner().invoke(cli, ["lineage", "result.txt"])
    assert elsewhere.exit_code == 7
    assert f"closest known: {other}, {result}" in elsewhere.output
