"""The home (``$URSPRUNG_HOME``) is private: whatever the umask, every directory ursprung
creates there is 0700 and every file 0600 (content-store copies 0400), because the home
holds copies of files other users must not read (a traced run's inputs), the graph of
everything the users did, and checkpoints. An existing home that group or others can
enter gets one warning per process; it is the owner's to change, not ours."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("ursprung.home")

DIR_MODE = 0o700
FILE_MODE = 0o600
#: The umask for servers ursprung starts in the home (the embedded FalkorDB).
UMASK = 0o077

_warned: set[Path] = set()


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents as 0700 directories (an existing one is left
    as it is); return it."""
    missing: list[Path] = []
    here = Path(path)
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=DIR_MODE)
            os.chmod(directory, DIR_MODE)  # mkdir's mode is cut by the umask
    return path


def open_private(path: Path | str, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """``os.open`` of a file that is 0600 whatever the umask (also when it existed)."""
    fd = os.open(path, flags | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files created meanwhile by this process (tempfile, libraries) get no group or other
    bits."""
    old = os.umask(UMASK)
    try:
        yield
    finally:
        os.umask(old)


def check_home(home: Path) -> None:
    """Warn once if the existing home lets group or others in."""
    if home in _warned:
        return
    try:
        mode = stat.S_IMODE(home.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        _warned.add(home)
        log.warning("%s is open to other users (mode %04o): it holds copies of files traced "
                    "runs read; `chmod 700 %s` makes it private", home, mode, home)
