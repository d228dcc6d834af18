"""Record the pipeline for real (root + kernel audit) and check the recording itself.

The lineage checks on recorded logs live elsewhere; this test only checks that the recorder
produces a real, complete audit log and leaves the machine's audit state as it found it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.realaudit.record import (  # noqa: E402
    INIT_SCRIPT,
    KEY,
    _wait_for,
    audit_status,
    auditd_available,
    record,
    service_of,
)

HERE = Path(__file__).resolve().parent
_REASON = auditd_available()
pytestmark = pytest.mark.skipif(
    _REASON is not None, reason=f"real audit recording impossible: {_REASON}"
)

_LINE = re.compile(r"^(?:node=\S+ )?type=(\S+) msg=audit\((\d+\.\d+):(\d+)\): (.*)$")
_FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')
SYSCALLS = {"execve": {59, 322}, "rename": {82, 264, 316}, "connect": {42}}


def _events(path: Path) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Records grouped by event serial: serial -> [(type, fields)]; quotes stripped."""
    events: dict[str, list[tuple[str, dict[str, str]]]] = defaultdict(list)
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", "replace").rstrip("\n").split("\x1d", 1)[0]
            m = _LINE.match(line)
            if not m:
                continue
            rtype, _ts, serial, body = m.groups()
            fields = {k: v[1:-1] if v.startswith('"') else v for k, v in _FIELD.findall(body)}
            events[serial].append((rtype, fields))
    return events


def _syscall(recs):
    for rtype, fields in recs:
        if rtype == "SYSCALL":
            return fields
    return None


def _of(recs, rtype):
    return [fields for t, fields in recs if t == rtype]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    before = audit_status()
    base = tmp_path_factory.mktemp("realaudit")
    log, manifest = record(HERE / "pipeline.sh", base / "work", base / "pipeline.audit.log")
    return log, manifest, before


def test_log_has_the_pipeline(recording):
    log, manifest, _ = recording
    workdir = manifest["workdir"]
    events = _events(log)
    assert len(events) > 100
    assert manifest["recording"]["lost_records"] == 0

    sort_execs = [
        recs
        for recs in events.values()
        if (sc := _syscall(recs)) is not None
        and int(sc["syscall"]) in SYSCALLS["execve"]
        and sc.get("success") == "yes"
        and any(ex.get("a0") == "sort" for ex in _of(recs, "EXECVE"))
    ]
    assert sort_execs, "no execve of sort"

    renames = [
        recs
        for recs in events.values()
        if (sc := _syscall(recs)) is not None
        and int(sc["syscall"]) in SYSCALLS["rename"]
        and {"work/params.tmp", "work/params.txt"} <= {p.get("name") for p in _of(recs, "PATH")}
    ]
    assert renames, "no rename of work/params.tmp to work/params.txt"
    names = {p["name"]: p["nametype"] for p in _of(renames[0], "PATH")}
    assert names["work/params.tmp"] == "DELETE" and names["work/params.txt"] == "CREATE"
    assert _of(renames[0], "CWD")[0]["cwd"] == workdir

    loopback_connects = [
        recs
        for recs in events.values()
        if (sc := _syscall(recs)) is not None
        and int(sc["syscall"]) in SYSCALLS["connect"]
        and any(
            s["saddr"].upper().startswith("0200") and s["saddr"][8:16].upper() == "7F000001"
            for s in _of(recs, "SOCKADDR")
        )
    ]
    assert loopback_connects, "no connect to 127.0.0.1"
    # curl connects non-blocking: its connect "fails" with EINPROGRESS and must still be there
    assert any(_syscall(r).get("exit") in ("0", "-115") for r in loopback_connects)

    result_paths = [
        recs
        for recs in events.values()
        if any(
            p.get("name") in ("final/result.txt", f"{workdir}/final/result.txt")
            and p.get("nametype") == "CREATE"
            for p in _of(recs, "PATH")
        )
    ]
    assert result_paths, "no PATH record creating final/result.txt"
    assert all(_syscall(r)["key"] == KEY for r in result_paths)


def test_cleanup(recording):
    _, manifest, before = recording
    rec = manifest["recording"]
    assert rec["cleanup_errors"] == []
    rules = subprocess.run(["auditctl", "-l"], capture_output=True, text=True, check=True).stdout
    assert f"key={KEY}" not in rules
    pid = rec["auditd_pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    after = audit_status()
    assert after.get("pid") != str(pid)
    assert after.get("enabled") == before.get("enabled")
    assert after.get("backlog_limit") == before.get("backlog_limit")


def _start_service() -> list[str]:
    """Start the machine's auditd service the way this machine runs services; the command
    that stops it again."""
    systemd = Path("/run/systemd/system").is_dir()
    start = ["systemctl", "start", "auditd.service"] if systemd else [str(INIT_SCRIPT), "start"]
    res = subprocess.run(start, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    return ["systemctl", "stop", "auditd.service"] if systemd else [str(INIT_SCRIPT), "stop"]


@pytest.mark.skipif(not Path("/run/systemd/system").is_dir() and not INIT_SCRIPT.exists(),
                    reason="no auditd service on this machine (neither systemd nor init.d)")
def test_records_while_the_machine_auditd_service_runs(tmp_path: Path) -> None:
    """Where installing auditd starts auditd.service, the recording stops that service for
    its time and starts it again afterwards, instead of skipping."""
    before = audit_status()
    stop = None if before.get("pid", "0") not in ("0", "") else _start_service()
    try:
        pid = int(audit_status()["pid"])
        assert service_of(pid) is not None
        assert auditd_available() is None
        info: dict = {}
        log, _ = record(HERE / "fidelity.sh", tmp_path / "w", tmp_path / "audit.log", info=info)
        assert info["paused_service"]["pid"] == pid
        text = log.read_text(errors="replace")
        assert "syscall=266 " in text and "type=PATH" in text  # the symlinkat of the script
        after = int(audit_status()["pid"])
        assert after == info["paused_service"]["restarted_pid"] and service_of(after)
    finally:
        if stop is not None:  # leave the audit state as found: no daemon, same enabled flag
            subprocess.run(stop, capture_output=True, timeout=60, check=False)
            assert _wait_for(lambda: audit_status().get("pid") in ("0", None), 30)
            subprocess.run(["auditctl", "-e", before.get("enabled", "0")], capture_output=True,
                           timeout=30, check=False)
