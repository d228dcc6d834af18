"""The parser of the compiled loader's binary records (no kernel needed): calls with their
names as raw bytes, exec's argv, socket addresses, task records, lost counts, markers,
records split across reads."""

from __future__ import annotations

from ursprung_graph.collectors.ebpf.binary import HEADER, BinaryParser
from ursprung_graph.collectors.ebpf.program import syscall_numbers
from ursprung_graph.collectors.ebpf.records import Call, Lost
from ursprung_graph.schema.names import name_to_bytes

NR = syscall_numbers("x86_64")
OFFSET = 1_000_000_000_000


def rec(kind: str, tid: int, ts: int, *, nr: int = 0, ret: int = 0, a=(0, 0, 0, 0),
        x=(0, 0, 0), strings: tuple[bytes, ...] = (), argc: int | None = None,
        flags: int = 0) -> bytes:
    body = b"".join(s + b"\0" for s in strings)
    len1 = len(strings[0]) + 1 if strings else 0
    len2 = argc if argc is not None else (len(strings[1]) + 1 if len(strings) > 1 else 0)
    return HEADER.pack(HEADER.size + len(body), ord(kind), flags, nr, tid, tid + 1000, ts,
                       ret, *a, *x, len1, len2, 0) + body


def parse(*blocks: bytes) -> tuple[BinaryParser, list[Call | Lost]]:
    p = BinaryParser(OFFSET, machine="x86_64")
    out: list[Call | Lost] = []
    for b in blocks:
        out += p.feed(b)
    out += p.finish()
    return p, out


def test_calls_with_names_as_bytes_split_across_reads():
    weird = b"/tmp/a\nb\x1e\x1f\xffc"
    data = (rec("S", 7, 100, nr=NR["openat"], ret=3, a=(-100, 0, 0o101, 0), strings=(weird,))
            + rec("S", 7, 110, nr=NR["renameat2"], a=(-100, 0, -100, 0),
                  strings=(b"/old", b"/new")))
    p, out = parse(data[:50], data[50:130], data[130:])
    opened, renamed = out
    assert (opened.name, opened.tid, opened.pid, opened.result) == ("openat", 7, 1007, 3)
    assert opened.ts == OFFSET + 100 and opened.args[2] == 0o101
    assert name_to_bytes(opened.path) == weird
    assert (renamed.path, renamed.path2) == ("/old", "/new")
    assert p.bad == 0


def test_exec_with_argv_and_task_records():
    data = (rec("V", 4, 50, nr=NR["execve"], a=(-100, 0, 0, 0),
                strings=(b"/bin/sh", b"sh", b"-c", b"echo a b"), argc=3)
            + rec("E", 4, 60, ret=4) + rec("N", 4, 70, ret=8, a=(17, 0, 0, 0))
            + rec("X", 4, 80, ret=3, a=(1, 0, 0, 0)))
    _, out = parse(data)
    asked, done, clone, exit_ = out
    assert asked.path == "/bin/sh" and asked.argv == ["sh", "-c", "echo a b"]
    assert asked.args == (-100,)
    assert (done.name, done.old_tid) == ("exec", 4)
    assert (clone.name, clone.child, clone.flags) == ("clone", 8, 17)
    assert (exit_.name, exit_.result, exit_.group_dead) == ("exit", 3, True)


def test_socket_addresses_and_pipes():
    inet = 2 | (0x90 << 24 | 0x1F << 16) | 127 << 32 | 1 << 56  # 127.0.0.1:8080, port BE
    data = (rec("S", 3, 1, nr=NR["connect"], a=(5, 0, 16, 0), x=(inet, 0, 0))
            + rec("S", 3, 2, nr=NR["bind"], a=(6, 0, 0, 0), x=(1, 0, -1),
                  strings=(b"abstract",))
            + rec("S", 3, 3, nr=NR["pipe2"], a=(0, 0, 0, 0), x=(5, 6, 0)))
    _, out = parse(data)
    connect, bind, pipe = out
    assert (connect.addr.family, connect.addr.address, connect.addr.port) == \
        ("inet", "127.0.0.1", 8080)
    assert (bind.addr.family, bind.addr.address, bind.addr.port) == ("unix", "@abstract", None)
    assert pipe.fds == (5, 6)


def test_lost_counts_markers_and_a_cut_record():
    data = (rec("A", 1, 1) + rec("S", 1, 10, nr=NR["close"], a=(3, 0, 0, 0))
            + rec("L", 1, 20, ret=17) + rec("R", 1, 30))
    p, out = parse(data, rec("S", 1, 40, nr=NR["close"])[:60])
    close, lost = out
    assert close.name == "close" and close.args[0] == 3
    assert isinstance(lost, Lost) and (lost.count, lost.ts) == (17, OFFSET + 10)
    assert p.markers == 2
    assert p.bad == 1  # the record the loader's end cut short
