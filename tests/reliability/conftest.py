"""Fixtures of the reliability tests: the real `ursprung` command in fresh homes, every
server a test caused stopped by its pid afterwards, and a second local user."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

URSPRUNG = str(Path(sys.executable).parent / "ursprung")
DATA = Path(__file__).resolve().parent.parent / "data"


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("URSPRUNG_")}
    env.update(URSPRUNG_HOME=str(home), URSPRUNG_GRAPH="g", **extra)
    return env


def ursprung(home: Path, *args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """One `ursprung` command as a user runs it, in ``home``."""
    kw.setdefault("env", env_for(home))
    return subprocess.run([URSPRUNG, *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def servers_of(home: Path) -> list[int]:
    """Pids of the live (not zombie) redis-servers serving ``home``."""
    sock = str(home / "falkordb" / "falkordb.sock").encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        if sock in cmdline and b"redis-server" in cmdline \
                and stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X"):
            found.append(int(entry))
    return found


def kill_servers(home: Path) -> None:
    """Stop every server of ``home`` (ours: started by the test's commands), by pid."""
    for pid in servers_of(home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while servers_of(home) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture()
def home(tmp_path: Path) -> Iterator[Path]:
    """A fresh $URSPRUNG_HOME (not created yet); its servers are stopped afterwards."""
    h = tmp_path / "home"
    yield h
    kill_servers(h)


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                               "--clear-groups", *argv], capture_output=True, text=True,
                              timeout=30)


@pytest.fixture(scope="session")
def other_user() -> Iterator[User]:
    """A second local user, created for the tests and removed afterwards (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("creating a second local user needs root")
    name = f"urst{os.getpid() % 100000}"
    made = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                           name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"useradd failed: {made.stderr.strip()}")
    try:
        entry = pwd.getpwnam(name)
        yield User(name, entry.pw_uid, entry.pw_gid)
    finally:
        subprocess.run(["userdel", name], capture_output=True)
