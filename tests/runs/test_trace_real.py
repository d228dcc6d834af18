"""The tracer on real processes under the real strace: transparency, and what it records."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ursprung_graph.collectors.trace.launch import (
    STAMP_NAME,
    TraceUnavailable,
    check_tracing,
    strace_path,
)
from ursprung_graph.collectors.trace.runner import trace
from ursprung_graph.schema.event import Kind

from .helpers import cli_env, ursprung

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")

WORKLOAD = textwrap.dedent("""
    import os, subprocess, sys, threading
    os.makedirs("d", exist_ok=True)
    with open("d/main.txt", "w") as f:
        f.write("main")
    def worker():
        with open("d/thread.txt", "w") as f:
            f.write("thread")
    t = threading.Thread(target=worker); t.start(); t.join()
    pid = os.fork()
    if pid == 0:
        with open("d/child.txt", "w") as f:
            f.write("child")
        os._exit(0)
    os.waitpid(pid, 0)
    os.rename("d/main.txt", "d/renamed.txt")
    os.chdir("d")
    r = subprocess.run(["sh", "-c", "cat renamed.txt | tr a-z A-Z > upper.txt"])
    sys.stdout.write("out:\\x00\\xff bytes\\n"); sys.stdout.flush()
    sys.stderr.write("err line\\n")
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
""")


def test_trace_records_forks_threads_pipes_renames_and_cwd(tmp_path: Path):
    script = tmp_path / "work.py"
    script.write_text(WORKLOAD)
    events = []
    result = trace([sys.executable, str(script), "3"], events.extend, host="h",
                   cwd=str(tmp_path))
    assert result.returncode == 3
    assert result.bad_lines == 0
    writes = {}
    for ev in events:
        if ev.kind is Kind.WRITE:
            writes.setdefault(ev.file.path, set()).add(ev.proc.pid)
    d = tmp_path / "d"
    root = result.root_pid
    assert writes[str(d / "main.txt")] == {root}
    assert writes[str(d / "thread.txt")] == {root}  # a thread is its process
    child = writes[str(d / "child.txt")]
    assert len(child) == 1 and child != {root}
    assert str(d / "upper.txt") in writes  # relative to the chdir'd directory
    renames = [(e.file.path, e.dst.path) for e in events if e.kind is Kind.RENAME]
    assert renames == [(str(d / "main.txt"), str(d / "renamed.txt"))]
    pipe_w = {e.pipe for e in events if e.kind is Kind.PIPE_WRITE}
    pipe_r = {e.pipe for e in events if e.kind is Kind.PIPE_READ}
    assert pipe_w & pipe_r, "cat | tr: one pipe written by cat, read by tr"
    exits = {e.proc.pid: e.exit_code for e in events if e.kind is Kind.EXIT}
    assert exits[root] == 3
    members = {pid for pid, _ in result.members}
    assert root in members and len(members) >= 5  # python, fork child, sh, cat, tr


def run_both(tmp_path: Path, settings, argv: list[str], stdin: bytes | None = None):
    direct = subprocess.run(argv, cwd=tmp_path, input=stdin, capture_output=True, timeout=120)
    shutil.rmtree(tmp_path / "d", ignore_errors=True)
    traced = ursprung(settings, "run", "--", *argv, cwd=tmp_path, input=stdin)
    return direct, traced


@pytest.mark.parametrize("code", [0, 3])
def test_run_is_transparent(tmp_path: Path, settings, code: int):
    script = tmp_path / "work.py"
    script.write_text(WORKLOAD)
    direct, traced = run_both(tmp_path, settings, [sys.executable, str(script), str(code)])
    assert traced.returncode == direct.returncode == code
    assert traced.stdout == direct.stdout == b"out:\x00\xc3\xbf bytes\n"
    assert traced.stderr == direct.stderr == b"err line\n"
    assert (tmp_path / "d" / "upper.txt").read_text() == "MAIN"


def test_run_passes_stdin_and_signals(tmp_path: Path, settings):
    direct, traced = run_both(tmp_path, settings, ["sh", "-c", "tr a-z A-Z; kill -TERM $$"],
                              stdin=b"hello\n")
    assert traced.stdout == direct.stdout == b"HELLO\n"
    assert direct.returncode == -15
    assert traced.returncode == 128 + 15  # as a shell reports a SIGTERM death


def test_run_records_the_run(tmp_path: Path, settings, store):
    script = tmp_path / "work.py"
    script.write_text(WORKLOAD)
    out = ursprung(settings, "run", "--pipeline", "p1", "--param", "seed=7",
                   "--id-file", str(tmp_path / "id"), "--", sys.executable, str(script),
                   "0", "--lr=0.5", "mode=fast", cwd=tmp_path,
                   env=cli_env(settings, URSPRUNG_PARAM_ENV="MY_KNOB", MY_KNOB="11"))
    assert out.returncode == 0, out.stderr
    run_id = (tmp_path / "id").read_text().strip()
    shown = ursprung(settings, "runs", "show", run_id[:8], "--json", check=True)
    facts = json.loads(shown.stdout)
    assert facts["pipeline"] == "p1" and facts["exit_code"] == 0
    assert facts["cwd"] == str(tmp_path) and facts["origin"] == "trace"
    assert facts["params"] == {"seed": "7", "lr": "0.5", "mode": "fast", "MY_KNOB": "11"}
    assert facts["user"] and facts["host"]
    assert facts["start"] < facts["end"]
    outputs = {f["rel"]: f for f in facts["outputs"]}
    assert set(outputs) == {"d/renamed.txt", "d/thread.txt", "d/child.txt", "d/upper.txt"}
    assert all(len(f["sha256"]) == 64 for f in outputs.values())
    assert "work.py" in {f["rel"] for f in facts["inputs"]}
    assert "d/main.txt" in {f["rel"] for f in facts["intermediates"]}
    programs = {f["path"] for f in facts["programs"]}
    assert str(script) in programs
    assert any(p.endswith(("/sh", "/dash")) for p in programs)
    assert any(k.startswith("/") and v.count(".") >= 1 for k, v in facts["environment"].items())
    assert len(facts["processes"]) >= 5


def test_missing_strace_runs_nothing(tmp_path: Path, settings):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("touch", "sh"):
        os.symlink(shutil.which(tool), bindir / tool)
    env = cli_env(settings, PATH=str(bindir))
    out = ursprung(settings, "run", "--tracer", "strace", "--", "touch", str(tmp_path / "ran"),
                   cwd=tmp_path, env=env)
    assert out.returncode != 0
    assert b"strace was not found" in out.stderr
    assert not (tmp_path / "ran").exists()
    with pytest.raises(TraceUnavailable):
        trace(["true"], lambda evs: None, host="h", env={"PATH": str(bindir)})


DENY_PTRACE = textwrap.dedent("""
    # Run argv[1:] with ptrace(2) forbidden (EPERM), as container seccomp profiles do.
    import ctypes, os, struct, sys
    libc = ctypes.CDLL(None, use_errno=True)
    code = [(0x20, 0, 0, 0), (0x15, 0, 1, 101), (0x06, 0, 0, 0x00050000 | 1),
            (0x06, 0, 0, 0x7FFF0000)]
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *c) for c in code))
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    prog = Prog(len(code), ctypes.addressof(buf))
    assert libc.prctl(38, 1, 0, 0, 0) == 0
    assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0
    os.execv(sys.argv[1], sys.argv[1:])
""")


def denied(tmp_path: Path, *argv: str, **kw) -> subprocess.CompletedProcess[bytes]:
    """``argv`` run with ptrace(2) forbidden."""
    deny = tmp_path / "deny.py"
    deny.write_text(DENY_PTRACE)
    return subprocess.run([sys.executable, str(deny), *argv], **kw)


def run_touch_denied(tmp_path: Path, settings) -> subprocess.CompletedProcess[bytes]:
    """`ursprung run -- touch ran`, with ptrace forbidden."""
    from .helpers import URSPRUNG

    return denied(tmp_path, URSPRUNG, "run", "--tracer", "strace", "--", "touch",
                  str(tmp_path / "ran"), cwd=tmp_path, env=cli_env(settings),
                  capture_output=True, timeout=120)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the filter names x86_64's ptrace")
def test_forbidden_ptrace_runs_nothing(tmp_path: Path, settings):
    out = run_touch_denied(tmp_path, settings)
    assert out.returncode != 0
    assert b"cannot trace" in out.stderr, out.stderr
    assert not (tmp_path / "ran").exists()


def test_a_passed_probe_is_remembered_until_what_it_depends_on_changes(tmp_path: Path):
    """The probe (strace tracing ``true``) runs once; a changed strace binary probes again."""
    calls = tmp_path / "calls"
    fake = tmp_path / "strace"
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo x >> {calls}
        while [ $# -gt 0 ]; do [ "$1" = -o ] && echo 'execve("/bin/true")' > "$2"; shift; done
    """))
    fake.chmod(0o755)
    cache = tmp_path / "cache"
    check_tracing(str(fake), cache_dir=cache)
    check_tracing(str(fake), cache_dir=cache)
    assert calls.read_text().count("x") == 1 and (cache / STAMP_NAME).exists()
    fake.write_text(fake.read_text() + "# another strace\n")
    check_tracing(str(fake), cache_dir=cache)
    assert calls.read_text().count("x") == 2
    check_tracing(str(fake))  # no cache: always probes
    assert calls.read_text().count("x") == 3


STAMP_UNDER_DENY = textwrap.dedent("""
    import sys
    from ursprung_graph.collectors.trace.launch import tracing_stamp
    open(sys.argv[2], "w").write(tracing_stamp(sys.argv[1]))
""")


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the filter names x86_64's ptrace")
def test_a_remembered_probe_that_no_longer_holds_runs_nothing(tmp_path: Path, settings):
    """Should ptrace be forbidden in a way the remembered probe cannot see, strace traces
    nothing and kills the command before it starts: nothing runs, the error says so, and
    the probe is forgotten."""
    stamper = tmp_path / "stamp.py"
    stamper.write_text(STAMP_UNDER_DENY)
    cache = settings.home / "cache"
    cache.mkdir(exist_ok=True)
    denied(tmp_path, sys.executable, str(stamper), strace_path(), str(cache / STAMP_NAME),
           check=True, timeout=60)
    out = run_touch_denied(tmp_path, settings)
    assert out.returncode != 0
    assert b"could not trace the command" in out.stderr, out.stderr
    assert b"Traceback" not in out.stderr
    assert not (tmp_path / "ran").exists()
    assert not (cache / STAMP_NAME).exists()


def test_command_not_found_is_127_and_runs_nothing(tmp_path: Path, settings):
    out = ursprung(settings, "run", "--", "no-such-command-xyz", cwd=tmp_path)
    assert out.returncode == 127
    assert b"command not found" in out.stderr
