"""Reads write nothing (not even the schema), so they work on a full disk; there a write
is refused with a clear error, the server survives and nothing is lost."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ursprung_graph.cli.group import cli
from ursprung_graph.store.embedded import EmbeddedServer
from ursprung_graph.store.falkordb import FalkorDBStore

from .conftest import DATA, kill_servers, servers_of, ursprung

LOG = DATA / "two_runs.audit.log"
COUNT = "MATCH (n) RETURN count(n) AS n"
A_FILE = "MATCH (f:File) WHERE f.path STARTS WITH '/tmp' RETURN f.path AS p ORDER BY p LIMIT 1"


def _aof_bytes(home: Path) -> int:
    aof = home / "falkordb" / "data" / "appendonlydir"
    return sum(p.stat().st_size for p in aof.iterdir())


def _json(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode == 0, result.stderr
    rows: list[dict] = json.loads(result.stdout)
    return rows


def test_reads_leave_the_append_only_file_alone(home: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URSPRUNG_HOME", str(home))
    monkeypatch.setenv("URSPRUNG_GRAPH", "g")
    monkeypatch.delenv("URSPRUNG_STORE", raising=False)
    runner = CliRunner()
    assert runner.invoke(cli, ["import", "--host", "h", "--no-progress", str(LOG)]
                         ).exit_code == 0
    path = json.loads(runner.invoke(cli, ["cypher", A_FILE, "--json"]).output)[0]["p"]
    before = _aof_bytes(home)
    for args in (["cypher", COUNT], ["lineage", path], ["lineage", path, "--direction", "down"],
                 ["runs", "list"], ["cypher", "RETURN 1 AS x", "--json"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
    assert _aof_bytes(home) == before
    # a later writer does not write the schema again (its marker is there)
    server = EmbeddedServer(home / "falkordb")
    store = FalkorDBStore(unix_socket=str(server.socket), graph="g")
    store.ensure_schema()
    store.close()
    assert _aof_bytes(home) == before
    server.stop()


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs (needs root); unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        kill_servers(disk / "home")
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(path: Path) -> None:
    with path.open("wb") as fh:
        block = b"\0" * (1 << 16)
        try:
            while True:
                fh.write(block)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    for size in (4096, 1):  # the last blocks too
        try:
            with path.open("ab") as fh:
                while True:
                    fh.write(b"\0" * size)
                    fh.flush()
        except OSError:
            pass


def test_full_disk_reads_work_writes_are_refused_nothing_lost(small_disk: Path) -> None:
    home = small_disk / "home"
    assert ursprung(home, "import", "--host", "h", "--no-progress", str(LOG)).returncode == 0
    count = _json(ursprung(home, "cypher", COUNT, "--json"))
    path = _json(ursprung(home, "cypher", A_FILE, "--json"))[0]["p"]
    (server,) = servers_of(home)
    _fill(small_disk / "filler")

    assert _json(ursprung(home, "cypher", COUNT, "--json")) == count
    for args in (["lineage", path], ["runs", "list"], ["db", "status"]):
        result = ursprung(home, *args)
        assert result.returncode == 0, (args, result.stderr)
    assert servers_of(home) == [server]

    write = ursprung(home, "import", "--host", "h2", "--no-progress", str(LOG))
    assert write.returncode == 10, write.stderr
    assert "Traceback" not in write.stderr and len(write.stderr.strip().splitlines()) == 1
    assert "full" in write.stderr
    assert servers_of(home) == [server]
    assert _json(ursprung(home, "cypher", COUNT, "--json")) == count

    (small_disk / "filler").unlink()
    assert ursprung(home, "import", "--host", "h2", "--no-progress", str(LOG)).returncode == 0
    assert _json(ursprung(home, "cypher", COUNT, "--json"))[0]["n"] > count[0]["n"]
