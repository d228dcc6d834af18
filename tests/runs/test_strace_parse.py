# ruff: noqa: E501  (literal strace lines)
"""strace output -> calls -> normalized events, on literal strace text (no tracing)."""

from __future__ import annotations

from ursprung_graph.collectors.trace.convert import TraceConverter
from ursprung_graph.collectors.trace.strace import StraceParser, Struct, parse_args
from ursprung_graph.schema.event import Kind


def events_of(text: str, cwd: str = "/w"):
    parser = StraceParser()
    conv = TraceConverter("h", cwd, uid=1000, euid=1000, parent_pid=1)
    out = []
    for line in text.strip("\n").splitlines():
        call = parser.feed(line.strip())
        if call is not None:
            out += conv.feed(call)
    out += conv.finish()
    return out, conv, parser


def test_parse_args_strings_arrays_structs():
    args = parse_args('AT_FDCWD, "a\\"b\\\\c\\n\\303\\251", [3, 4], '
                      '{sa_family=AF_UNIX, sun_path="/run/x.sock"}, O_RDONLY|O_CLOEXEC')
    assert args[0] == "AT_FDCWD"
    assert args[1] == 'a"b\\c\né'.encode()
    assert args[2] == ["3", "4"]
    assert isinstance(args[3], Struct)
    assert args[3]["sun_path"] == b"/run/x.sock"
    assert args[4] == "O_RDONLY|O_CLOEXEC"


def test_unfinished_and_resumed_calls_are_joined_with_the_entry_time():
    parser = StraceParser()
    assert parser.feed('7 100.000001 openat(AT_FDCWD, "x", O_RDONLY <unfinished ...>') is None
    other = parser.feed("8 100.000002 close(3)        = 0")
    assert other is not None and other.name == "close" and other.tid == 8
    call = parser.feed("7 100.000003 <... openat resumed>) = 5")
    assert call is not None
    assert (call.name, call.tid, call.ret, call.ts) == ("openat", 7, 5, 100_000_001_000)
    assert call.args[1] == b"x"


FAST_LINES = [
    "7 100.000001 close(3) = 0",
    "7 100.000001 close(33)        = -1 EBADF (Bad file descriptor)",
    '7 100.000001 openat(AT_FDCWD, "/w/d/f00001.txt", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 3',
    '7 100.000001 openat(AT_FDCWD, "rel/x", O_RDONLY|O_CLOEXEC) = 4',
    '7 100.000001 openat(5, "x", O_RDONLY|O_DIRECTORY) = -1 ENOENT (No such file or directory)',
    r'7 100.000001 openat(AT_FDCWD, "caf\303\251 \"q\"", O_RDONLY) = 6',  # escapes: general way
    "7 100.5 close(3) = 0",  # a time not in microseconds
]


def test_fast_lines_parse_as_the_general_parser_does():
    """close and openat lines take a fast path; the same call cut in two (unfinished, then
    resumed) takes the general one: both give the same call."""
    for line in FAST_LINES:
        fast = StraceParser().feed(line)
        head, _, tail = line.rpartition(") ")
        parser = StraceParser()
        assert parser.feed(head + " <unfinished ...>") is None
        general = parser.feed("7 100.9 <... " + head.split()[2].split("(")[0] + " resumed>) "
                              + tail)
        assert fast is not None and general is not None, line
        assert (fast.tid, fast.ts, fast.name, fast.args, fast.ret, fast.error) == \
            (general.tid, general.ts, general.name, general.args, general.ret,
             general.error), line
        assert [type(a) for a in fast.args] == [type(a) for a in general.args], line
    call = StraceParser().feed(FAST_LINES[5])
    assert call is not None and call.args[1] == 'café "q"'.encode()
    assert StraceParser().feed(FAST_LINES[-1]).ts == 100_500_000_000


def test_exit_lines_and_junk():
    parser = StraceParser()
    assert parser.feed("7 1.5 +++ exited with 3 +++").ret == 3
    assert parser.feed("7 1.5 +++ killed by SIGKILL +++").ret == 128 + 9
    assert parser.feed("7 1.5 --- SIGCHLD {si_signo=SIGCHLD} ---") is None
    assert parser.feed("garbage") is None
    assert parser.feed('7 1.5 openat(AT_FDCWD, "unterminated') is None
    assert parser.bad == 2


PIPELINE = """
100 10.000000 execve("/bin/sh", ["sh", "-c", "cat in.txt | sort > out.tmp; mv out.tmp out.txt"], 0x7ff /* 3 vars */) = 0
100 10.000100 chdir("sub")      = 0
100 10.000200 pipe2([3, 4], 0) = 0
100 10.000300 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>
101 10.000400 dup2(4, 1)      = 1
101 10.000500 close(4)        = 0
101 10.000550 execve("/usr/bin/cat", ["cat", "in.txt"], 0x55 /* 3 vars */ <unfinished ...>
100 10.000600 <... clone resumed>, child_tidptr=0x7f4a) = 101
101 10.000650 <... execve resumed>) = 0
100 10.000700 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 102
102 10.000800 dup2(3, 0)      = 0
102 10.000900 openat(AT_FDCWD, "out.tmp", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 5
102 10.001000 dup2(5, 1)      = 1
102 10.001100 close(5)        = 0
102 10.001200 execve("/usr/bin/sort", ["sort"], 0x55 /* 3 vars */) = 0
101 10.001300 openat(AT_FDCWD, "in.txt", O_RDONLY) = 3
101 10.001400 close(3)        = 0
101 10.001500 exit_group(0)   = ?
101 10.001600 +++ exited with 0 +++
102 10.001700 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, child_tid=0x7f} => {parent_tid=[103]}, 88) = 103
103 10.001800 openat(AT_FDCWD, "/tmp/sortXYZ", O_RDWR|O_CREAT|O_EXCL, 0600) = 6
103 10.001850 +++ exited with 0 +++
102 10.001900 exit_group(0)   = ?
102 10.002000 +++ exited with 0 +++
100 10.002100 vfork( <unfinished ...>
104 10.002200 execve("/usr/bin/mv", ["mv", "out.tmp", "out.txt"], 0x55 /* 3 vars */) = 0
100 10.002300 <... vfork resumed>) = 104
104 10.002400 renameat2(AT_FDCWD, "out.tmp", AT_FDCWD, "out.txt", RENAME_NOREPLACE) = 0
104 10.002500 unlinkat(AT_FDCWD, "gone.txt", 0) = -1 ENOENT (No such file or directory)
104 10.002600 exit_group(0)   = ?
104 10.002700 +++ exited with 0 +++
100 10.002800 exit_group(1)   = ?
100 10.002900 +++ exited with 1 +++
"""


def test_pipeline_becomes_the_events_auditd_would_give():
    events, conv, parser = events_of(PIPELINE)
    assert parser.bad == 0
    assert conv.root == 100 and conv.root_start == 10_000_000_000
    by = {}
    for ev in events:
        by.setdefault(ev.kind, []).append(ev)
    assert {ev.source for ev in events} == {"strace"}
    # processes: the root and three children with the root as parent; the thread is none
    forks = {(ev.proc.pid, ev.child.pid) for ev in by[Kind.FORK]}
    assert forks == {(100, 101), (100, 102), (100, 104)}
    assert sorted(pid for pid, _ in conv.members) == [100, 101, 102, 104]
    # the child's calls printed before its clone returned still belong to it
    assert any(ev.proc.pid == 101 and ev.pipe for ev in by[Kind.PIPE_WRITE])
    assert any(ev.proc.pid == 102 and ev.pipe for ev in by[Kind.PIPE_READ])
    # paths resolve against the directory the root changed into
    reads = {(ev.proc.pid, ev.file.path) for ev in by[Kind.READ]}
    writes = {(ev.proc.pid, ev.file.path) for ev in by[Kind.WRITE]}
    assert (101, "/w/sub/in.txt") in reads
    assert (102, "/w/sub/out.tmp") in writes
    # the thread's file is the process's file
    assert (102, "/tmp/sortXYZ") in writes
    [rename] = by[Kind.RENAME]
    assert (rename.proc.pid, rename.file.path, rename.dst.path) == (
        104, "/w/sub/out.tmp", "/w/sub/out.txt")
    assert Kind.UNLINK not in by  # failed calls are not provenance
    exits = {ev.proc.pid: ev.exit_code for ev in by[Kind.EXIT]}
    assert exits == {101: 0, 102: 0, 104: 0, 100: 1}
    execs = {ev.proc.pid: ev.file.path for ev in by[Kind.EXEC] if ev.file}
    assert execs[101] == "/usr/bin/cat" and execs[104] == "/usr/bin/mv"


def test_killed_process_ends_and_orphans_are_kept():
    text = """
200 1.0 execve("/bin/sleep", ["sleep", "9"], 0x1 /* 1 vars */) = 0
200 1.1 openat(AT_FDCWD, "w.txt", O_WRONLY|O_CREAT, 0644) = 3
201 1.2 openat(AT_FDCWD, "o.txt", O_RDONLY) = 3
200 1.3 +++ killed by SIGTERM +++
"""
    events, conv, _ = events_of(text)
    exits = [ev for ev in events if ev.kind is Kind.EXIT]
    assert [(ev.proc.pid, ev.exit_code) for ev in exits] == [(200, 128 + 15)]
    # the write interval ends at the kill
    writes = [ev for ev in events if ev.kind is Kind.WRITE and ev.file.path == "/w/w.txt"]
    assert [ev.ts for ev in writes] == [1_100_000_000, 1_300_000_000]
    # a pid whose creation was never seen is still recorded (unknown parent, start 0)
    assert any(ev.proc.pid == 201 and ev.kind is Kind.READ for ev in events)


def test_fchdir_and_openat_relative_to_directory_fd():
    text = """
300 1.0 execve("/bin/x", ["x"], 0x1 /* 1 vars */) = 0
300 1.1 openat(AT_FDCWD, "/data", O_RDONLY|O_DIRECTORY) = 3
300 1.2 openat(3, "a.csv", O_RDONLY) = 4
300 1.3 fchdir(3)       = 0
300 1.4 open("b.csv", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 5
300 1.5 connect(6, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("10.0.0.5")}, 16) = -1 EINPROGRESS (Operation now in progress)
"""
    events, _, _ = events_of(text)
    paths = {(ev.kind, ev.file.path) for ev in events if ev.file is not None}
    assert (Kind.READ, "/data/a.csv") in paths
    assert (Kind.WRITE, "/data/b.csv") in paths
    [conn] = [ev for ev in events if ev.kind is Kind.CONNECT]
    assert (conn.peer.address, conn.peer.port) == ("10.0.0.5", 8080)
