"""What a front end tells the OS model about one completed syscall.

:class:`SyscallRecord` is the shape the model reads; :class:`Syscall` is the neutral record a
front end builds (the strace tracer, eBPF). A front end whose parser already produces records
of this shape passes them as they are (auditd's ``AuditEvent``: a per-event copy would cost
a tenth of the import's time).

Conventions, as the kernel and auditd have them:

* ``args`` are the first four argument registers as unsigned 64-bit values (a descriptor
  argument is read as its low 32 bits, ``AT_FDCWD`` as ``0xFFFFFF9C``);
* ``exit`` is the return value (a descriptor, a child pid, ``-errno``), ``success`` whether
  the call succeeded;
* ``paths`` are the names the call resolved, each with a ``nametype``: ``NORMAL`` (an
  existing name: the file opened, the program executed, a link's target), ``CREATE`` (a
  name the call made: a created file, a rename's or link's new name), ``DELETE`` (a name it
  removed: an unlinked file, a rename's old name), ``PARENT`` (the directory of one of
  those), ``UNKNOWN``; relative names are resolved by the model against the ``dirfd``
  argument or the process's working directory;
* ``cwd`` is the working directory at the call when the front end knows it (None: the
  model's own record of it, inherited at fork, is used).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

__all__ = ["NAMETYPES", "PathItem", "SockAddr", "Syscall", "SyscallRecord"]

NAMETYPES = ("NORMAL", "CREATE", "DELETE", "PARENT", "UNKNOWN")


@dataclass(slots=True)
class PathItem:
    """One name a syscall resolved (auditd: one PATH record). ``item``: its position in the
    call's list of names; inode, dev and mode where the front end knows them."""

    item: int
    name: str | None
    inode: int | None
    dev: str | None
    mode: int | None
    nametype: str


@dataclass(slots=True)
class SockAddr:
    """A decoded socket address: family ``inet``, ``inet6`` or ``unix`` (others as named)."""

    family: str
    address: str | None
    port: int | None


class SyscallRecord(Protocol):
    """What the model reads of one syscall (see the module docstring for the conventions)."""

    @property
    def node(self) -> str | None:
        """The host; None: the model's default host."""

    @property
    def serial(self) -> int:
        """Unique per host and increasing: numbers the events' ``seq`` and names pipes."""

    @property
    def ts(self) -> int:
        """When the call was made, epoch nanoseconds."""

    @property
    def syscall(self) -> str:
        """The syscall's name (``openat``, ``execve``, ...)."""

    @property
    def success(self) -> bool: ...

    @property
    def exit(self) -> int | None: ...

    @property
    def args(self) -> tuple[int, int, int, int]: ...

    @property
    def pid(self) -> int:
        """The process (thread group) id."""

    @property
    def ppid(self) -> int: ...

    @property
    def uid(self) -> int | None: ...

    @property
    def euid(self) -> int | None: ...

    @property
    def exe(self) -> str | None:
        """The program the process runs (after an exec: the new one; a script's
        interpreter)."""

    @property
    def cwd(self) -> str | None: ...

    @property
    def paths(self) -> Sequence[PathItem]: ...

    @property
    def argv(self) -> list[str] | None:
        """The arguments of an exec."""

    @property
    def proctitle(self) -> list[str] | None:
        """The process's command line at the call, where known."""

    @property
    def sockaddr(self) -> SockAddr | None: ...

    @property
    def fd_pair(self) -> tuple[int, int] | None:
        """The descriptors ``pipe``/``pipe2`` returned (read end, write end)."""


class Syscall(msgspec.Struct, frozen=True, kw_only=True):
    """The neutral :class:`SyscallRecord`: what front ends without a record type of their own
    build."""

    serial: int
    ts: int
    syscall: str
    pid: int
    node: str | None = None
    success: bool = True
    exit: int | None = None
    args: tuple[int, int, int, int] = (0, 0, 0, 0)
    ppid: int = 0
    uid: int | None = None
    euid: int | None = None
    exe: str | None = None
    cwd: str | None = None
    paths: tuple[PathItem, ...] = ()
    argv: list[str] | None = None
    proctitle: list[str] | None = None
    sockaddr: SockAddr | None = None
    fd_pair: tuple[int, int] | None = None
