"""The OS model: audited syscalls -> normalized events, on hand-built syscall events."""

from __future__ import annotations

from ursprung_graph.collectors.auditd.records import AuditEvent, PathItem, SockAddr
from ursprung_graph.collectors.os_model import OSModel
from ursprung_graph.schema.event import Event, Kind

S = 10**9
AT_FDCWD = 0xFFFFFF9C
O_WRONLY_CREAT_TRUNC = 0o1101


class Log:
    """Builds AuditEvents with increasing serials and times."""

    def __init__(self) -> None:
        self.serial = 0

    def ev(self, pid: int, ppid: int, syscall: str, *, exit: int = 0,
           args: tuple[int, int, int, int] = (0, 0, 0, 0), paths: list[PathItem] | None = None,
           argv: list[str] | None = None, exe: str = "/usr/bin/bash", cwd: str = "/w",
           sockaddr: SockAddr | None = None, fd_pair: tuple[int, int] | None = None,
           success: bool = True) -> AuditEvent:
        self.serial += 1
        return AuditEvent(
            node=None, serial=self.serial, ts=self.serial * S, syscall=syscall,
            success=success, exit=exit, args=args, pid=pid, ppid=ppid, uid=0, euid=0, gid=0,
            auid=0, comm=None, exe=exe, key="ursprung", cwd=cwd, paths=paths or [],
            argv=argv, proctitle=None, sockaddr=sockaddr, fd_pair=fd_pair, records=3, offset=0,
        )


def path(name: str, nametype: str = "NORMAL", item: int = 0) -> PathItem:
    return PathItem(item=item, name=name, inode=1, dev="fd:01", mode=0o100644, nametype=nametype)


def run(events: list[AuditEvent], model: OSModel | None = None) -> list[Event]:
    model = model or OSModel("h")
    out: list[Event] = []
    for ae in events:
        out.extend(model.apply(ae))
    return out


def shell_pipeline(log: Log) -> list[AuditEvent]:
    """bash: cat a.txt | sort > out.txt, with the child of sort acting before its clone."""
    return [
        log.ev(10, 1, "pipe2", fd_pair=(3, 4)),
        log.ev(10, 1, "clone", exit=11, args=(0x1200011, 0, 0, 0)),
        log.ev(11, 10, "dup2", exit=1, args=(4, 1, 0, 0)),
        log.ev(11, 10, "close", args=(3, 0, 0, 0)),
        log.ev(11, 10, "close", args=(4, 0, 0, 0)),
        log.ev(11, 10, "execve", argv=["cat", "a.txt"], exe="/usr/bin/cat",
               paths=[path("/usr/bin/cat"), path("/lib64/ld-linux-x86-64.so.2", item=1)]),
        log.ev(12, 10, "dup2", exit=0, args=(3, 0, 0, 0)),       # before the clone record
        log.ev(10, 1, "clone", exit=12, args=(0x1200011, 0, 0, 0)),
        log.ev(11, 10, "openat", exit=3, args=(AT_FDCWD, 0, 0, 0), exe="/usr/bin/cat",
               paths=[path("a.txt")]),
        log.ev(12, 10, "openat", exit=5, args=(AT_FDCWD, 0, O_WRONLY_CREAT_TRUNC, 0),
               paths=[path("/w/", "PARENT"), path("out.txt", "CREATE", 1)]),
        log.ev(12, 10, "dup2", exit=1, args=(5, 1, 0, 0)),
        log.ev(12, 10, "close", args=(5, 0, 0, 0)),
        log.ev(12, 10, "execve", argv=["sort"], exe="/usr/bin/sort",
               paths=[path("/usr/bin/sort")]),
        log.ev(11, 10, "exit_group", exe="/usr/bin/cat"),
        log.ev(12, 10, "exit_group", exe="/usr/bin/sort"),
        log.ev(10, 1, "close", args=(3, 0, 0, 0)),
        log.ev(10, 1, "close", args=(4, 0, 0, 0)),
    ]


def facts(events: list[Event]) -> set[tuple]:
    out = set()
    for e in events:
        obj = e.file.path if e.file else e.pipe if e.pipe else e.child.pid if e.child else None
        out.add((e.proc.pid, e.kind.value, obj))
    return out


def test_shell_pipe_connects_writer_and_reader() -> None:
    events = run(shell_pipeline(Log()))
    f = facts(events)
    pipes = {e.pipe for e in events if e.pipe}
    assert len(pipes) == 1
    pipe = pipes.pop()
    assert (11, "pipe_write", pipe) in f
    assert (12, "pipe_read", pipe) in f
    assert (11, "read", "/w/a.txt") in f
    assert (12, "write", "/w/out.txt") in f
    assert (10, "fork", 11) in f and (10, "fork", 12) in f
    # the shell created the pipe but neither reads nor writes it
    assert (10, "pipe_read", pipe) not in f and (10, "pipe_write", pipe) not in f
    # sort was forked once, even though it acted before its parent's clone record
    assert sum(1 for e in events if e.kind is Kind.FORK and e.child.pid == 12) == 1


def test_write_interval_extends_to_exit() -> None:
    events = run(shell_pipeline(Log()))
    writes = [e.ts for e in events if e.kind is Kind.WRITE and e.file.path == "/w/out.txt"]
    exit_ts = next(e.ts for e in events if e.kind is Kind.EXIT and e.proc.pid == 12)
    assert min(writes) < exit_ts and max(writes) == exit_ts
    reads = [e.ts for e in events if e.kind is Kind.READ and e.file.path == "/w/a.txt"]
    cat_exit = next(e.ts for e in events if e.kind is Kind.EXIT and e.proc.pid == 11)
    assert max(reads) == cat_exit


def test_children_get_start_times_and_programs() -> None:
    events = run(shell_pipeline(Log()))
    execs = {e.proc.pid: e for e in events if e.kind is Kind.EXEC and e.proc.pid in (11, 12)}
    assert execs[11].proc.argv == ["cat", "a.txt"] and execs[11].file.path == "/usr/bin/cat"
    assert execs[11].proc.start > 0 and execs[12].proc.start > 0
    assert {e.proc.start for e in events if e.proc.pid == 10} == {0}   # before capture


def test_checkpoint_resume_gives_the_same_events() -> None:
    audit = shell_pipeline(Log())
    clean = run(audit)
    for cut in range(len(audit)):
        first = OSModel("h")
        head = run(audit[:cut], first)
        resumed = OSModel.restore("h", first.snapshot())
        assert head + run(audit[cut:], resumed) == clean, cut


def test_failed_calls_and_threads_make_nothing() -> None:
    log = Log()
    events = run([
        log.ev(20, 1, "openat", exit=-2, success=False, paths=[path("/nope")]),
        log.ev(20, 1, "clone", exit=21, args=(0x10000 | 0x100, 0, 0, 0)),      # CLONE_THREAD
        log.ev(20, 1, "clone3", exit=22),
        log.ev(20, 1, "exit_group"),
    ])
    assert not any(e.kind is Kind.FORK for e in events)
    assert not any(e.file and e.file.path == "/nope" for e in events)


def test_clone3_child_becomes_a_process_when_it_acts() -> None:
    log = Log()
    events = run([
        log.ev(20, 1, "execve", argv=["python3"], paths=[path("/usr/bin/python3")]),
        log.ev(20, 1, "clone3", exit=22),
        log.ev(22, 20, "execve", argv=["ls"], paths=[path("/usr/bin/ls")]),
    ])
    fork = [e for e in events if e.kind is Kind.FORK]
    assert len(fork) == 1 and fork[0].child.pid == 22
    assert fork[0].child.start == 2 * S


def test_names_resolve_against_cwd_and_dirfd() -> None:
    log = Log()
    events = run([
        log.ev(30, 1, "openat", exit=7, args=(AT_FDCWD, 0o200000, 0, 0),
               paths=[PathItem(0, "/data/in", 5, "fd:01", 0o40755, "NORMAL")]),
        log.ev(30, 1, "openat", exit=8, args=(7, 0, 0, 0), paths=[path("x/../y.csv")]),
        log.ev(30, 1, "openat", exit=9, cwd="/home/u", args=(AT_FDCWD, 0, 0, 0),
               paths=[path("./z.csv")]),
        log.ev(30, 1, "rename", cwd="/home/u", paths=[
            path("/home/u/", "PARENT"), path("/home/u/", "PARENT", 1),
            path("tmp.out", "DELETE", 2), path("final.out", "CREATE", 3)]),
        log.ev(30, 1, "openat", exit=10, args=(AT_FDCWD, 0, 0, 0), paths=[path("/proc/self/maps")]),
    ])
    reads = {e.file.path for e in events if e.kind is Kind.READ}
    assert reads >= {"/data/in/y.csv", "/home/u/z.csv"}
    assert "/data/in" not in reads and "/proc/self/maps" not in reads
    rename = next(e for e in events if e.kind is Kind.RENAME)
    assert (rename.file.path, rename.dst.path) == ("/home/u/tmp.out", "/home/u/final.out")


def test_accept_uses_the_bound_endpoint() -> None:
    log = Log()
    events = run([
        log.ev(40, 1, "bind", args=(3, 0, 0, 0), sockaddr=SockAddr("inet", "0.0.0.0", 8080)),
        log.ev(40, 1, "accept4", exit=4, args=(3, 0, 0, 0),
               sockaddr=SockAddr("inet", "127.0.0.1", 51234)),
        log.ev(41, 1, "connect", args=(3, 0, 0, 0), sockaddr=SockAddr("inet", "127.0.0.1", 8080)),
        log.ev(40, 1, "close", args=(4, 0, 0, 0)),
    ])
    accepts = [e for e in events if e.kind is Kind.ACCEPT]
    assert {e.peer.port for e in accepts} == {8080}
    assert len(accepts) == 2  # at accept and again when the connection closes


def test_inherited_descriptors_do_not_make_children_readers() -> None:
    """bash keeps its script open on fd 255; children that exec do not read it."""
    log = Log()
    events = run([
        log.ev(50, 1, "openat", exit=255, args=(AT_FDCWD, 0, 0, 0), paths=[path("run.sh")]),
        log.ev(50, 1, "clone", exit=51, args=(0x1200011, 0, 0, 0)),
        log.ev(51, 50, "execve", argv=["ls"], paths=[path("/usr/bin/ls")]),
        log.ev(51, 50, "exit_group"),
        log.ev(50, 1, "clone", exit=52, args=(0x1200011, 0, 0, 0)),
        log.ev(52, 50, "dup2", exit=0, args=(255, 0, 0, 0)),  # used: stdin from the script
        log.ev(52, 50, "exit_group"),
        log.ev(50, 1, "exit_group"),
    ])
    readers = {e.proc.pid for e in events if e.kind is Kind.READ and e.file.path == "/w/run.sh"}
    assert readers == {50, 52}
