"""The home is private whatever the umask: a file only its owner may read stays so after a
traced run read it (the content store keeps a copy), checked as a second local user."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import User, env_for, kill_servers, ursprung

SECRET = b"the password is swordfish\n"


@pytest.fixture()
def open_dir() -> Iterator[Path]:
    """A directory everyone may enter (unlike pytest's 0700 tmp_path)."""
    d = Path(tempfile.mkdtemp(prefix="ursprung-perm-"))
    os.chmod(d, 0o755)
    yield d
    kill_servers(d / "home")
    for p in sorted(d.rglob("*"), reverse=True):  # blobs are 0400
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o700)
            p.rmdir()
        else:
            p.unlink()
    d.rmdir()


def test_other_user_cannot_read_what_a_run_read(open_dir: Path, other_user: User) -> None:
    home = open_dir / "home"
    secret = open_dir / "secret.txt"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    assert other_user.run("cat", str(secret)).returncode != 0  # the premise
    result = ursprung(home, "run", "--", "cat", str(secret), cwd=open_dir,
                      env=env_for(home), umask=0)
    assert result.returncode == 0 and result.stdout.encode() == SECRET, result.stderr
    digest = hashlib.sha256(SECRET).hexdigest()
    copy = home / "content" / "sha256" / digest[:2] / digest[2:]
    assert copy.read_bytes() == SECRET  # the run kept a copy
    denied = other_user.run("cat", str(copy))
    assert denied.returncode != 0 and SECRET.decode() not in denied.stdout
    assert other_user.run("ls", str(home)).returncode != 0

    loose = []
    for p in [home, *home.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        if mode & 0o077 or (p.is_dir() and mode != 0o700):
            loose.append(f"{p.relative_to(open_dir)} {mode:04o}")
    assert not loose, loose  # data, log, pidfile, checkpoints, caches, content


def test_an_existing_loose_home_gets_a_warning(home: Path) -> None:
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    result = ursprung(home, "cypher", "RETURN 1 AS one")
    assert result.returncode == 0, result.stderr
    assert "open to other users" in result.stderr and "chmod 700" in result.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o755  # the owner's choice, not changed
    home.chmod(0o700)
    assert "open to other users" not in ursprung(home, "cypher", "RETURN 1 AS one").stderr
