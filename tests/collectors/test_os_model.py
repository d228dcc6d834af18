"""The shared OS model driven only through its public surface, as a new front end would."""

from __future__ import annotations

from ursprung_graph.collectors.auditd.records import AuditEvent
from ursprung_graph.collectors.linux import AT_FDCWD, O_CREAT, O_DIRECTORY, O_WRONLY
from ursprung_graph.collectors.os_model import (
    Emitter,
    OSModel,
    PathItem,
    Proc,
    Syscall,
    SyscallRecord,
)
from ursprung_graph.collectors.trace.convert import TraceModel
from ursprung_graph.collectors.trace.launch import TRACED_SYSCALLS
from ursprung_graph.schema.event import Kind

S = 10**9


def name(text: str, nametype: str = "NORMAL") -> tuple[PathItem, ...]:
    return (PathItem(0, text, None, None, None, nametype),)


def test_a_front_end_of_neutral_records_gets_events_under_its_own_source() -> None:
    model = OSModel("h", source="ebpf")
    model.adopt("h", Proc(pid=7, start=5 * S, ppid=1, cwd="/work", uid=1000, euid=1000))
    dir_open = Syscall(serial=1, ts=6 * S, syscall="openat", pid=7, exit=5,
                       args=(AT_FDCWD, 0, O_DIRECTORY, 0), paths=name("data"))
    assert model.apply(dir_open) == []  # a directory descriptor moves no data
    write = Syscall(serial=2, ts=7 * S, syscall="openat", pid=7, exit=3,
                    args=(5, 0, O_WRONLY | O_CREAT, 0), paths=name("out/../x.csv", "CREATE"))
    [opened] = model.apply(write)
    [closed] = model.apply(Syscall(serial=3, ts=9 * S, syscall="close", pid=7, args=(3, 0, 0, 0)))
    for ev, ts in ((opened, 7 * S), (closed, 9 * S)):
        assert (ev.source, ev.host, ev.kind, ev.ts) == ("ebpf", "h", Kind.WRITE, ts)
        assert ev.file is not None and ev.file.path == "/work/data/x.csv"
        assert (ev.proc.pid, ev.proc.start) == (7, 5 * S)
    assert (opened.seq, closed.seq) == ("2.0", "3.0")


def test_lookups_name_what_the_model_knows() -> None:
    model = OSModel("h")
    assert model.process("h", 7) is None
    model.adopt("h", Proc(pid=7, start=S, cwd="/home/u"))
    model.apply(Syscall(serial=1, ts=2 * S, syscall="openat", pid=7, exit=4,
                        args=(AT_FDCWD, 0, O_DIRECTORY, 0), paths=name("/srv/d")))
    proc = model.process("h", 7)
    assert proc is not None and proc.cwd == "/home/u"
    assert model.directory(proc, 4) == "/srv/d"
    assert model.directory(proc, AT_FDCWD) is None
    assert model.directory(proc, 9) is None  # not open
    assert model.resolve(proc, "a//b/../c.txt", 4) == "/srv/d/a/c.txt"
    assert model.resolve(proc, "c.txt") == "/home/u/c.txt"
    assert model.resolve(proc, "/abs/./x") == "/abs/x"
    model.apply(Syscall(serial=2, ts=3 * S, syscall="exit_group", pid=7))
    assert model.process("h", 7) is None


def test_registered_handlers_extend_the_model() -> None:
    seen: list[tuple[str, int]] = []

    def chdir(out: Emitter, call: SyscallRecord, proc: Proc) -> None:
        seen.append((call.syscall, proc.pid))
        proc.cwd = call.paths[0].name

    model = OSModel("h")
    assert "chdir" not in model.handled and "openat" in model.handled
    model.adopt("h", Proc(pid=3, start=S, cwd="/a"))
    model.register(("chdir",), chdir)
    assert "chdir" in model.handled
    model.apply(Syscall(serial=1, ts=2 * S, syscall="chdir", pid=3, paths=name("/b")))
    model.apply(Syscall(serial=2, ts=3 * S, syscall="chdir", pid=3, success=False,
                        paths=name("/nowhere")))  # failed calls never reach a handler
    [ev] = model.apply(Syscall(serial=3, ts=4 * S, syscall="openat", pid=3, exit=3,
                               paths=name("f")))
    assert seen == [("chdir", 3)]
    assert ev.file is not None and ev.file.path == "/b/f"


def test_the_tracer_model_follows_chdir_and_fchdir_and_strace_is_asked_for_all() -> None:
    model = TraceModel("h")
    assert model.handled <= set(TRACED_SYSCALLS)
    model.adopt("h", Proc(pid=3, start=S, cwd="/a"))
    model.apply(Syscall(serial=1, ts=2 * S, syscall="chdir", pid=3, paths=name("b/../c")))
    proc = model.process("h", 3)
    assert proc is not None and proc.cwd == "/a/c"
    model.apply(Syscall(serial=2, ts=3 * S, syscall="openat", pid=3, exit=6,
                        args=(AT_FDCWD, 0, O_DIRECTORY, 0), paths=name("/etc")))
    model.apply(Syscall(serial=3, ts=4 * S, syscall="fchdir", pid=3, args=(6, 0, 0, 0)))
    assert proc.cwd == "/etc"


def test_snapshot_and_restore_carry_descriptors_over() -> None:
    model = OSModel("h", source="strace")
    model.adopt("h", Proc(pid=9, start=S, cwd="/w"))
    model.apply(Syscall(serial=1, ts=2 * S, syscall="openat", pid=9, exit=3, paths=name("in")))
    resumed = OSModel.restore("h", model.snapshot(), source="strace")
    [ev] = resumed.apply(Syscall(serial=2, ts=5 * S, syscall="close", pid=9,
                                 args=(3, 0, 0, 0)))
    assert (ev.source, ev.kind, ev.ts) == ("strace", Kind.READ, 5 * S)
    assert ev.file is not None and ev.file.path == "/w/in"


def test_an_audit_event_and_a_neutral_record_of_one_call_give_the_same_events() -> None:
    audit = AuditEvent(
        node="n1", serial=4, ts=3 * S, syscall="openat", success=True, exit=3,
        args=(AT_FDCWD, 0, O_WRONLY | O_CREAT, 0), pid=20, ppid=1, uid=0, euid=0, gid=0,
        auid=0, comm="sh", exe="/usr/bin/sh", key=None, cwd="/w",
        paths=[PathItem(0, "/w", 2, "fd:01", 0o40755, "PARENT"),
               PathItem(1, "o.txt", 5, "fd:01", 0o100644, "CREATE")],
        argv=None, proctitle=["sh", "-c", "x"], sockaddr=None, fd_pair=None, records=4,
        offset=0,
    )
    neutral = Syscall(
        node="n1", serial=4, ts=3 * S, syscall="openat", exit=3,
        args=(AT_FDCWD, 0, O_WRONLY | O_CREAT, 0), pid=20, ppid=1, uid=0, euid=0,
        exe="/usr/bin/sh", cwd="/w", paths=tuple(audit.paths), proctitle=["sh", "-c", "x"],
    )
    from_audit = OSModel("h", source="x").apply(audit)
    from_neutral = OSModel("h", source="x").apply(neutral)
    assert [ev.kind for ev in from_audit] == [Kind.EXEC, Kind.WRITE]  # first sight, then it
    assert from_audit == from_neutral
