"""Starting strace and the command, with what that needs and nothing more.

`ursprung run` starts the command as soon as it knows that tracing works and the store is
there, and imports the rest of the recorder (the parser, the OS model, the store's write
path, hashing, run facts) while the command runs: :func:`launch` starts strace, whose trace
goes to a file in a private directory; a file never pushes back, so the command runs at
full speed while nobody reads it yet, and :class:`~.runner.Tracer` reads it from the start.
This module imports only the standard library (the time to a command's start is the
interpreter, click and this).

Before anything runs, :func:`check_tracing` makes sure strace exists and may trace here
(it traces ``true``): a missing strace or a ptrace ban fails clearly and runs nothing. A
probe that passed is remembered until what it depends on changes (:func:`tracing_stamp`:
the boot, strace's binary, the user, Yama's ptrace scope, this process's seccomp,
capabilities and tracer); should strace still fail to trace, it traces nothing and kills
the command before its first instruction, and the tracer raises :class:`TraceUnavailable`.

strace flags: ``-f`` (children and threads), ``--seccomp-bpf`` (only the traced syscalls
stop the tracee), ``-ttt`` (epoch times in microseconds), ``-q`` (no attach notes, but exit
lines, which tell how processes ended), ``-s 4096`` (whole paths and arguments),
``-e signal=none`` (no signal lines) and ``-e trace=`` the syscalls of
:data:`TRACED_SYSCALLS`; strace itself runs with ``TZ=UTC`` and gives the command the
caller's ``TZ`` back (:func:`strace_command`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: The syscalls the tracer asks strace for: what the OS model understands, plus chdir.
TRACED_SYSCALLS = (
    "execve", "execveat", "fork", "vfork", "clone", "clone3", "exit_group",
    "open", "openat", "openat2", "creat", "close",
    "rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir",
    "link", "linkat", "symlink", "symlinkat", "truncate", "ftruncate",
    "connect", "accept", "accept4", "bind",
    "pipe", "pipe2", "dup", "dup2", "dup3", "fcntl", "chdir", "fchdir",
)
STRING_LIMIT = 4096


class TraceUnavailable(RuntimeError):
    """Tracing cannot work here; nothing was run."""


def strace_path(path: str | None = None) -> str:
    found = shutil.which("strace", path=path)
    if found is None:
        raise TraceUnavailable(
            "strace was not found on PATH, so the command cannot be traced and was not run "
            "(install it: apt-get install strace)")
    return found


def strace_args(strace: str, output: str) -> list[str]:
    return [strace, "-f", "--seccomp-bpf", "-ttt", "-q", "-s", str(STRING_LIMIT),
            "-e", "signal=none", "-e", "trace=" + ",".join(TRACED_SYSCALLS), "-o", output]


def strace_command(strace: str, output: str, argv: Sequence[str],
                   env: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """strace's command line and environment for tracing ``argv``.

    strace formats every line's time through localtime(), and glibc then stats
    /etc/localtime twice per traced syscall unless ``TZ`` is set. So strace runs with
    ``TZ=UTC`` (the ``-ttt`` epoch times do not depend on it) and hands the command the
    caller's own ``TZ`` back with ``-E`` (or removes it if the caller had none): the
    command's environment is the caller's, unchanged."""
    environ = dict(os.environ if env is None else env)
    tz = environ.get("TZ")
    environ["TZ"] = "UTC"
    restore = ["-E", "TZ" if tz is None else f"TZ={tz}"]
    return [*strace_args(strace, output), *restore, "--", *argv], environ


#: The name of the remembered probe in the cache directory.
STAMP_NAME = "strace-traces"
#: What of /proc/self/status bears on whether this process may ptrace.
_STATUS_FIELDS = ("Uid:", "CapEff:", "NoNewPrivs:", "Seccomp:", "TracerPid:")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def tracing_stamp(strace: str) -> str:
    """What a passed probe depends on: the same text, the same answer."""
    try:
        st = os.stat(strace)
        binary = f"{os.path.realpath(strace)} {st.st_size} {st.st_mtime_ns} {st.st_ino}"
    except OSError:
        binary = strace
    status = [line for line in _read("/proc/self/status").splitlines()
              if line.startswith(_STATUS_FIELDS)]
    return "\n".join([
        _read("/proc/sys/kernel/random/boot_id").strip(), binary,
        _read("/proc/sys/kernel/yama/ptrace_scope").strip(), *status]) + "\n"


def forget_tracing(cache_dir: Path) -> None:
    """Forget a remembered probe (strace failed to trace after all)."""
    with contextlib.suppress(OSError):
        (cache_dir / STAMP_NAME).unlink()


def tracing_known(strace: str, cache_dir: Path) -> bool:
    """Whether a probe of ``strace`` passed and nothing it depends on changed since."""
    return _read(str(cache_dir / STAMP_NAME)) == tracing_stamp(strace)


def check_tracing(strace: str, env: dict[str, str] | None = None, *,
                  cache_dir: Path | None = None) -> None:
    """Trace ``true`` once; raise TraceUnavailable with strace's own words if that fails
    (ptrace forbidden by a seccomp profile, Yama, a container...). With ``cache_dir``, a
    probe that passed is remembered there, and not run again while its
    :func:`tracing_stamp` holds."""
    if cache_dir is None:
        _probe(strace, env)
        return
    stamp = tracing_stamp(strace)
    if _read(str(cache_dir / STAMP_NAME)) == stamp:
        return
    _probe(strace, env)
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".stamp-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(stamp)
        os.replace(tmp, cache_dir / STAMP_NAME)


def _probe(strace: str, env: dict[str, str] | None) -> None:
    true = shutil.which("true") or "/bin/true"
    with tempfile.TemporaryDirectory(prefix="ursprung-probe-") as tmp:
        out = os.path.join(tmp, "probe.trace")
        try:
            argv, environ = strace_command(strace, out, [true], env)
            probe = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                                   env=environ, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TraceUnavailable(f"strace could not be started: {exc}; nothing was run") \
                from exc
        traced = os.path.exists(out) and "execve(" in Path(out).read_text(errors="replace")
    if probe.returncode != 0 or not traced:
        why = (probe.stderr or probe.stdout).strip() or f"exit status {probe.returncode}"
        raise TraceUnavailable(
            f"strace cannot trace processes here (is ptrace forbidden?): {why}; "
            "the command was not run")


class ForwardSignals:
    """While the command runs, Ctrl-C and friends are for the command (it gets them from the
    terminal itself); ursprung keeps going so that it can record how the run ended. A Python
    handler, unlike SIG_IGN, is reset by exec, so the command does not inherit it."""

    SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.saved: dict[int, object] = {}
        self.child: subprocess.Popen | None = None

    def install(self) -> ForwardSignals:
        """Take the signals over (from the main thread; elsewhere Python cannot)."""
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        """Give the signals back to the handlers they had."""
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def __enter__(self) -> ForwardSignals:
        return self.install()

    def _handle(self, signum: int, frame: object) -> None:
        # SIGTERM/SIGHUP sent to ursprung alone: pass them on to strace (which passes them
        # to the command); SIGINT/SIGQUIT come from the terminal, which told the command.
        if signum in (signal.SIGTERM, signal.SIGHUP) and self.child is not None:
            with contextlib.suppress(OSError):
                self.child.send_signal(signum)

    def __exit__(self, *exc: object) -> None:
        self.restore()


@dataclass(slots=True)
class Launched:
    """strace and the command, started by :func:`launch`; :meth:`wait` for its end, then
    :meth:`close`."""

    child: subprocess.Popen[bytes]
    output: str  # the trace file
    directory: str  # its private directory, removed by close
    start: int  # epoch ns, just before the command started
    signals: ForwardSignals

    def wait(self) -> int:
        """The exit status of strace (the command's), once it has ended."""
        while True:
            try:
                return self.child.wait()
            except KeyboardInterrupt:  # a second Ctrl-C before our handler was in place
                continue

    def close(self) -> None:
        self.signals.restore()
        shutil.rmtree(self.directory, ignore_errors=True)

    def finish(self) -> int:
        """Let it run to its end, unfollowed, and leave nothing of it (again: nothing
        happens); its exit status."""
        code = self.wait()
        self.close()
        return code


def launch(strace: str, argv: Sequence[str], *, cwd: str | None = None,
           env: dict[str, str] | None = None, stdout: int | None = None) -> Launched:
    """Start ``argv`` under strace, its trace to a new private file; from the main thread,
    Ctrl-C and friends are the command's until :meth:`Launched.close`."""
    directory = tempfile.mkdtemp(prefix="ursprung-trace-")
    output = os.path.join(directory, "trace")
    Path(output).touch(mode=0o600)
    full, environ = strace_command(strace, output, argv, env)
    signals = ForwardSignals().install()
    start = time.time_ns()
    try:
        child = subprocess.Popen(full, cwd=os.path.abspath(cwd or os.getcwd()), env=environ,
                                 stdout=stdout)
    except OSError as exc:
        signals.restore()
        shutil.rmtree(directory, ignore_errors=True)
        raise TraceUnavailable(f"strace could not be started: {exc}") from exc
    signals.child = child
    return Launched(child, output, directory, start, signals)
