"""A model of the operating system, replayed from audited syscalls into normalized events.

Audit records name syscalls, not provenance: an ``openat`` returns a descriptor, a ``dup2``
moves it, a ``fork`` copies the table, an ``exit_group`` closes everything. This module keeps
the process table and per-process descriptor tables that turn those into events with
identity and time: which process (host, pid, start) read or wrote which file, pipe or socket,
and over which interval. The interval matters for lineage: a process may write a file it
opened long before, so an open is re-emitted when the descriptor closes (or the process
execs or exits), and the store keeps the first and last time of each edge.

The whole state is a msgspec struct, so a checkpoint can save it with the file offset and a
resumed import continues exactly where a clean one would have been.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

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
from .records import AuditEvent, SockAddr

SOURCE = "auditd"


#: Pseudo file systems: reading /proc or writing /dev/null is not data provenance.
IGNORED_PREFIXES = ("/proc/", "/sys/", "/dev/")
KEPT_PREFIXES = ("/dev/shm/",)

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
    procs: dict[str, dict[int, Proc]] = msgspec.field(default_factory=dict)  # host -> pid
    #: host -> child pid -> (parent pid, clone time): clone3 children not yet seen acting
    clones: dict[str, dict[int, tuple[int, int]]] = msgspec.field(default_factory=dict)


_state_encoder = msgspec.msgpack.Encoder()
_state_decoder = msgspec.msgpack.Decoder(ModelState)


class OSModel:
    """Turns parsed audit events (in log order) into normalized events."""

    def __init__(self, default_host: str, state: ModelState | None = None) -> None:
        self.default_host = default_host
        self.state = state or ModelState()
        self._handlers = {
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
        return _state_encoder.encode(self.state)

    @classmethod
    def restore(cls, default_host: str, data: bytes) -> OSModel:
        return cls(default_host, _state_decoder.decode(data))

    # -- entry point ---------------------------------------------------------------------

    def apply(self, ae: AuditEvent) -> list[Event]:
        """The normalized events one audited syscall stands for (failed calls: none)."""
        if not ae.success and not (ae.syscall == "connect" and ae.exit == -EINPROGRESS):
            return []  # failed calls moved no data; a non-blocking connect goes on
        handler = self._handlers.get(ae.syscall)
        if handler is None:
            return []
        out = _Out(ae.node or self.default_host, ae.serial)
        proc = self._process(out, ae)
        handler(out, ae, proc)
        return out.events

    # -- processes -----------------------------------------------------------------------

    def _table(self, host: str) -> dict[int, Proc]:
        table = self.state.procs.get(host)
        if table is None:
            table = self.state.procs[host] = {}
        return table

    def _process(self, out: _Out, ae: AuditEvent) -> Proc:
        """The acting process, created on first sight: as the child of a clone we saw, or
        (its parent known) as a child whose clone record comes later, or as one that began
        before observation (start 0)."""
        table = self._table(out.host)
        proc = table.get(ae.pid)
        if proc is not None:
            if ae.cwd:
                proc.cwd = ae.cwd  # the CWD record is the truth for this very syscall
            return proc
        clones = self.state.clones.get(out.host, {})
        pending = clones.pop(ae.pid, None)
        parent = table.get(pending[0] if pending else ae.ppid)
        if parent is not None:
            start = pending[1] if pending else ae.ts
            proc = self._spawn(out, parent, ae.pid, start)
        else:
            proc = Proc(pid=ae.pid, start=0, ppid=ae.ppid, exe=ae.exe,
                        argv=ae.proctitle, cwd=ae.cwd, uid=ae.uid, euid=ae.euid)
            self._remember(table, proc)
            out.emit(Kind.EXEC, ae.ts, proc, info=True,
                     file=FileRef(ae.exe) if ae.exe and ae.exe.startswith("/") else None)
        if ae.cwd:
            proc.cwd = ae.cwd
        return proc

    def _remember(self, table: dict[int, Proc], proc: Proc) -> None:
        if len(table) >= MAX_PROCESSES:
            del table[next(iter(table))]
        table[proc.pid] = proc

    def _spawn(self, out: _Out, parent: Proc, pid: int, start: int) -> Proc:
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

    def _fork(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        child_pid = ae.exit
        if child_pid is None or child_pid <= 0:
            return
        if ae.syscall == "clone" and ae.args[0] & CLONE_THREAD:
            return
        table = self._table(out.host)
        existing = table.get(child_pid)
        if existing is not None and existing.ppid == proc.pid and existing.start >= ae.ts - 10**9:
            return  # the child acted before its parent's clone record: already spawned
        if ae.syscall == "clone3":
            # clone3's flags are behind a pointer: a thread or a process? Wait until the
            # child acts under its own pid (threads never do: audit reports the tgid).
            clones = self.state.clones.setdefault(out.host, {})
            if len(clones) >= MAX_PENDING_CLONES:
                del clones[next(iter(clones))]
            clones[child_pid] = (proc.pid, ae.ts)
            return
        self._spawn(out, proc, child_pid, ae.ts)

    def _exec(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        # Descriptors above 2 mostly close at exec (O_CLOEXEC): their interval ends now.
        self._end_fds(out, ae.ts, proc, lambda fd: fd > 2)
        proc.exe = ae.exe or proc.exe
        proc.argv = ae.argv or ae.proctitle or proc.argv
        proc.uid, proc.euid = ae.uid, ae.euid
        program = None
        for item in ae.paths:
            if item.nametype == "NORMAL" and item.name:
                program = self._resolve(proc, item.name)
                break
        program = program or proc.exe
        out.emit(Kind.EXEC, ae.ts, proc, info=True,
                 file=FileRef(program) if program else None)
        if proc.exe and proc.exe != program and not _ignored(proc.exe):
            out.emit(Kind.READ, ae.ts, proc, file=FileRef(proc.exe))

    def _exit_group(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        self._end_fds(out, ae.ts, proc, lambda fd: True)
        code = ae.args[0] & 0xFF
        out.emit(Kind.EXIT, ae.ts, proc, exit_code=code)
        self._table(out.host).pop(proc.pid, None)

    # -- descriptors ---------------------------------------------------------------------

    def _emit_std(self, out: _Out, ts: int, proc: Proc, fd: int, entry: Fd) -> None:
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

    def _end(self, out: _Out, ts: int, proc: Proc, fd: int, entry: Fd) -> None:
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

    def _end_fds(self, out: _Out, ts: int, proc: Proc, which) -> None:
        for fd in [fd for fd in proc.fds if which(fd)]:
            self._end(out, ts, proc, fd, proc.fds.pop(fd))

    def _set_fd(self, proc: Proc, fd: int, entry: Fd) -> None:
        if fd not in proc.fds and len(proc.fds) >= MAX_FDS:
            return
        proc.fds[fd] = entry

    def _open(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        fd = ae.exit
        item = _target(ae)
        if item is None or fd is None or fd < 0:
            return
        if ae.syscall == "creat":
            flags = O_WRONLY | O_CREAT | O_TRUNC
        elif ae.syscall == "open":
            flags = ae.args[1]
        elif ae.syscall == "openat":
            flags = ae.args[2]
        else:  # openat2: flags sit in a struct behind a pointer; a CREATE item means write
            flags = O_WRONLY if item.nametype == "CREATE" else 0
        base = self._dirfd(proc, ae.args[0]) if ae.syscall in ("openat", "openat2") else None
        path = self._resolve(proc, item.name, base)
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
            out.emit(Kind.READ, ae.ts, proc, file=ref)
        if kind != "r":
            out.emit(Kind.WRITE, ae.ts, proc, file=ref)
        self._set_fd(proc, fd, Fd(kind, ref))

    def _close(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        entry = proc.fds.pop(ae.args[0] & 0xFFFFFFFF, None)
        if entry is not None:
            self._end(out, ae.ts, proc, ae.args[0], entry)

    def _dup(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        old = ae.args[0] & 0xFFFFFFFF
        new = ae.exit
        if new is None or new < 0 or new == old:
            return
        previous = proc.fds.pop(new, None)
        if previous is not None:
            self._end(out, ae.ts, proc, new, previous)
        entry = proc.fds.get(old)
        if entry is None:
            return
        if entry.inherited:
            entry = msgspec.structs.replace(entry, inherited=False)
        self._set_fd(proc, new, entry)
        if new <= 2:
            self._emit_std(out, ae.ts, proc, new, entry)

    def _pipe(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        if ae.fd_pair is None:
            return
        pipe_id = f"{ae.ts}.{ae.serial}"
        read_fd, write_fd = ae.fd_pair
        self._set_fd(proc, read_fd, Fd("pipe_r", pipe=pipe_id))
        self._set_fd(proc, write_fd, Fd("pipe_w", pipe=pipe_id))

    # -- names ---------------------------------------------------------------------------

    def _dirfd(self, proc: Proc, dirfd: int) -> str | None:
        if dirfd & 0xFFFFFFFF == AT_FDCWD:
            return None
        entry = proc.fds.get(dirfd & 0xFFFFFFFF)
        if entry is not None and entry.kind == "dir" and entry.file is not None:
            return entry.file.path
        return None

    def _resolve(self, proc: Proc, name: str, base: str | None = None) -> str:
        """Absolute, normalized path; relative names against the directory fd or cwd."""
        if not name.startswith("/"):
            name = posixpath.join(base or proc.cwd or "/", name)
        return posixpath.normpath(name) if "/." in name or "//" in name else name

    def _rename(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        deleted = [i for i in ae.paths if i.nametype == "DELETE" and i.name]
        created = [i for i in ae.paths if i.nametype == "CREATE" and i.name]
        if not deleted:
            return
        old_item = deleted[0]
        new_item = created[0] if created else (deleted[1] if len(deleted) > 1 else None)
        if new_item is None:
            return
        renameat = ae.syscall != "rename"
        old = self._resolve(proc, old_item.name,
                            self._dirfd(proc, ae.args[0]) if renameat else None)
        new = self._resolve(proc, new_item.name,
                            self._dirfd(proc, ae.args[2]) if renameat else None)
        if _ignored(old) and _ignored(new):
            return
        out.emit(Kind.RENAME, ae.ts, proc, file=FileRef(old, inode=old_item.inode),
                 dst=FileRef(new, inode=old_item.inode))

    def _unlink(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        for item in ae.paths:
            if item.nametype == "DELETE" and item.name:
                base = self._dirfd(proc, ae.args[0]) if ae.syscall == "unlinkat" else None
                path = self._resolve(proc, item.name, base)
                if not _ignored(path):
                    out.emit(Kind.UNLINK, ae.ts, proc, file=FileRef(path, inode=item.inode))
                return

    def _link(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        created = [i for i in ae.paths if i.nametype == "CREATE" and i.name]
        if not created:
            return
        at = ae.syscall.endswith("at")
        normal = [i for i in ae.paths if i.nametype == "NORMAL" and i.name]
        if not normal:
            return  # a symlink's target is a string the kernel does not resolve or log
        new_dirfd, old_dirfd = (ae.args[1], None) if ae.syscall == "symlinkat" else (
            ae.args[2], ae.args[0])
        new = self._resolve(proc, created[0].name, self._dirfd(proc, new_dirfd) if at else None)
        if ae.syscall.startswith("symlink"):
            old = self._resolve(proc, normal[0].name, posixpath.dirname(new))
        else:
            old = self._resolve(proc, normal[0].name,
                                self._dirfd(proc, old_dirfd) if at and old_dirfd is not None
                                else None)
        out.emit(Kind.LINK, ae.ts, proc, file=FileRef(old), dst=FileRef(new))

    def _truncate(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        for item in ae.paths:
            if item.name and item.nametype in ("NORMAL", "UNKNOWN"):
                path = self._resolve(proc, item.name)
                if not _ignored(path):
                    out.emit(Kind.WRITE, ae.ts, proc, file=FileRef(path, inode=item.inode))
                return

    def _ftruncate(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        entry = proc.fds.get(ae.args[0] & 0xFFFFFFFF)
        if entry is not None and entry.file is not None and entry.kind != "dir":
            out.emit(Kind.WRITE, ae.ts, proc, file=entry.file)

    # -- sockets -------------------------------------------------------------------------

    def _connect(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        peer = _endpoint(ae.sockaddr)
        if peer is None:
            return
        out.emit(Kind.CONNECT, ae.ts, proc, peer=peer)
        self._set_fd(proc, ae.args[0] & 0xFFFFFFFF, Fd("sock", peer=peer, sock="connect"))

    def _bind(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        peer = _endpoint(ae.sockaddr)
        if peer is None:
            return
        out.emit(Kind.BIND, ae.ts, proc, peer=peer)
        self._set_fd(proc, ae.args[0] & 0xFFFFFFFF, Fd("sock", peer=peer, sock="bind"))

    def _accept(self, out: _Out, ae: AuditEvent, proc: Proc) -> None:
        """The data flows through the listening endpoint (known from bind); the peer's
        ephemeral address says nothing stable."""
        listening = proc.fds.get(ae.args[0] & 0xFFFFFFFF)
        peer = listening.peer if listening is not None and listening.peer else None
        if peer is None:
            peer = _endpoint(ae.sockaddr)
            if peer is None or peer.family == "unix":
                return
        out.emit(Kind.ACCEPT, ae.ts, proc, peer=peer)
        if ae.exit is not None and ae.exit >= 0:
            self._set_fd(proc, ae.exit, Fd("sock", peer=peer, sock="accept"))


class _Out:
    """Collects the events of one audited syscall, numbering them for their seq."""

    __slots__ = ("host", "serial", "events")

    def __init__(self, host: str, serial: int) -> None:
        self.host = host
        self.serial = serial
        self.events: list[Event] = []

    def emit(self, kind: Kind, ts: int, proc: Proc, *, info: bool = False,
             file: FileRef | None = None, dst: FileRef | None = None,
             child: ProcessInfo | None = None, peer: Endpoint | None = None,
             pipe: str | None = None, exit_code: int | None = None) -> None:
        self.events.append(Event(
            v=SCHEMA_VERSION, source=SOURCE, host=self.host, ts=ts,
            seq=f"{self.serial}.{len(self.events)}", kind=kind, proc=_info(proc, full=info),
            file=file, dst=dst, child=child, peer=peer, pipe=pipe, exit_code=exit_code,
        ))


def _info(proc: Proc, *, full: bool) -> ProcessInfo:
    if not full:
        return ProcessInfo(pid=proc.pid, start=proc.start, ppid=proc.ppid)
    return ProcessInfo(pid=proc.pid, start=proc.start, ppid=proc.ppid, exe=proc.exe,
                       argv=proc.argv, cwd=proc.cwd, uid=proc.uid, euid=proc.euid)


def _ignored(path: str) -> bool:
    return path.startswith(IGNORED_PREFIXES) and not path.startswith(KEPT_PREFIXES)


def _target(ae: AuditEvent):
    """The PATH item an open refers to: the created or opened name, not its parent."""
    for item in reversed(ae.paths):
        if item.nametype != "PARENT" and item.name:
            return item
    return None


def _endpoint(addr: SockAddr | None) -> Endpoint | None:
    if addr is None or addr.address is None:
        return None
    if addr.family in ("inet", "inet6"):
        return Endpoint(addr.family, addr.address, addr.port)
    if addr.family == "unix" and addr.address:
        return Endpoint("unix", addr.address)
    return None


def normalize(events: Iterator[AuditEvent], host: str) -> Iterator[Event]:
    """Normalize a stream of parsed audit events with a fresh model."""
    model = OSModel(host)
    for ae in events:
        yield from model.apply(ae)
