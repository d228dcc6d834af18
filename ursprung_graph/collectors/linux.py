"""Linux ABI constants (x86_64 and aarch64 agree on these) shared by every collector, and
how the kernel picks the binary an exec runs."""

from __future__ import annotations

import os

from ..schema.names import name_from_bytes, name_to_bytes


def default_host() -> str:
    """This machine's name, as events record it when no host is given."""
    return os.uname().nodename

#: open(2) flags by name, as strace prints them and as the kernel encodes them.
OPEN_FLAGS = {
    "O_RDONLY": 0, "O_WRONLY": 0o1, "O_RDWR": 0o2, "O_CREAT": 0o100, "O_EXCL": 0o200,
    "O_NOCTTY": 0o400, "O_TRUNC": 0o1000, "O_APPEND": 0o2000, "O_NONBLOCK": 0o4000,
    "O_DSYNC": 0o10000, "O_DIRECT": 0o40000, "O_LARGEFILE": 0o100000,
    "O_DIRECTORY": 0o200000, "O_NOFOLLOW": 0o400000, "O_NOATIME": 0o1000000,
    "O_CLOEXEC": 0o2000000, "O_SYNC": 0o4010000, "O_PATH": 0o10000000,
    "O_TMPFILE": 0o20200000,
}
O_ACCMODE = 0o3
O_WRONLY = OPEN_FLAGS["O_WRONLY"]
O_RDWR = OPEN_FLAGS["O_RDWR"]
O_CREAT = OPEN_FLAGS["O_CREAT"]
O_TRUNC = OPEN_FLAGS["O_TRUNC"]
O_DIRECTORY = OPEN_FLAGS["O_DIRECTORY"]

S_IFMT = 0o170000
S_IFDIR = 0o040000

AT_FDCWD = 0xFFFFFF9C  # -100 as the low 32 bits of a register
CLONE_THREAD = 0x10000
EINPROGRESS = 115  # a non-blocking connect "fails" with it while the connection goes ahead


def interpreter(program: str) -> str:
    """The binary the kernel runs for ``program`` (a name in its text form): the ``#!``
    interpreter of a script, else the program itself."""
    try:
        with open(name_to_bytes(program), "rb") as fh:
            head = fh.read(256)
    except OSError:
        return program
    if not head.startswith(b"#!"):
        return program
    words = head[2:].split(b"\n", 1)[0].split()
    if not words:
        return program
    interp = name_from_bytes(words[0])
    return interp if interp.startswith("/") else program
