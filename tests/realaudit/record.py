"""Record a real kernel audit log of a shell pipeline.

Library::

    from tests.realaudit.record import auditd_available, record
    reason = auditd_available()          # None when recording is possible
    log_path, manifest = record("tests/realaudit/pipeline.sh", "/tmp/w", "/tmp/w.log")

CLI::

    python -m tests.realaudit.record --script tests/realaudit/pipeline.sh \
        --workdir /tmp/ursprung-fixture --out tests/data/pipeline.audit.log [--format enriched]

How a recording works (everything is undone in ``finally``, in reverse order):

1. ``SCRIPT prepare WORKDIR`` creates the raw inputs, before auditing starts.
2. The audit status is saved (``auditctl -s``: enabled flag and backlog limit).
3. A private ``auditd -f -n -s nochange -c TMPDIR`` is started. In foreground mode auditd
   writes every record to its stdout, in exactly the line format of audit.log
   (``type=... msg=audit(SEC.MS:SERIAL): ...``, with the ``\\x1d``-separated interpretations
   when ``log_format = ENRICHED``), and it does not write its log file at all. The
   temporary config still names a log file inside TMPDIR, and an empty ``plugin_dir``: the
   machine's /etc/audit/plugins.d would otherwise start plugins (Debian's laurel package
   installs an active one that writes /var/log/laurel). Its stdout goes straight into the
   output file.
4. ``auditctl -b 8192`` (the kernel's default backlog of 64 loses records when a shell
   script execs dozens of processes at once) and ``auditctl -e 1``.
5. The pipeline's root is started: a bash in its own session and in a fresh audit login
   session (``/proc/self/loginuid`` is written in the child before exec, so every record
   of the pipeline carries ``auid=0`` and one ``ses=`` value). It waits for a go line.
6. ``auditctl -R deploy/auditd/ursprung.rules``; with ``scope="session"`` (the default)
   every rule gets ``-F sessionid=SES`` so that the log holds everything the pipeline's
   processes do and nothing else that happens on the machine (on a shared machine that
   was half of the log, and other people's command lines). ``scope="all"`` loads the file
   as it is.
7. Go: the root execs ``bash SCRIPT run WORKDIR``. When it has exited, the recorder waits
   until the root's own exit_group record is in the output (the scripts wait for their
   background jobs, so that is the last record of the pipeline).
8. ``auditctl -D -k ursprung`` (removes exactly the project's rules), SIGTERM to the auditd
   that was started (by pid) and wait for it, restore backlog limit and enabled flag.

Only one recording runs at a time on a machine (a flock on a file in the temp dir).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RULES = REPO / "deploy" / "auditd" / "ursprung.rules"
MANIFEST = HERE / "manifest.json"
KEY = "ursprung"
BACKLOG = 8192
WORKDIR_MARKER = ".ursprung-realaudit-workdir"
LOCK_PATH = Path(tempfile.gettempdir()) / "ursprung-realaudit.lock"
INIT_SCRIPT = Path("/etc/init.d/auditd")
UNSET_ID = 4294967295
# $0 = script, $1 = workdir; the go line arrives once the rules are loaded
ROOT_WRAPPER = 'read -r _ || exit 97; exec bash "$0" run "$1" </dev/null'

AUDITD_CONF = """\
# temporary auditd config written by tests/realaudit/record.py
local_events = yes
write_logs = yes
log_file = {log_file}
log_format = {log_format}
flush = INCREMENTAL_ASYNC
freq = 50
num_logs = 0
max_log_file = 0
max_log_file_action = IGNORE
space_left = 2
space_left_action = IGNORE
admin_space_left = 1
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
name_format = NONE
q_depth = 4000
overflow_action = IGNORE
end_of_event_timeout = 2
plugin_dir = {plugin_dir}
"""


class RecordError(RuntimeError):
    """Recording failed (the audit state has been restored nevertheless)."""


def _run(
    cmd: Sequence[str], check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RecordError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def audit_status() -> dict[str, str]:
    """``auditctl -s`` as a dict (values are strings; e.g. enabled, pid, backlog_limit, lost)."""
    out = _run(["auditctl", "-s"]).stdout
    status: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            status[parts[0]] = parts[1].strip()
    return status


def auditd_available() -> str | None:
    """Return why a real audit recording is impossible here, or None when it is possible."""
    if sys.platform != "linux":
        return f"kernel audit needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "recording a real audit log needs root (kernel audit control)"
    for tool in ("auditctl", "auditd"):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install auditd)"
    if not RULES.is_file():
        return f"audit rules missing: {RULES}"
    try:
        proc = _run(["auditctl", "-s"], check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"auditctl -s failed: {exc}"
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        return "kernel audit unavailable: " + (
            msg[0] if msg else f"auditctl -s exit {proc.returncode}"
        )
    status = {}
    for line in proc.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            status[parts[0]] = parts[1].strip()
    if status.get("enabled") == "2":
        return "audit configuration is locked (enabled 2): rules cannot be added or removed"
    pid = int(status.get("pid", "0") or 0)
    if pid != 0 and _pid_alive(pid) and service_of(pid) is None:
        return (f"an audit daemon that is not the machine's auditd service already runs "
                f"(pid {pid}): not replacing it")
    listed = _run(["auditctl", "-l"], check=False, timeout=10).stdout
    if f"key={KEY}" in listed:
        return (
            f"audit rules with key {KEY} are already loaded (a collector, or an interrupted "
            f"recording); remove them with: auditctl -D -k {KEY}"
        )
    return None


def service_of(pid: int) -> str | None:
    """How the machine runs the auditd ``pid`` as a service ("systemd": auditd.service,
    started when the package is installed; "init.d": Debian's /etc/init.d/auditd), or None
    for any other audit daemon (another recorder's or collector's: never touched)."""
    try:
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    if not exe.endswith("/auditd"):
        return None
    if "auditd.service" in cgroup:
        return "systemd"
    for pidfile in (Path("/run/auditd.pid"), Path("/var/run/auditd.pid")):
        with contextlib.suppress(OSError, ValueError):
            if int(pidfile.read_text().split()[0]) == pid and INIT_SCRIPT.exists():
                return "init.d"
    return None


@contextlib.contextmanager
def _service_paused(details: dict):  # type: ignore[no-untyped-def]
    """Stop the machine's auditd service (if it runs) for the recording, start it again
    after, whatever happens; the kernel allows one audit daemon at a time."""
    pid = int(audit_status().get("pid", "0") or 0)
    how = service_of(pid) if pid and _pid_alive(pid) else None
    if how is None:
        yield
        return
    details["paused_service"] = {"pid": pid, "how": how}
    os.kill(pid, signal.SIGTERM)  # what both the unit and the init script do to stop it
    if not _wait_for(lambda: not _pid_alive(pid) and audit_status().get("pid") in ("0", None),
                     30):
        raise RecordError(f"the machine's auditd (pid {pid}) did not stop")
    try:
        yield
    finally:
        start = (["systemctl", "start", "auditd.service"] if how == "systemd"
                 else [str(INIT_SCRIPT), "start"])
        _run(start, check=False, timeout=60)
        if not _wait_for(lambda: audit_status().get("pid", "0") not in ("0", ""), 30):
            raise RecordError(f"the machine's auditd did not start again ({' '.join(start)})")
        details["paused_service"]["restarted_pid"] = int(audit_status()["pid"])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_manifest(script: str | os.PathLike) -> dict:
    """The manifest.json entry for a pipeline script (by file name); {} when there is none."""
    data = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return dict(data.get(Path(script).name, {}))


def _prepare_workdir(workdir: Path) -> None:
    """Start from an empty workdir; only ever delete a directory this recorder made."""
    if workdir.exists():
        if not workdir.is_dir():
            raise RecordError(f"workdir {workdir} exists and is not a directory")
        entries = list(workdir.iterdir())
        if entries and not (workdir / WORKDIR_MARKER).exists():
            raise RecordError(
                f"workdir {workdir} is not empty and was not made by this recorder; "
                "refusing to clear it"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / WORKDIR_MARKER).write_text("made by tests/realaudit/record.py\n")


def _set_loginuid() -> None:  # runs in the child between fork and exec
    try:
        with open("/proc/self/loginuid", "w") as f:
            f.write(str(os.getuid()))
    except OSError:
        pass  # immutable loginuid or no CONFIG_AUDIT: the recording is still valid


def _scoped_rules(rules: Path, session: int, dest: Path) -> Path:
    """Copy of the rules file with ``-F sessionid=SESSION`` added to every ``-a`` rule."""
    lines = []
    for line in rules.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("-a "):
            head, sep, key = stripped.rpartition(" -k ")
            if not sep:
                raise RecordError(f"rule without -k in {rules}: {stripped}")
            line = f"{head} -F sessionid={session} -k {key}"
        lines.append(line)
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


def _wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()



def stop_auditd(auditd: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 15 s: how every recording stops its private auditd."""
    if auditd.poll() is None:
        auditd.send_signal(signal.SIGTERM)
        try:
            auditd.wait(timeout=15)
        except subprocess.TimeoutExpired:
            auditd.kill()
            auditd.wait(timeout=15)

def record(
    script: str | os.PathLike,
    workdir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    log_format: str = "RAW",
    timeout: float = 300,
    rules: str | os.PathLike = RULES,
    scope: str = "session",
    info: dict | None = None,
) -> tuple[Path, dict]:
    """Record the audit log of ``SCRIPT run WORKDIR`` into ``out``.

    Returns the log path and the script's manifest entry (from manifest.json), extended with
    ``workdir`` (absolute) and ``recording`` (pid and audit session of the pipeline's root,
    audit format, lost-record count, auditd version, kernel, times). If ``info`` is given,
    the same recording details are also put there even when recording fails.
    """
    script = Path(script).resolve()
    workdir = Path(workdir).absolute()
    out = Path(out).absolute()
    log_format = log_format.upper()
    if log_format not in ("RAW", "ENRICHED"):
        raise ValueError("log_format must be RAW or ENRICHED")
    details = info if info is not None else {}
    if scope not in ("session", "all"):
        raise ValueError("scope must be 'session' or 'all'")
    details.update(script=str(script), workdir=str(workdir), format=log_format.lower(), scope=scope)

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_PATH, "a+") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file is closed
        # checked under the lock: another recording may have just finished (or still be
        # cleaning up) when this one was asked for
        reason = auditd_available()
        if reason:
            raise RecordError(reason)
        _prepare_workdir(workdir)
        _run(["bash", str(script), "prepare", str(workdir)], timeout=60)
        with _service_paused(details):
            return _record_locked(
                script, workdir, out, log_format, timeout, Path(rules), scope, details
            )


def _record_locked(
    script: Path,
    workdir: Path,
    out: Path,
    log_format: str,
    timeout: float,
    rules: Path,
    scope: str,
    details: dict,
) -> tuple[Path, dict]:
    before = audit_status()
    was_enabled = before.get("enabled", "0")
    old_backlog = before.get("backlog_limit")
    tmp = Path(tempfile.mkdtemp(prefix="ursprung-auditd-"))
    (tmp / "plugins.d").mkdir()
    conf = tmp / "auditd.conf"
    conf.write_text(
        AUDITD_CONF.format(
            log_file=tmp / "audit.log", log_format=log_format, plugin_dir=tmp / "plugins.d"
        )
    )
    os.chmod(conf, 0o600)
    auditd: subprocess.Popen | None = None
    rules_loaded = False
    errors: list[str] = []
    try:
        with open(out, "wb") as out_f, open(tmp / "auditd.stderr", "wb") as err_f:
            auditd = subprocess.Popen(
                ["auditd", "-f", "-n", "-s", "nochange", "-c", str(tmp)],
                stdin=subprocess.DEVNULL,
                stdout=out_f,
                stderr=err_f,
            )
        details["auditd_pid"] = auditd.pid

        def registered() -> bool:
            if auditd.poll() is not None:
                return True
            return audit_status().get("pid") == str(auditd.pid)

        if not _wait_for(registered, 15) or auditd.poll() is not None:
            err = (tmp / "auditd.stderr").read_text(errors="replace").strip().splitlines()[-5:]
            raise RecordError(f"auditd did not start (exit {auditd.poll()}): {' | '.join(err)}")

        _run(["auditctl", "-b", str(BACKLOG)])
        _run(["auditctl", "-e", "1"])
        lost_before = int(audit_status().get("lost", "0"))
        # The pipeline's root: a bash in a new audit session that waits for a go line, so
        # that the rules can be scoped to its session before it execs the script.
        stdout_path = tmp / "script.stdout"
        with open(stdout_path, "wb") as so:
            proc = subprocess.Popen(
                ["bash", "-c", ROOT_WRAPPER, str(script), str(workdir)],
                cwd=workdir,
                stdin=subprocess.PIPE,
                stdout=so,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_set_loginuid,
            )
        details["root_pid"] = proc.pid
        try:
            ses = None
            with contextlib.suppress(OSError, ValueError):
                ses = int(Path(f"/proc/{proc.pid}/sessionid").read_text())
            details["audit_session"] = ses
            load = rules
            if scope == "session":
                if ses is None or ses == UNSET_ID:
                    raise RecordError(
                        "cannot scope the rules to the pipeline's audit session (loginuid not "
                        "settable here); record with scope='all'"
                    )
                load = _scoped_rules(rules, ses, tmp / "scoped.rules")
            rules_loaded = True  # set before loading: a half-loaded file is removed as well
            _run(["auditctl", "-R", str(load)])
            details["started_ns"] = time.time_ns()
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.close()
            rc = proc.wait(timeout=timeout)
        except BaseException as exc:  # failure, timeout, or SIGTERM/Ctrl-C of the recorder
            # kill the process group of the session this recorder created, by its id
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise RecordError(f"{script.name} run timed out after {timeout}s") from None
            raise
        details["finished_ns"] = time.time_ns()
        details["script_output"] = stdout_path.read_text(errors="replace")[-4000:]
        if rc != 0:
            raise RecordError(f"{script.name} run failed ({rc}):\n{details['script_output']}")

        # The root's exit_group is the pipeline's last audited call (the scripts wait for
        # their background jobs): once it is in the output, everything before it is as well.
        exit_re = re.compile(
            rb"^type=SYSCALL msg=audit\([^)]*\): arch=\S+ syscall=(?:231|252) .* pid=%d "
            % proc.pid,
            re.M,
        )

        def flushed() -> bool:
            with open(out, "rb") as f:
                return exit_re.search(f.read()) is not None

        if not _wait_for(flushed, 15, 0.1):
            errors.append("the pipeline's exit_group never arrived; the log may be incomplete")
        details["lost_records"] = int(audit_status().get("lost", "0")) - lost_before
    finally:
        if rules_loaded:
            try:
                _run(["auditctl", "-D", "-k", KEY])
            except Exception as exc:
                errors.append(f"removing rules: {exc}")
        if auditd is not None:
            try:
                stop_auditd(auditd)
            except Exception as exc:
                errors.append(f"stopping auditd {auditd.pid}: {exc}")
        if old_backlog is not None:
            try:
                _run(["auditctl", "-b", old_backlog])
            except Exception as exc:
                errors.append(f"restoring backlog limit: {exc}")
        try:
            if was_enabled in ("0", "1"):
                _run(["auditctl", "-e", was_enabled])
        except Exception as exc:
            errors.append(f"restoring enabled={was_enabled}: {exc}")
        shutil.rmtree(tmp, ignore_errors=True)
        details["cleanup_errors"] = errors
    if errors:
        raise RecordError("; ".join(errors))

    details.update(_versions())
    details["records"] = count_records(out)
    manifest = load_manifest(script)
    manifest["workdir"] = str(workdir)
    manifest["recording"] = details
    return out, manifest


_RECORD_RE = re.compile(rb"^(?:node=\S+ )?type=\S+ msg=audit\(")


def count_records(path: str | os.PathLike) -> int:
    """Number of audit records in a log: lines that start like ``[node=X ]type=T msg=audit(``."""
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if _RECORD_RE.match(line):
                n += 1
    return n


def _versions() -> dict[str, str]:
    v: dict[str, str] = {"kernel": os.uname().release}
    with contextlib.suppress(Exception):
        v["auditctl"] = _run(["auditctl", "-v"], check=False).stdout.strip()
    return v


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tests.realaudit.record", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--script", required=True, help="pipeline script (called as SCRIPT prepare|run WORKDIR)"
    )
    p.add_argument("--workdir", required=True, help="directory the pipeline runs in (recreated)")
    p.add_argument("--out", required=True, help="where to write the audit log")
    p.add_argument("--format", default="raw", choices=["raw", "enriched"], help="auditd log_format")
    p.add_argument(
        "--scope",
        default="session",
        choices=["session", "all"],
        help="session: only the pipeline's audit session (default); all: every process",
    )
    p.add_argument("--timeout", type=float, default=300)
    args = p.parse_args(argv)
    # SIGTERM -> SystemExit, so that the cleanup in record() runs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    reason = auditd_available()
    if reason:
        print(f"cannot record: {reason}", file=sys.stderr)
        return 2
    try:
        log, manifest = record(
            args.script, args.workdir, args.out, log_format=args.format, timeout=args.timeout
        )
    except RecordError as exc:
        print(f"recording failed: {exc}", file=sys.stderr)
        return 1
    rec = manifest["recording"]
    print(json.dumps({k: v for k, v in rec.items() if k != "script_output"}, indent=2))
    print(f"wrote {log} ({log.stat().st_size} bytes, {rec['records']} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
