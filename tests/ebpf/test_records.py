"""The parser of the eBPF program's output: framing, strings (raw bytes, newlines, long
names in chunks, spurious continuations), per-thread assembly, lost events, time order."""

from __future__ import annotations

from ursprung_graph.collectors.ebpf.program import CHUNK, syscall_numbers
from ursprung_graph.collectors.ebpf.records import Call, Lost, RecordParser, Reorder
from ursprung_graph.schema.names import name_to_bytes

NR = syscall_numbers("x86_64")
OFFSET = 1_000_000_000_000


def header(name: str, tid: int, ts: int, ret: int, *args: int, extra=(0, 0, 0)) -> bytes:
    a = [*args, 0, 0, 0, 0][:4]
    return (f"{NR[name]} {tid} {tid} {ts} {ret} " + " ".join(map(str, [*a, *extra]))
            ).encode() + b"\x1e\n"


def s(tid: int, data: bytes, mark: bytes = b"&") -> bytes:
    return mark + f" {tid}".encode() + b"\x1f" + data + b"\x1e\n"


def parse(*chunks: bytes) -> tuple[RecordParser, list]:
    p = RecordParser(OFFSET, machine="x86_64")
    out = []
    for c in chunks:
        out += p.feed(c)
    out += p.finish()
    return p, out


def test_open_with_raw_bytes_and_newline_in_the_name():
    name = b"/tmp/a\nb\x01c\\x41\xff\x1fz"
    _, out = parse(header("openat", 7, 100, 3, -100, 0, 0o101) + s(7, name))
    [call] = out
    assert call.name == "openat" and call.tid == 7 and call.result == 3
    assert call.ts == OFFSET + 100
    assert name_to_bytes(call.path) == name
    assert call.args[2] == 0o101


def test_record_split_across_blocks_and_no_string_calls():
    data = header("close", 5, 10, 0, 4) + header("dup2", 5, 11, 1, 3, 1)
    _, out = parse(data[:7], data[7:30], data[30:])
    assert [(c.name, c.args[0]) for c in out] == [("close", 4), ("dup2", 3)]


def test_long_name_in_chunks_and_spurious_continuation_dropped():
    long = b"/" + b"x" * (CHUNK * 2 + 10)
    chunks = [long[i:i + CHUNK] for i in range(0, len(long), CHUNK)]
    data = header("unlink", 9, 1, 0) + s(9, chunks[0]) + s(9, chunks[1], b"+") \
        + s(9, chunks[2], b"+") + s(9, b"garbage", b"+")  # after a short chunk: not ours
    p, out = parse(data)
    [call] = out
    assert call.path.encode() == long
    assert p.spurious == 1


def test_rename_has_two_paths_and_threads_interleave():
    data = (header("rename", 1, 5, 0) + header("close", 2, 6, 0, 3) + s(1, b"old")
            + s(1, b"new"))
    _, out = parse(data)
    assert [(c.name, c.path, c.path2) for c in out] == [("close", None, None),
                                                          ("rename", "old", "new")]


def test_exec_strings_until_trailer_and_task_records():
    data = (f"{NR['execve']} 4 4 50 - -100".encode() + b"\x1e\n" + s(4, b"/bin/sh")
            + s(4, b"sh") + s(4, b"-c") + s(4, b"echo a b") + b"; 4\x1e\n"
            + b"E 4 4 60 4\x1e\n" + b"N 4 4 70 8 17\x1e\n" + b"X 4 4 80 3 1\x1e\n")
    _, out = parse(data)
    exec_call, exec_ok, clone, exit_ = out
    assert exec_call.path == "/bin/sh" and exec_call.argv == ["sh", "-c", "echo a b"]
    assert (exec_ok.name, exec_ok.old_tid) == ("exec", 4)
    assert (clone.name, clone.child, clone.flags) == ("clone", 8, 17)
    assert (exit_.name, exit_.result, exit_.group_dead) == ("exit", 3, True)


def test_socket_addresses():
    inet = (2 | (8080).to_bytes(2, "big")[0] << 16 | (8080).to_bytes(2, "big")[1] << 24
            | 127 << 32 | 1 << 56)
    data = header("connect", 3, 1, 0, 5, extra=(inet, 0, 0))
    data += header("bind", 3, 2, 0, 6, extra=(1, 0, -1)) + s(3, b"abstract")
    data += header("bind", 3, 3, 0, 7, extra=(1, 0, 0)) + s(3, b"/run/x.sock")
    _, out = parse(data)
    addrs = [(c.addr.family, c.addr.address, c.addr.port) for c in out]
    assert addrs == [("inet", "127.0.0.1", 8080), ("unix", "@abstract", None),
                     ("unix", "/run/x.sock", None)]


def test_lost_events_become_gaps_and_noise_is_counted():
    data = header("close", 1, 10, 0, 3) + b"Lost 17 events\n" + header("close", 1, 20, 0, 4)
    data += b"12x nonsense\x1e\n"
    p, out = parse(data)
    gaps = [o for o in out if isinstance(o, Lost)]
    assert [(g.count, g.ts) for g in gaps] == [(17, OFFSET + 10)]
    assert p.bad == 1


def test_reorder_releases_in_time_order_after_the_lag():
    r = Reorder(lag_ns=10)
    def c(ts: int) -> Call:
        return Call("close", 1, 1, ts, 0)
    assert r.push([c(5), c(3)]) == []
    out = r.push([c(20)])
    assert [x.ts for x in out] == [3, 5]
    assert [x.ts for x in r.push([c(12)])] == []
    assert [x.ts for x in r.drain()] == [12, 20]


def test_a_run_with_lost_records_says_so_in_its_environment():
    from ursprung_graph.collectors.trace.runner import TraceResult
    from ursprung_graph.pipeline.record import CAPTURE_GAP, capture_gap

    whole = TraceResult(returncode=0, start=1, end=2, root_pid=1, root_start=1)
    assert capture_gap(whole) == {}
    gappy = TraceResult(returncode=0, start=1, end=2, root_pid=1, root_start=1, lost=12,
                        gaps=[(100, 5), (300, 7)])
    assert capture_gap(gappy) == {
        CAPTURE_GAP: "12 records lost in 2 gaps between 100 and 300 (epoch ns)"}


def test_a_name_cut_by_the_kernel_is_marked():
    data = header("unlink", 9, 1, 0) + s(9, b"/" + b"x" * (CHUNK - 1)) + b"~ 9\x1e\n"
    _, out = parse(data + header("close", 9, 2, 0, 3))
    unlink, close = out
    assert unlink.cut and len(unlink.path) == CHUNK and close.name == "close"


def test_gaps_become_gap_events_of_the_root():
    from ursprung_graph.collectors.ebpf.adapter import CallConverter
    from ursprung_graph.schema.event import GapWindow, Kind

    conv = CallConverter("h", root=42, cwd="/", parent_pid=1)
    conv.adopt_root(7)
    window = GapWindow(source="ebpf-lost", end=99, count=3)
    ev = conv.gap(99, "3 records lost", window)
    assert (ev.kind, ev.proc.pid, ev.proc.start, ev.ts, ev.gap, ev.source, ev.window) == (
        Kind.GAP, 42, 7, 99, "3 records lost", "ebpf", window)
