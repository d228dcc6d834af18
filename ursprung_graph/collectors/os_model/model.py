"""A model of the operating system, replayed from syscalls into normalized events.

Syscalls name calls, not provenance: an ``openat`` returns a descriptor, a ``dup2`` moves it,
a ``fork`` copies the table, an ``exit_group`` closes everything. This module keeps the
process table and per-process descriptor tables that turn those into events with identity and
time: which process (host, pid, start) read or wrote which file, pipe or socket, and over
which interval. The interval matters for lineage: a process may write a file it opened long
before, so an open is re-emitted when the descriptor closes (or the process execs or exits),
and the store keeps the first and last time of each edge.

How a front end drives it (auditd, the strace tracer, eBPF):

* build one model per stream, ``OSModel(default_host, source=NAME)``;
* feed every completed syscall, in the order the calls happened per process, as a
  :class:`~.syscall.SyscallRecord` to :meth:`OSModel.apply`, which returns its events;
* optionally: :meth:`OSModel.adopt` a process known before its first call (a traced
  command's root), :meth:`OSModel.register` handlers for syscalls the model does not handle
  itself (the tracer's ``chdir``), and look up with :meth:`OSModel.process`,
  :meth:`OSModel.resolve`, :meth:`OSModel.directory`;
* checkpoint with :meth:`OSModel.snapshot` and :meth:`OSModel.restore` (the whole state is a
  msgspec struct, so a resumed import continues exactly where a clean one would have been).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable

import msgspec

from ...schema.event import (
    SCHEMA_VERSION,
    Endpoint,
    Event,
    FileRef,
    Kind,
    ProcessInfo,
)
from ..linux import (
    AT_FDCWD,
    CLONE_THREAD,
    EINPROGRESS,
    O_ACCMODE,
    O_CREAT,
    O_DIRECTORY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    S_IFDIR,
    S_IFMT,
)
from .syscall import PathItem, SockAddr, SyscallRecord

#: Pseudo file systems: reading /proc or writing /dev/null is not data provenance.
IGNORED_PREFIXES = ("/proc/", "/sys/", "/dev/")
KEPT_PREFIXES = ("/dev/shm/",)

#: The family of an endpoint that stands for a listening socket known only by its
#: descriptor (neither its bind nor its peers' addresses were seen).
LISTENING = "listening"
_PROC_FD = re.compile(r"/proc/(self|thread-self|[0-9]+)/fd/([0-9]+)/?$")

#: Processes whose state is kept at most; the oldest entries go first.
MAX_PROCESSES = 65536
MAX_FDS = 4096
MAX_PENDING_CLONES = 4096


class Fd(msgspec.Struct, array_like=True):
    """What a descriptor refers to. kind: r, w, rw (files), dir, pipe_r, pipe_w, sock."""

    kind: str
    file: FileRef | None = None
    pipe: str | None = None
    peer: Endpoint | None = None
    sock: str | None = None  # how the socket was set up: connect, accept, bind
    inherited: bool = False  # copied at fork and not used since: says nothing by itself


class Proc(msgspec.Struct):
    """A process as the model knows it: identity (pid, start), program and descriptors."""

    pid: int
    start: int
    ppid: int = 0
    exe: str | None = None
    argv: list[str] | None = None
    cwd: str | None = None
    uid: int | None = None
    euid: int | None = None
    fds: dict[int, Fd] = msgspec.field(default_factory=dict)


class ModelState(msgspec.Struct):
    """The model's whole state: what a checkpoint saves."""

    procs: dict[str, dict[int, Proc]] = msgspec.field(default_factory=dict)  # host -> pid
    #: host -> child pid -> (parent pid, clone time): clone3 children not yet seen acting
    clones: dict[str, dict[int, tuple[int, int]]] = msgspec.field(default_factory=dict)


_state_encoder = msgspec.msgpack.Encoder()
_state_decoder = msgspec.msgpack.Decoder(ModelState)


#: A syscall's handler: given where its events go, the call and the acting process.
Handler = Callable[["Emitter", SyscallRecord, Proc], None]


class OSModel:
    """Turns syscalls (in the order they happened) into normalized events of ``source``."""

    def __init__(self, default_host: str, state: ModelState | None = None, *,
                 source: str = "os_model") -> None:
        self.default_host = default_host
        self.source = source
        self.state = state or ModelState()
        self._handlers: dict[str, Handler] = {
            "execve": self._exec, "execveat": self._exec,
            "fork": self._fork, "vfork": self._fork, "clone": self._fork, "clone3": self._fork,
            "exit_group": self._exit_group,
            "open": self._open, "openat": self._open, "openat2": self._open, "creat": self._open,
            "close": self._close,
            "rename": self._rename, "renameat": self._rename, "renameat2": self._rename,
            "unlink": self._unlink, "unlinkat": self._unlink, "rmdir": self._unlink,
            "link": self._link, "linkat": self._link,
            "symlink": self._link, "symlinkat": self._link,
            "truncate": self._truncate, "ftruncate": self._ftruncate,
            "connect": self._connect, "accept": self._accept, "accept4": self._accept,
            "bind": self._bind,
            "pipe": self._pipe, "pipe2": self._pipe,
            "dup": self._dup, "dup2": self._dup, "dup3": self._dup,
        }

    # -- checkpointing -------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The state as bytes, for :meth:`restore`."""
        return _state_encoder.encode(self.state)

    @classmethod
    def restore(cls, default_host: str, data: bytes, *, source: str = "os_model") -> OSModel:
        """A model continuing from a :meth:`snapshot`."""
        return cls(default_host, _state_decoder.decode(data), source=source)

    # -- entry point ---------------------------------------------------------------------

    def apply(self, sc: SyscallRecord) -> list[Event]:
        """The normalized events one syscall stands for (failed calls: none)."""
        if not sc.success and not (sc.syscall == "connect" and sc.exit == -EINPROGRESS):
            return []  # failed calls moved no data; a non-blocking connect goes on
        handler = self._handlers.get(sc.syscall)
        if handler is None:
            return []
        out = Emitter(sc.node or self.default_host, sc.serial, self.source)
        proc = self._process(out, sc)
        handler(out, sc, proc)
        return out.events

    # -- public hooks --------------------------------------------------------------------

    @property
    def handled(self) -> frozenset[str]:
        """The syscalls :meth:`apply` acts on (all others give no events)."""
        return frozenset(self._handlers)

    def register(self, names: Iterable[str], handler: Handler) -> None:
        """Handle the syscalls ``names`` with ``handler`` (called after the acting process
        is found or created, for successful calls only)."""
        for name in names:
            self._handlers[name] = handler

    def process(self, host: str, pid: int) -> Proc | None:
        """The live process ``pid`` of ``host``, if the model knows it."""
        table = self.state.procs.get(host)
        return table.get(pid) if table is not None else None

    def adopt(self, host: str, proc: Proc) -> None:
        """Know ``proc`` from now on without an event: a process whose start the front end
        knows though it never saw its creation (the root of a traced command)."""
        self._remember(self._table(host), proc)

    def directory(self, proc: Proc, dirfd: int) -> str | None:
        """The directory descriptor ``dirfd`` of ``proc`` names (None: ``AT_FDCWD``, or not
        a directory the model knows)."""
        if dirfd & 0xFFFFFFFF == AT_FDCWD:
            return None
        entry = proc.fds.get(dirfd & 0xFFFFFFFF)
        if entry is not None and entry.kind == "dir" and entry.file is not None:
            return entry.file.path
        return None

    def resolve(self, proc: Proc, name: str, dirfd: int = AT_FDCWD) -> str:
        """``name`` as an absolute, normalized path: a relative name against the directory
        ``dirfd`` names, else against the working directory of ``proc``."""
        return _join(proc, name, self.directory(proc, dirfd))

    # -- processes -----------------------------------------------------------------------

    def _table(self, host: str) -> dict[int, Proc]:
        table = self.state.procs.get(host)
        if table is None:
            table = self.state.procs[host] = {}
        return table

    def _process(self, out: Emitter, sc: SyscallRecord) -> Proc:
        """The acting process, created on first sight: as the child of a clone we saw, or
        (its parent known) as a child whose clone record comes later, or as one that began
        before observation (start 0)."""
        table = self._table(out.host)
        proc = table.get(sc.pid)
        if proc is not None:
            if sc.cwd:
                proc.cwd = sc.cwd  # the CWD record is the truth for this very syscall
            return proc
        clones = self.state.clones.get(out.host, {})
        pending = clones.pop(sc.pid, None)
        parent = table.get(pending[0] if pending else sc.ppid)
        if parent is not None:
            start = pending[1] if pending else sc.ts
            proc = self._spawn(out, parent, sc.pid, start)
        else:
            proc = Proc(pid=sc.pid, start=0, ppid=sc.ppid, exe=sc.exe,
                        argv=sc.proctitle, cwd=sc.cwd, uid=sc.uid, euid=sc.euid)
            self._remember(table, proc)
            out.emit(Kind.EXEC, sc.ts, proc, info=True,
                     file=FileRef(sc.exe) if sc.exe and sc.exe.startswith("/") else None)
        if sc.cwd:
            proc.cwd = sc.cwd
        return proc

    def _remember(self, table: dict[int, Proc], proc: Proc) -> None:
        if len(table) >= MAX_PROCESSES:
            del table[next(iter(table))]
        table[proc.pid] = proc

    def _spawn(self, out: Emitter, parent: Proc, pid: int, start: int) -> Proc:
        """A new process: inherits the parent's program, cwd and descriptors."""
        fds = {fd: entry if fd <= 2 or entry.inherited
               else msgspec.structs.replace(entry, inherited=True)
               for fd, entry in parent.fds.items()}
        child = Proc(
            pid=pid, start=start, ppid=parent.pid, exe=parent.exe, argv=parent.argv,
            cwd=parent.cwd, uid=parent.uid, euid=parent.euid, fds=fds,
        )
        self._remember(self._table(out.host), child)
        out.emit(Kind.FORK, start, parent, child=_info(child, full=True))
        for fd, entry in child.fds.items():
            if fd <= 2:
                self._emit_std(out, start, child, fd, entry)
        return child

    def _fork(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        child_pid = sc.exit
        if child_pid is None or child_pid <= 0:
            return
        if sc.syscall == "clone" and sc.args[0] & CLONE_THREAD:
            return
        table = self._table(out.host)
        existing = table.get(child_pid)
        if existing is not None and existing.ppid == proc.pid:
            if existing.start >= sc.ts - 10**9:
                return  # the child acted before its parent's clone record: already spawned
            if existing.start == 0:
                # The child acted (and exec'd) before the clone record arrived, while its
                # parent was not yet known: it is this clone's child, already a node. Link
                # it; a second process would split one process in two.
                out.emit(Kind.FORK, sc.ts, proc, child=_info(existing, full=True))
                return
        if sc.syscall == "clone3":
            # clone3's flags are behind a pointer: a thread or a process? Wait until the
            # child acts under its own pid (threads never do: records carry the tgid as pid).
            clones = self.state.clones.setdefault(out.host, {})
            if len(clones) >= MAX_PENDING_CLONES:
                del clones[next(iter(clones))]
            clones[child_pid] = (proc.pid, sc.ts)
            return
        self._spawn(out, proc, child_pid, sc.ts)

    def _exec(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        # Descriptors above 2 mostly close at exec (O_CLOEXEC): their interval ends now.
        self._end_fds(out, sc.ts, proc, lambda fd: fd > 2)
        proc.exe = sc.exe or proc.exe
        proc.argv = sc.argv or sc.proctitle or proc.argv
        proc.uid, proc.euid = sc.uid, sc.euid
        program = None
        for item in sc.paths:
            if item.nametype == "NORMAL" and item.name:
                program = _join(proc, item.name)
                break
        program = program or proc.exe
        out.emit(Kind.EXEC, sc.ts, proc, info=True,
                 file=FileRef(program) if program else None)
        if proc.exe and proc.exe != program and not _ignored(proc.exe):
            out.emit(Kind.READ, sc.ts, proc, file=FileRef(proc.exe))

    def _exit_group(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        self._end_fds(out, sc.ts, proc, lambda fd: True)
        code = sc.args[0] & 0xFF
        out.emit(Kind.EXIT, sc.ts, proc, exit_code=code)
        self._table(out.host).pop(proc.pid, None)

    # -- descriptors ---------------------------------------------------------------------

    def _emit_std(self, out: Emitter, ts: int, proc: Proc, fd: int, entry: Fd) -> None:
        """Standard streams carry data: stdin from a pipe or file, stdout/stderr to one."""
        if entry.kind == "pipe_r" and fd == 0:
            out.emit(Kind.PIPE_READ, ts, proc, pipe=entry.pipe)
        elif entry.kind == "pipe_w" and fd in (1, 2):
            out.emit(Kind.PIPE_WRITE, ts, proc, pipe=entry.pipe)
        elif entry.file is not None:
            if fd == 0 and entry.kind in ("r", "rw"):
                out.emit(Kind.READ, ts, proc, file=entry.file)
            elif fd in (1, 2) and entry.kind in ("w", "rw"):
                out.emit(Kind.WRITE, ts, proc, file=entry.file)

    def _end(self, out: Emitter, ts: int, proc: Proc, fd: int, entry: Fd) -> None:
        """A descriptor goes away: the interval of what flowed through it ends now. One
        merely inherited (a shell's script on fd 255) goes silently, or every child would
        seem to read its parent's files."""
        if entry.inherited:
            return
        if entry.kind in ("r", "rw") and entry.file is not None:
            out.emit(Kind.READ, ts, proc, file=entry.file)
        if entry.kind in ("w", "rw") and entry.file is not None:
            out.emit(Kind.WRITE, ts, proc, file=entry.file)
        elif entry.kind == "sock" and entry.peer is not None:
            kind = {"connect": Kind.CONNECT, "accept": Kind.ACCEPT}.get(entry.sock or "")
            if kind is not None:
                out.emit(kind, ts, proc, peer=entry.peer)
        elif entry.kind in ("pipe_r", "pipe_w"):
            self._emit_std(out, ts, proc, fd, entry)

    def _end_fds(self, out: Emitter, ts: int, proc: Proc, which: Callable[[int], bool]) -> None:
        for fd in [fd for fd in proc.fds if which(fd)]:
            self._end(out, ts, proc, fd, proc.fds.pop(fd))

    def _set_fd(self, proc: Proc, fd: int, entry: Fd) -> None:
        if fd not in proc.fds and len(proc.fds) >= MAX_FDS:
            return
        proc.fds[fd] = entry

    def _open(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        fd = sc.exit
        target = _target(sc)
        if target is None or fd is None or fd < 0:
            return
        name, item = target
        if sc.syscall == "creat":
            flags = O_WRONLY | O_CREAT | O_TRUNC
        elif sc.syscall == "open":
            flags = sc.args[1]
        elif sc.syscall == "openat":
            flags = sc.args[2]
        else:  # openat2: flags sit in a struct behind a pointer; a CREATE item means write
            flags = O_WRONLY if item.nametype == "CREATE" else 0
        base = self.directory(proc, sc.args[0]) if sc.syscall in ("openat", "openat2") else None
        path = _join(proc, name, base)
        if flags & O_DIRECTORY or (item.mode is not None and item.mode & S_IFMT == S_IFDIR):
            self._set_fd(proc, fd, Fd("dir", FileRef(path)))
            return
        if _ignored(path):
            proc.fds.pop(fd, None)
            return
        ref = FileRef(path, inode=item.inode, dev=item.dev)
        mode = flags & O_ACCMODE
        kind = "rw" if mode == O_RDWR else "w" if mode == O_WRONLY else "r"
        if kind != "w":
            out.emit(Kind.READ, sc.ts, proc, file=ref)
        if kind != "r" or item.nametype == "CREATE":
            # a file created by an O_RDONLY|O_CREAT open is still made by its creator
            out.emit(Kind.WRITE, sc.ts, proc, file=ref)
        self._set_fd(proc, fd, Fd(kind, ref))

    def _close(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        entry = proc.fds.pop(sc.args[0] & 0xFFFFFFFF, None)
        if entry is not None:
            self._end(out, sc.ts, proc, sc.args[0], entry)

    def _dup(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        old = sc.args[0] & 0xFFFFFFFF
        new = sc.exit
        if new is None or new < 0 or new == old:
            return
        previous = proc.fds.pop(new, None)
        if previous is not None:
            self._end(out, sc.ts, proc, new, previous)
        entry = proc.fds.get(old)
        if entry is None:
            return
        if entry.inherited:
            entry = msgspec.structs.replace(entry, inherited=False)
        self._set_fd(proc, new, entry)
        if new <= 2:
            self._emit_std(out, sc.ts, proc, new, entry)

    def _pipe(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        if sc.fd_pair is None:
            return
        pipe_id = f"{sc.ts}.{sc.serial}"
        read_fd, write_fd = sc.fd_pair
        self._set_fd(proc, read_fd, Fd("pipe_r", pipe=pipe_id))
        self._set_fd(proc, write_fd, Fd("pipe_w", pipe=pipe_id))

    # -- names ---------------------------------------------------------------------------

    def _rename(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        deleted = [(i.name, i) for i in sc.paths if i.nametype == "DELETE" and i.name]
        created = [(i.name, i) for i in sc.paths if i.nametype == "CREATE" and i.name]
        if not deleted:
            return
        old_name, old_item = deleted[0]
        new = created[0] if created else (deleted[1] if len(deleted) > 1 else None)
        if new is None:
            return
        renameat = sc.syscall != "rename"
        old = _join(proc, old_name, self.directory(proc, sc.args[0]) if renameat else None)
        new_path = _join(proc, new[0], self.directory(proc, sc.args[2]) if renameat else None)
        if _ignored(old) and _ignored(new_path):
            return
        out.emit(Kind.RENAME, sc.ts, proc, file=FileRef(old, inode=old_item.inode),
                 dst=FileRef(new_path, inode=old_item.inode))

    def _unlink(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        for item in sc.paths:
            if item.nametype == "DELETE" and item.name:
                base = self.directory(proc, sc.args[0]) if sc.syscall == "unlinkat" else None
                path = _join(proc, item.name, base)
                if not _ignored(path):
                    out.emit(Kind.UNLINK, sc.ts, proc, file=FileRef(path, inode=item.inode))
                return

    def _link(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        created = [i.name for i in sc.paths if i.nametype == "CREATE" and i.name]
        if not created:
            return
        at = sc.syscall.endswith("at")
        symlink = sc.syscall.startswith("symlink")
        # link: the existing name is NORMAL; symlink: the kernel logs the target string, not
        # resolved, as an UNKNOWN item (no inode)
        sources = ("NORMAL", "UNKNOWN") if symlink else ("NORMAL",)
        normal = [i.name for i in sc.paths if i.nametype in sources and i.name]
        if not normal:
            return
        new_dirfd, old_dirfd = (sc.args[1], None) if sc.syscall == "symlinkat" else (
            sc.args[2], sc.args[0])
        new = _join(proc, created[0], self.directory(proc, new_dirfd) if at else None)
        if symlink:  # a relative target is relative to the link's directory
            old = _join(proc, normal[0], posixpath.dirname(new))
        else:
            old = _join(proc, normal[0],
                        self.directory(proc, old_dirfd) if at and old_dirfd is not None
                        else None)
        out.emit(Kind.LINK, sc.ts, proc, file=FileRef(old), dst=FileRef(new))

    def _truncate(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        for item in sc.paths:
            if item.name and item.nametype in ("NORMAL", "UNKNOWN"):
                path = _join(proc, item.name)
                if not _ignored(path):
                    out.emit(Kind.WRITE, sc.ts, proc, file=FileRef(path, inode=item.inode))
                return

    def _ftruncate(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        entry = proc.fds.get(sc.args[0] & 0xFFFFFFFF)
        if entry is not None and entry.file is not None and entry.kind != "dir":
            out.emit(Kind.WRITE, sc.ts, proc, file=entry.file)

    # -- sockets -------------------------------------------------------------------------

    def _connect(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        peer = _endpoint(sc.sockaddr)
        if peer is None:
            return
        out.emit(Kind.CONNECT, sc.ts, proc, peer=peer)
        self._set_fd(proc, sc.args[0] & 0xFFFFFFFF, Fd("sock", peer=peer, sock="connect"))

    def _bind(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        peer = _endpoint(sc.sockaddr)
        if peer is None:
            return
        out.emit(Kind.BIND, sc.ts, proc, peer=peer)
        self._set_fd(proc, sc.args[0] & 0xFFFFFFFF, Fd("sock", peer=peer, sock="bind"))

    def _accept(self, out: Emitter, sc: SyscallRecord, proc: Proc) -> None:
        """The data flows through the listening endpoint (known from bind); the peer's
        ephemeral address says nothing stable."""
        fd = sc.args[0] & 0xFFFFFFFF
        listening = proc.fds.get(fd)
        peer = listening.peer if listening is not None and listening.peer else None
        if peer is None:
            peer = _endpoint(sc.sockaddr)
            if peer is None or peer.family == "unix":
                # Neither the bind nor the peer is known (a daemon started before
                # observation, accept(fd, NULL, NULL)): the listening socket is still one
                # thing, named by the descriptor it was first seen on.
                peer = Endpoint(LISTENING, f"{proc.pid}.{proc.start}.{fd}")
                self._set_fd(proc, fd, Fd("sock", peer=peer, sock="bind"))
        out.emit(Kind.ACCEPT, sc.ts, proc, peer=peer)
        if sc.exit is not None and sc.exit >= 0:
            self._set_fd(proc, sc.exit, Fd("sock", peer=peer, sock="accept"))


class Emitter:
    """Collects the events of one syscall, numbering them for their seq."""

    __slots__ = ("host", "serial", "source", "events")

    def __init__(self, host: str, serial: int, source: str) -> None:
        self.host = host
        self.serial = serial
        self.source = source
        self.events: list[Event] = []

    def emit(self, kind: Kind, ts: int, proc: Proc, *, info: bool = False,
             file: FileRef | None = None, dst: FileRef | None = None,
             child: ProcessInfo | None = None, peer: Endpoint | None = None,
             pipe: str | None = None, exit_code: int | None = None) -> None:
        self.events.append(Event(
            v=SCHEMA_VERSION, source=self.source, host=self.host, ts=ts,
            seq=f"{self.serial}.{len(self.events)}", kind=kind, proc=_info(proc, full=info),
            file=file, dst=dst, child=child, peer=peer, pipe=pipe, exit_code=exit_code,
        ))


def _join(proc: Proc, name: str, base: str | None = None) -> str:
    """Absolute, normalized path; relative names against ``base`` or the cwd; a name of
    one of the process's own descriptors (``/proc/self/fd/N``) is the file open there."""
    if name.startswith("/proc/"):
        entry = _own_fd(proc, name)
        if entry is not None and entry.file is not None:
            return entry.file.path
    if not name.startswith("/"):
        name = posixpath.join(base or proc.cwd or "/", name)
    return posixpath.normpath(name) if "/." in name or "//" in name else name


def _own_fd(proc: Proc, name: str) -> Fd | None:
    """The descriptor ``/proc/self/fd/N``, ``/proc/thread-self/fd/N`` or ``/proc/PID/fd/N``
    (PID: the process itself) names, if the model knows it."""
    m = _PROC_FD.match(name)
    if m is None or m[1] not in ("self", "thread-self", str(proc.pid)):
        return None
    return proc.fds.get(int(m[2]))


def _info(proc: Proc, *, full: bool) -> ProcessInfo:
    if not full:
        return ProcessInfo(pid=proc.pid, start=proc.start, ppid=proc.ppid)
    return ProcessInfo(pid=proc.pid, start=proc.start, ppid=proc.ppid, exe=proc.exe,
                       argv=proc.argv, cwd=proc.cwd, uid=proc.uid, euid=proc.euid)


def _ignored(path: str) -> bool:
    return path.startswith(IGNORED_PREFIXES) and not path.startswith(KEPT_PREFIXES)


def _target(sc: SyscallRecord) -> tuple[str, PathItem] | None:
    """The name an open refers to (and its item): the created or opened name, not its
    parent."""
    for item in reversed(sc.paths):
        if item.nametype != "PARENT" and item.name:
            return item.name, item
    return None


def _endpoint(addr: SockAddr | None) -> Endpoint | None:
    if addr is None or addr.address is None:
        return None
    if addr.family in ("inet", "inet6"):
        return Endpoint(addr.family, addr.address, addr.port)
    if addr.family == "unix" and addr.address:
        return Endpoint("unix", addr.address)
    return None

