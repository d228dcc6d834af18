"""Record the capture-gaps fixture: a real audit log with an auditd restart and records
the kernel dropped.

    python -m tests.realaudit.record_gaps --workdir /tmp/ursprung-gaps \
        --out tests/data/gaps.audit.log

Like :mod:`tests.realaudit.record` (whose helpers it uses: the lock, the paused auditd
service, the session-scoped rules, the temporary auditd config), for ``gaps.sh``, step by
step (the script waits for a line on stdin before each step and prints ``done`` after it):

1. auditd #1 (``auditd -f``, stdout appended to the output) records step 1;
2. auditd #1 is stopped by SIGTERM (it writes DAEMON_END), step 2 runs unrecorded;
3. auditd #2 starts, appending to the same output (DAEMON_START), as a restarted auditd
   appends to its log; ``auditctl -s`` is sampled (``lost``); the kernel backlog is set to
   1 with ``backlog_wait_time 0`` (drop instead of wait) for step 3's burst, then restored,
   and ``auditctl -s`` sampled again (before/after go into the JSON this prints);
4. step 4 is recorded; rules removed, auditd #2 stopped, backlog limit, wait time and the
   enabled flag restored, the machine's auditd service started again if it ran.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.realaudit.record import (
    AUDITD_CONF,
    KEY,
    LOCK_PATH,
    RULES,
    RecordError,
    _prepare_workdir,
    _run,
    _scoped_rules,
    _service_paused,
    _set_loginuid,
    _wait_for,
    audit_status,
    auditd_available,
    stop_auditd,
)

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "gaps.sh"
#: As record.py's, but the script keeps its stdin: the recorder's step lines.
WRAPPER = 'read -r _ || exit 97; exec bash "$0" run "$1"'


def _start_auditd(tmp: Path, out: Path) -> subprocess.Popen:
    with open(out, "ab") as out_f, open(tmp / "auditd.stderr", "ab") as err_f:
        auditd = subprocess.Popen(["auditd", "-f", "-n", "-s", "nochange", "-c", str(tmp)],
                                  stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f)
    if not _wait_for(lambda: audit_status().get("pid") == str(auditd.pid), 15):
        auditd.kill()
        raise RecordError("auditd did not register")
    return auditd


def _stop_auditd(auditd: subprocess.Popen) -> None:
    stop_auditd(auditd)
    _wait_for(lambda: audit_status().get("pid") in ("0", None), 10)


def record_gaps(workdir: Path, out: Path) -> dict:
    details: dict = {}
    with open(LOCK_PATH, "a+") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        reason = auditd_available()
        if reason:
            raise RecordError(reason)
        _prepare_workdir(workdir)
        _run(["bash", str(SCRIPT), "prepare", str(workdir)])
        with _service_paused(details):
            _record(workdir, out, details)
    return details


def _record(workdir: Path, out: Path, details: dict) -> None:
    before = audit_status()
    tmp = Path(tempfile.mkdtemp(prefix="ursprung-auditd-"))
    (tmp / "plugins.d").mkdir()
    (tmp / "auditd.conf").write_text(AUDITD_CONF.format(
        log_file=tmp / "audit.log", log_format="RAW", plugin_dir=tmp / "plugins.d"))
    (tmp / "auditd.conf").chmod(0o600)
    out.write_bytes(b"")
    auditd: subprocess.Popen | None = None
    rules_loaded = False
    errors: list[str] = []
    try:
        auditd = _start_auditd(tmp, out)
        _run(["auditctl", "-b", "8192"])
        _run(["auditctl", "-e", "1"])
        proc = subprocess.Popen(["bash", "-c", WRAPPER, str(SCRIPT), str(workdir)],
                                cwd=workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                start_new_session=True, preexec_fn=_set_loginuid)
        assert proc.stdin is not None and proc.stdout is not None
        details["root_pid"] = proc.pid
        try:
            ses = int(Path(f"/proc/{proc.pid}/sessionid").read_text())
            rules_loaded = True
            _run(["auditctl", "-R", str(_scoped_rules(RULES, ses, tmp / "scoped.rules"))])
            proc.stdin.write(b"go\n")  # the wrapper execs the script

            def step(name: str) -> None:
                proc.stdin.write(b"go\n")  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
                line = proc.stdout.readline()  # type: ignore[union-attr]
                if line.strip() != b"done":
                    raise RecordError(f"step {name}: the script said {line!r}")
                details[f"{name}_ns"] = time.time_ns()

            step("recorded")
            time.sleep(0.5)
            _stop_auditd(auditd)
            step("unrecorded")
            time.sleep(0.5)
            auditd = _start_auditd(tmp, out)
            details["lost_before_burst"] = int(audit_status()["lost"])
            _run(["auditctl", "--backlog_wait_time", "0"])
            _run(["auditctl", "-b", "1"])
            try:
                step("burst")
            finally:
                _run(["auditctl", "-b", "8192"])
                _run(["auditctl", "--backlog_wait_time", before["backlog_wait_time"]])
            details["lost_after_burst"] = int(audit_status()["lost"])
            step("final")
            proc.stdin.close()
            proc.wait(timeout=30)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        time.sleep(1.0)  # auditd writes incrementally; let it take the last records
    finally:
        if rules_loaded:
            try:
                _run(["auditctl", "-D", "-k", KEY])
            except Exception as exc:
                errors.append(f"removing rules: {exc}")
        if auditd is not None:
            _stop_auditd(auditd)
        for cmd in (["auditctl", "-b", before["backlog_limit"]],
                    ["auditctl", "--backlog_wait_time", before["backlog_wait_time"]],
                    ["auditctl", "-e", before.get("enabled", "0")]):
            try:
                _run(cmd)
            except Exception as exc:
                errors.append(f"{' '.join(cmd)}: {exc}")
        details["status_after"] = audit_status()
    if errors:
        raise RecordError("; ".join(errors))


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m tests.realaudit.record_gaps")
    p.add_argument("--workdir", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    details = record_gaps(Path(args.workdir).absolute(), Path(args.out).absolute())
    print(json.dumps(details, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
