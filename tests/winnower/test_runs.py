"""Runs as replicas, acceptance: ten real traced runs of the example pipeline with different
learning rates, each in its own directory; one of them also warm-starts from a file outside
its directory and reports to a tracking server on a local address. `ursprung winnower runs`
reports that run, with those two facts, and none of the other nine."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import threading
from pathlib import Path

import pytest

from tests.runs.helpers import EXAMPLE, cli_env, ursprung

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")

RUNS = 10
ODD = 6


class TrackingServer:
    """A local TCP server that takes one JSON line per connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.lines: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            while True:
                conn, _ = self.sock.accept()
                with conn:
                    self.lines.append(conn.makefile("rb").readline())
        except OSError:
            return  # closed

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


def test_the_one_run_that_did_more_is_reported_with_what_it_did(tmp_path: Path, settings):
    shared = tmp_path / "shared"
    shared.mkdir()
    init = shared / "init.json"
    init.write_text('{"w": 1.5}\n')
    tracking = TrackingServer()
    ids = []
    try:
        for i in range(RUNS):
            work = tmp_path / f"run{i}"
            shutil.copytree(EXAMPLE / "data", work / "data")
            # bytecode caches would make the first run (which writes them) unlike the rest
            env = cli_env(settings, PYTHONDONTWRITEBYTECODE="1")
            if i == ODD:
                env.update(WARM_START=str(init), TRACKING=f"127.0.0.1:{tracking.port}")
            out = ursprung(settings, "run", "--pipeline", "sweep", "--id-file",
                           str(work / "id"), "--", "sh", str(EXAMPLE / "run.sh"), "--lr",
                           f"0.0{i + 1}", "--python", sys.executable, cwd=work, env=env)
            assert out.returncode == 0, out.stderr
            ids.append((work / "id").read_text().strip())
    finally:
        tracking.close()
    assert len(tracking.lines) == 1 and b'"w"' in tracking.lines[0]

    out = ursprung(settings, "winnower", "runs", "--pipeline", "sweep", "--json", check=True)
    report = json.loads(out.stdout)
    assert sorted(report["runs"]) == sorted(ids)
    assert [d["run"] for d in report["deviations"]] == [ids[ODD]]
    [odd] = report["deviations"]
    targets = {f["rel"]: f["target"] for f in odd["facts"]}
    assert sorted(targets) == ["CONNECTED", "READ"]  # those two facts, nothing else
    assert targets["CONNECTED"] == "inet <local>:<eph>"
    assert targets["READ"].startswith("file /tmp/<tmp>/")
    assert targets["READ"].endswith("/shared/init.json")
    for fact in odd["facts"]:
        assert fact["origins"] == {ids[ODD]: 1}
        assert "train.py" in fact["source"]
        [example] = fact["examples"]
        if fact["rel"] == "READ":
            assert example["text"].endswith(f":{init}")
        else:
            assert example["text"].endswith(f"inet 127.0.0.1:{tracking.port}")

    # the same as a table
    table = ursprung(settings, "winnower", "runs", "--pipeline", "sweep", check=True).stdout
    assert f"{RUNS} runs of sweep".encode() in table and b"1 deviating" in table
    assert str(init).encode() in table and f"127.0.0.1:{tracking.port}".encode() in table

    missing = ursprung(settings, "winnower", "runs", "--pipeline", "nope")
    assert missing.returncode == 1 and b"no recorded runs of pipeline 'nope'" in missing.stderr
    assert b"Traceback" not in missing.stderr
