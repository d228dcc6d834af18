"""Neutral calls (:mod:`.records`, in time order) -> the shared OS model -> normalized events.

The thin layer between the eBPF front end and the OS model (:mod:`..os_model`): each
:class:`~.records.Call` becomes the model's neutral :class:`~..os_model.Syscall`, and the
model does the rest (descriptor tables, intervals, fork inheritance, pipes, sockets). What
it adds:

* **processes and threads**: the kernel says which task is a thread (``CLONE_THREAD`` in the
  clone flags of ``task_newtask``) and every record names its process (tgid), so threads
  need no guessing;
* **exec**: the file name and argv printed at enter are joined with the kernel's word that
  the exec succeeded; a ``#!`` script's interpreter becomes the process's program, as
  auditd reports it;
* **the root** of a traced subtree is known before it runs (its parent is ursprung).
"""

from __future__ import annotations

import os

from ...schema.event import SCHEMA_VERSION, Event, GapWindow, Kind, ProcessInfo
from ..linux import AT_FDCWD, CLONE_THREAD, O_CREAT, O_TRUNC, O_WRONLY, interpreter
from ..os_model import PathItem, Proc, SockAddr, Syscall
from ..trace.convert import TraceModel
from .records import Call

SOURCE = "ebpf"
_NO_ARGS = (0, 0, 0, 0)


class CallConverter:
    """Turns the calls of one capture into events. ``root``: the pid of a traced subtree's
    root (its parent ``parent_pid``, cwd ``cwd``); without one (node-wide), processes are
    created as the model meets them."""

    def __init__(self, host: str, *, root: int | None = None, cwd: str | None = None,
                 parent_pid: int = 0, uid: int | None = None, euid: int | None = None,
                 source: str = SOURCE) -> None:
        self.host = host
        self.source = source
        self.model = TraceModel(host, source=source)
        self.root = root
        self.root_start: int | None = None
        self.members: dict[tuple[int, int], None] = {}
        self.calls = 0
        self._cwd = cwd
        self._parent = parent_pid
        self._uid = os.getuid() if uid is None else uid
        self._euid = os.geteuid() if euid is None else euid
        self._execs: dict[int, Call] = {}
        self._serial = 0

    def adopt_root(self, ts: int) -> None:
        """The root exists from ``ts`` on (it was started by ursprung, waiting to run)."""
        if self.root is None:
            return
        self.root_start = ts
        self.model.adopt(self.host, Proc(pid=self.root, start=ts, ppid=self._parent,
                                         cwd=self._cwd, uid=self._uid, euid=self._euid))
        self.members[(self.root, ts)] = None

    def feed(self, calls: list[Call]) -> list[Event]:
        out: list[Event] = []
        for call in calls:
            self.calls += 1
            sc = self._syscall(call)
            if sc is not None:
                self._apply(sc, out)
        return out

    def gap(self, ts: int, what: str, window: GapWindow) -> Event:
        """A capture gap (records lost, a window not collected) as a ``gap`` event of the
        traced root (node-wide: of no process), which the store keeps as a ``Gap``."""
        self._serial += 1
        pid = self.root or 0
        start = self.root_start or 0
        return Event(v=SCHEMA_VERSION, source=self.source, host=self.host, ts=ts,
                     seq=f"gap.{self._serial}", kind=Kind.GAP,
                     proc=ProcessInfo(pid=pid, start=start), gap=what, window=window)

    def _known(self, pid: int) -> bool:
        return self.model.process(self.host, pid) is not None

    def _apply(self, sc: Syscall, out: list[Event]) -> None:
        for ev in self.model.apply(sc):
            self.members[(ev.proc.pid, ev.proc.start)] = None
            if ev.child is not None:
                self.members[(ev.child.pid, ev.child.start)] = None
            out.append(ev)

    def _make(self, call: Call, syscall: str, *, args: tuple[int, int, int, int] = _NO_ARGS,
              exit: int | None = None, paths: tuple[PathItem, ...] = (),
              exe: str | None = None, argv: list[str] | None = None,
              sockaddr: SockAddr | None = None,
              fd_pair: tuple[int, int] | None = None) -> Syscall:
        self._serial += 1
        return Syscall(serial=self._serial, ts=call.ts, syscall=syscall, pid=call.pid,
                       exit=call.result if exit is None else exit, args=args, exe=exe,
                       paths=paths, argv=argv, sockaddr=sockaddr, fd_pair=fd_pair)

    def _paths(self, call: Call, syscall: str, args: tuple[int, int, int, int],
               *items: tuple[str | None, str]) -> Syscall | None:
        paths = []
        for i, (name, nametype) in enumerate(items):
            if name is None:
                return None
            paths.append(PathItem(i, name, None, None, None, nametype))
        return self._make(call, syscall, args=args, paths=tuple(paths))

    def _syscall(self, call: Call) -> Syscall | None:
        name, a = call.name, call.args
        if name == "clone":
            if call.flags & CLONE_THREAD or not self._known(call.pid):
                return None
            return self._make(call, "clone", exit=call.child)
        if name == "exit":
            if not call.group_dead or not self._known(call.pid):
                return None
            code = call.result if call.result >= 0 else 0
            return self._make(call, "exit_group", args=(code, 0, 0, 0))
        if name in ("execve", "execveat"):
            self._execs[call.tid] = call
            return None
        if name == "exec":
            return self._exec(call)
        if name in ("open", "openat", "openat2", "creat"):
            if name == "open":
                dirfd, flags = AT_FDCWD, a[1]
            elif name == "creat":
                dirfd, flags = AT_FDCWD, O_WRONLY | O_CREAT | O_TRUNC
            elif name == "openat":
                dirfd, flags = _fd(a[0]), a[2]
            else:
                dirfd, flags = _fd(a[0]), call.flags
            if call.path is None:
                return None
            nametype = "CREATE" if flags & O_CREAT else "NORMAL"
            return self._make(call, "openat", args=(dirfd, 0, flags, 0),
                              paths=(PathItem(0, call.path, None, None, None, nametype),))
        if name in ("close", "dup", "dup2", "dup3", "ftruncate", "fchdir"):
            return self._make(call, name, args=(_fd(a[0]), 0, 0, 0))
        if name == "fcntl":
            return self._make(call, "dup", args=(_fd(a[0]), 0, 0, 0))
        if name in ("pipe", "pipe2"):
            return self._make(call, name, fd_pair=call.fds)
        if name in ("rename", "renameat", "renameat2"):
            args = _NO_ARGS if name == "rename" else (_fd(a[0]), 0, _fd(a[2]), 0)
            return self._paths(call, name, args, (call.path, "DELETE"), (call.path2, "CREATE"))
        if name in ("unlink", "rmdir"):
            return self._paths(call, name, _NO_ARGS, (call.path, "DELETE"))
        if name == "unlinkat":
            return self._paths(call, name, (_fd(a[0]), 0, 0, 0), (call.path, "DELETE"))
        if name in ("link", "symlink"):
            return self._paths(call, name, _NO_ARGS, (call.path, "NORMAL"),
                               (call.path2, "CREATE"))
        if name == "linkat":
            return self._paths(call, name, (_fd(a[0]), 0, _fd(a[2]), 0),
                               (call.path, "NORMAL"), (call.path2, "CREATE"))
        if name == "symlinkat":
            return self._paths(call, name, (0, _fd(a[1]), 0, 0), (call.path, "NORMAL"),
                               (call.path2, "CREATE"))
        if name in ("truncate", "chdir"):
            return self._paths(call, name, _NO_ARGS, (call.path, "NORMAL"))
        if name in ("connect", "bind", "accept", "accept4"):
            addr = call.addr
            sockaddr = SockAddr(addr.family, addr.address, addr.port) if addr else None
            return self._make(call, name, args=(_fd(a[0]), 0, 0, 0), sockaddr=sockaddr)
        return None

    def _exec(self, call: Call) -> Syscall | None:
        asked = self._execs.pop(call.old_tid if call.old_tid is not None else call.tid, None)
        if asked is None or asked.path is None:
            return None
        proc = self.model.process(self.host, call.pid)
        program = asked.path
        if proc is not None:
            dirfd = asked.args[0] if asked.name == "execveat" else AT_FDCWD
            program = self.model.resolve(proc, program, dirfd)
        return self._make(call, "execve", exit=0, exe=interpreter(program), argv=asked.argv,
                          paths=(PathItem(0, program, None, None, None, "NORMAL"),))


def _fd(value: int) -> int:
    return value & 0xFFFFFFFF
