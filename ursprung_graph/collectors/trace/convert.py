"""strace calls -> neutral syscall records -> the shared OS model -> normalized events.

The tracer does not have a model of its own: each strace call becomes the neutral
:class:`Syscall` record (named paths with CREATE/DELETE name types, ``fd_pair`` for pipes,
the decoded socket address, the exit value and the argument registers the model looks at)
and is replayed into the same :class:`OSModel` auditd uses, so traced and audited runs get
one and the same semantics (descriptor tables, pipes on 0/1/2, intervals closed at
close/exec/exit). What strace does not give per call is filled in here:

* **threads**: strace reports thread ids; a thread's calls are the process's calls (clone
  with CLONE_THREAD maps the new tid to its thread group);
* **parents**: with ``-f`` a child's first calls are often printed before its parent's
  ``clone``/``vfork`` returns; calls of a pid nobody has created yet wait until the call
  that created it completes (or, at the end, are replayed as a process of unknown parent);
* **the working directory**: the root starts in the directory ``ursprung run`` was called
  from; :class:`TraceModel` follows ``chdir``/``fchdir`` (children inherit it at fork);
* **the program**: auditd reports the interpreter of a ``#!`` script as ``exe``; the tracer
  reads the first line of the executed file to do the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ...schema.event import Event
from ...schema.names import name_from_bytes
from ..linux import (
    AT_FDCWD,
    CLONE_THREAD,
    O_CREAT,
    O_TRUNC,
    O_WRONLY,
    OPEN_FLAGS,
    interpreter,
)
from ..os_model import Emitter, ModelState, OSModel, PathItem, Proc, SockAddr, Syscall
from ..os_model import SyscallRecord as Record
from .strace import Call, Struct, int_of, text_of

SOURCE = "strace"

CLONE_FLAGS = {"CLONE_THREAD": CLONE_THREAD}
#: connect on a non-blocking socket "fails" with these while the connection goes ahead.
CONNECT_PENDING = ("EINPROGRESS", "EALREADY")
FORKS = ("fork", "vfork", "clone", "clone3")


class TraceModel(OSModel):
    """The shared OS model plus what auditd gets from CWD records: chdir and fchdir."""

    def __init__(self, default_host: str, state: ModelState | None = None, *,
                 source: str = SOURCE) -> None:
        super().__init__(default_host, state, source=source)
        self.register(("chdir",), self._chdir)
        self.register(("fchdir",), self._fchdir)

    def _chdir(self, out: Emitter, call: Record, proc: Proc) -> None:
        if call.paths and call.paths[0].name:
            proc.cwd = self.resolve(proc, call.paths[0].name)

    def _fchdir(self, out: Emitter, call: Record, proc: Proc) -> None:
        path = self.directory(proc, call.args[0])
        if path is not None:
            proc.cwd = path


class TraceConverter:
    """Turns the calls of one traced command (in strace's output order) into events."""

    def __init__(self, host: str, cwd: str, *, uid: int | None = None,
                 euid: int | None = None, parent_pid: int | None = None) -> None:
        self.host = host
        self.cwd = cwd
        self.uid = os.getuid() if uid is None else uid
        self.euid = os.geteuid() if euid is None else euid
        self.parent_pid = os.getpid() if parent_pid is None else parent_pid
        self.model = TraceModel(host)
        self.tgid: dict[int, int] = {}
        self.pending: dict[int, list[Call]] = {}
        self.root: int | None = None
        self.root_start: int | None = None
        self.root_exit: int | None = None
        self.members: dict[tuple[int, int], None] = {}
        self.calls = 0
        self._serial = 0

    # -- entry points ----------------------------------------------------------------------

    def feed(self, call: Call) -> list[Event]:
        out: list[Event] = []
        self.calls += 1
        self._dispatch(call, out)
        return out

    def feed_all(self, calls: Iterable[Call]) -> list[Event]:
        out: list[Event] = []
        for call in calls:
            self.calls += 1
            self._dispatch(call, out)
        return out

    def finish(self) -> list[Event]:
        """Calls of processes whose creation was never seen: replayed as processes of
        unknown parent (in the order their first calls came)."""
        out: list[Event] = []
        while self.pending:
            tid = next(iter(self.pending))
            self.tgid[tid] = tid
            for call in self.pending.pop(tid):
                self._dispatch(call, out)
        return out

    # -- internals -------------------------------------------------------------------------

    def _dispatch(self, call: Call, out: list[Event]) -> None:
        pid = self.tgid.get(call.tid)
        if pid is None:
            if self.root is None:
                pid = self._adopt_root(call)
            else:
                self.pending.setdefault(call.tid, []).append(call)
                return
        if call.name == "+++exit":
            self._exited(call, pid, out)
            return
        if call.name in FORKS:
            self._forked(call, pid, out)
            return
        record = self._record(call, pid)
        if record is not None:
            self._apply(record, out)

    def _adopt_root(self, call: Call) -> int:
        pid = self.root = call.tid
        self.root_start = call.ts
        self.tgid[pid] = pid
        self.model.adopt(self.host, Proc(pid=pid, start=call.ts, ppid=self.parent_pid,
                                         cwd=self.cwd, uid=self.uid, euid=self.euid))
        self.members[(pid, call.ts)] = None
        return pid

    def _apply(self, record: Syscall, out: list[Event]) -> None:
        for ev in self.model.apply(record):
            self.members[(ev.proc.pid, ev.proc.start)] = None
            if ev.child is not None:
                self.members[(ev.child.pid, ev.child.start)] = None
            out.append(ev)

    def _exited(self, call: Call, pid: int, out: list[Event]) -> None:
        self.tgid.pop(call.tid, None)
        if call.tid != pid:
            return  # a thread ended
        for tid in [t for t, p in self.tgid.items() if p == pid]:
            del self.tgid[tid]
        if pid == self.root:
            self.root_exit = call.ret
        if self.model.process(self.host, pid) is not None:
            # killed by a signal (or ended without exit_group): end it like exit_group
            self._apply(self._make(call, pid, "exit_group", args=(call.ret or 0, 0, 0, 0),
                                   exit=None), out)

    def _forked(self, call: Call, pid: int, out: list[Event]) -> None:
        child = call.ret
        if child is None or child <= 0 or call.error:
            return
        thread = False
        if call.name in ("clone", "clone3"):
            flags = self._clone_flags(call)
            thread = bool(flags & CLONE_THREAD)
        if thread:
            self.tgid[child] = pid
        else:
            self._apply(self._make(call, pid, "clone", exit=child), out)
            self.tgid[child] = child
        for waiting in self.pending.pop(child, ()):
            self._dispatch(waiting, out)

    @staticmethod
    def _clone_flags(call: Call) -> int:
        for arg in call.args:
            if isinstance(arg, Struct) and "flags" in arg:
                return int_of(arg["flags"], CLONE_FLAGS)
            if isinstance(arg, str) and arg.startswith("flags="):
                return int_of(arg[6:], CLONE_FLAGS)
        return 0

    def _make(self, call: Call, pid: int, syscall: str, *,
              args: tuple[int, int, int, int] = (0, 0, 0, 0), exit: int | None = None,
              paths: tuple[PathItem, ...] = (), exe: str | None = None,
              argv: list[str] | None = None, sockaddr: SockAddr | None = None,
              fd_pair: tuple[int, int] | None = None) -> Syscall:
        self._serial += 1
        return Syscall(
            serial=self._serial, ts=call.ts, syscall=syscall, exit=exit, args=args, pid=pid,
            uid=self.uid, euid=self.euid, exe=exe, paths=paths, argv=argv, sockaddr=sockaddr,
            fd_pair=fd_pair,
        )

    def _record(self, call: Call, pid: int) -> Syscall | None:
        name, a = call.name, call.args
        if call.error is not None:
            if name == "connect" and call.error in CONNECT_PENDING:
                pass
            else:
                return None
        ret = call.ret
        try:
            if name in ("open", "openat", "creat", "openat2"):
                if name == "open":
                    dirfd, path, flags = AT_FDCWD, a[0], int_of(a[1], OPEN_FLAGS)
                elif name == "creat":
                    dirfd, path, flags = AT_FDCWD, a[0], O_WRONLY | O_CREAT | O_TRUNC
                else:
                    dirfd, path = _dirfd(a[0]), a[1]
                    how = a[2]
                    if isinstance(how, Struct):
                        how = how.get("flags", "0")
                    flags = int_of(how, OPEN_FLAGS)
                text = text_of(path)
                if text is None:
                    return None
                nametype = "CREATE" if flags & O_CREAT else "NORMAL"
                return self._make(call, pid, "openat", args=(dirfd, 0, flags, 0), exit=ret,
                                  paths=(PathItem(0, text, None, None, None, nametype),))
            if name == "close":
                return self._make(call, pid, "close", args=(int_of(a[0]), 0, 0, 0), exit=ret)
            if name in ("dup", "dup2", "dup3"):
                return self._make(call, pid, name, args=(int_of(a[0]), 0, 0, 0), exit=ret)
            if name == "fcntl":
                if len(a) >= 2 and str(a[1]).startswith("F_DUPFD"):
                    return self._make(call, pid, "dup", args=(int_of(a[0]), 0, 0, 0), exit=ret)
                return None
            if name in ("pipe", "pipe2"):
                fds = a[0]
                if not isinstance(fds, list) or len(fds) != 2:
                    return None
                return self._make(call, pid, name, exit=ret,
                                  fd_pair=(int_of(fds[0]), int_of(fds[1])))
            if name in ("execve", "execveat"):
                return self._exec(call, pid)
            if name == "exit_group":
                return self._make(call, pid, "exit_group", args=(int_of(a[0]), 0, 0, 0))
            if name in ("rename", "renameat", "renameat2"):
                if name == "rename":
                    old, new, args = a[0], a[1], (0, 0, 0, 0)
                else:
                    old, new, args = a[1], a[3], (_dirfd(a[0]), 0, _dirfd(a[2]), 0)
                return self._paths(call, pid, name, args, (old, "DELETE"), (new, "CREATE"))
            if name in ("unlink", "rmdir"):
                return self._paths(call, pid, name, (0, 0, 0, 0), (a[0], "DELETE"))
            if name == "unlinkat":
                return self._paths(call, pid, name, (_dirfd(a[0]), 0, 0, 0), (a[1], "DELETE"))
            if name in ("link", "symlink"):
                return self._paths(call, pid, name, (0, 0, 0, 0), (a[0], "NORMAL"),
                                   (a[1], "CREATE"))
            if name == "linkat":
                return self._paths(call, pid, name, (_dirfd(a[0]), 0, _dirfd(a[2]), 0),
                                   (a[1], "NORMAL"), (a[3], "CREATE"))
            if name == "symlinkat":
                return self._paths(call, pid, name, (0, _dirfd(a[1]), 0, 0), (a[0], "NORMAL"),
                                   (a[2], "CREATE"))
            if name == "truncate":
                return self._paths(call, pid, name, (0, 0, 0, 0), (a[0], "NORMAL"))
            if name == "ftruncate":
                return self._make(call, pid, name, args=(int_of(a[0]), 0, 0, 0), exit=ret)
            if name in ("connect", "bind", "accept", "accept4"):
                addr = _sockaddr(a[1]) if len(a) > 1 else None
                return self._make(call, pid, name, args=(int_of(a[0]), 0, 0, 0), exit=ret,
                                  sockaddr=addr)
            if name == "chdir":
                return self._paths(call, pid, name, (0, 0, 0, 0), (a[0], "NORMAL"))
            if name == "fchdir":
                return self._make(call, pid, name, args=(int_of(a[0]), 0, 0, 0), exit=ret)
        except (IndexError, ValueError):
            return None
        return None

    def _paths(self, call: Call, pid: int, name: str, args: tuple[int, int, int, int],
               *items: tuple[object, str]) -> Syscall | None:
        paths = []
        for i, (value, nametype) in enumerate(items):
            text = text_of(value)
            if text is None:
                return None
            paths.append(PathItem(i, text, None, None, None, nametype))
        return self._make(call, pid, name, args=args, exit=call.ret, paths=tuple(paths))

    def _exec(self, call: Call, pid: int) -> Syscall | None:
        a = call.args
        if call.name == "execveat":
            dirfd = _dirfd(a[0])
            path, argv_arg = text_of(a[1]), a[2]
        else:
            dirfd = AT_FDCWD
            path, argv_arg = text_of(a[0]), a[1]
        if path is None:
            return None
        argv = [text_of(x) or str(x) for x in argv_arg] if isinstance(argv_arg, list) else None
        proc = self.model.process(self.host, pid)
        program = self.model.resolve(proc, path, dirfd) if proc is not None else path
        return self._make(call, pid, "execve", exit=call.ret, exe=interpreter(program),
                          argv=argv, paths=(PathItem(0, program, None, None, None, "NORMAL"),))


def _dirfd(value: object) -> int:
    if value == "AT_FDCWD":
        return AT_FDCWD
    return int_of(value) & 0xFFFFFFFF


def _sockaddr(value: object) -> SockAddr | None:
    if not isinstance(value, Struct):
        return None
    family = str(value.get("sa_family", ""))
    if family == "AF_UNIX":
        path = value.get("sun_path")
        if isinstance(path, bytes):
            return SockAddr("unix", name_from_bytes(path), None)
        if isinstance(path, str) and path.startswith("@"):
            return SockAddr("unix", path.replace('"', ""), None)
        return SockAddr("unix", None, None)
    if family in ("AF_INET", "AF_INET6"):
        port = _call_arg(value.get("sin_port") or value.get("sin6_port"))
        address = None
        if family == "AF_INET":
            address = _call_arg(value.get("sin_addr"))
        else:
            for item in value.values():
                if isinstance(item, str) and item.startswith("inet_pton("):
                    parts = item[len("inet_pton("):].split(",")
                    if len(parts) >= 2:
                        address = parts[1].strip().strip('"')
        return SockAddr("inet" if family == "AF_INET" else "inet6", address,
                        int(port) if port and port.isdigit() else None)
    return None


def _call_arg(value: object) -> str | None:
    """``htons(80)`` -> ``80``, ``inet_addr("127.0.0.1")`` -> ``127.0.0.1``."""
    if not isinstance(value, str):
        return None
    start, end = value.find("("), value.rfind(")")
    if start < 0 or end < start:
        return value
    return value[start + 1:end].strip().strip('"')
