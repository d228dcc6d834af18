"""A real PostgreSQL for the rules tests: Debian's server, initialised in a temporary
directory and listening only on a unix socket there, run as the ``postgres`` user when the
tests run as root; stopped at the end of the session."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql; make setup)")
    root = Path(tempfile.mkdtemp(prefix="ursprung-pg-"))  # reachable by the postgres user
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        user = pwd.getpwnam("postgres")
        for p in (root, sock):
            os.chown(p, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    init = subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                           "-U", "ursprung", "--no-sync"], capture_output=True, text=True)
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {init.stderr.strip()}")
    port = _free_port()
    opts = f"-k {sock} -c listen_addresses='' -p {port} -c fsync=off"
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w",
                    "-l", str(root / "log"), "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://ursprung@/postgres?host={sock}&port={port}"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                        "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
