"""The generated program on the real kernel: a traced subtree from its first instruction,
names as bytes (a newline, undecodable bytes, longer than one bpftrace string), renames,
pipes, sockets, threads, a process killed by a signal; lost events counted."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from ursprung_graph.collectors.ebpf.capture import Backend, Capture, check_ebpf
from ursprung_graph.collectors.ebpf.program import Target
from ursprung_graph.collectors.ebpf.records import Call, Lost
from ursprung_graph.collectors.ebpf.runner import start_gated
from ursprung_graph.schema.names import name_to_bytes

from .conftest import ebpf_missing, needs_ebpf

pytestmark = needs_ebpf

CHILD = textwrap.dedent("""
    import os, signal, socket, sys, threading
    d = sys.argv[1].encode()
    weird = d + b"/we\\nird\\xff\\x1f\\x1e"
    os.close(os.open(weird, os.O_CREAT | os.O_WRONLY, 0o644))
    deep = d + b"/" + b"/".join([b"segment%03d" % i + b"y" * 40 for i in range(12)])
    os.makedirs(deep)
    os.close(os.open(deep + b"/f.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    os.rename(weird, d + b"/renamed")
    r, w = os.pipe()
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.listen()
    c = socket.socket(); c.connect(("127.0.0.1", port))
    flags = os.O_CREAT | os.O_WRONLY
    t = threading.Thread(target=lambda: os.close(os.open(d + b"/from-thread", flags)))
    t.start(); t.join()
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGTERM)
    os.waitpid(pid, 0)
    os._exit(4)
""")


def trace(argv: list[str], backend: Backend, **kw) -> tuple[list[Call], Capture, int]:
    calls: list[Call | Lost] = []
    child = start_gated(argv)
    cap = Capture(Target(ready_pid=os.getpid(), root=child.pid), calls.extend,
                  backend=backend, **kw)
    try:
        cap.start()
        os.kill(child.pid, signal.SIGCONT)
        code = child.wait()
        assert cap.sync()
    finally:
        cap.stop()
    return [c for c in calls if isinstance(c, Call)], cap, code


def test_subtree_calls_from_the_first_instruction(tmp_path: Path, backend: Backend):
    calls, cap, code = trace([sys.executable, "-c", CHILD, str(tmp_path)], backend)
    assert cap.backend.kind == backend.kind
    assert code == 4
    paths = {name_to_bytes(c.path) for c in calls if c.path}
    d = str(tmp_path).encode()
    assert d + b"/we\nird\xff\x1f\x1e" in paths
    deep = [p for p in paths if p.endswith(b"/f.txt")]
    assert len(deep) == 1 and len(deep[0]) > 600 and deep[0].count(b"/segment") == 12
    [rename] = [c for c in calls if c.name.startswith("rename")]
    assert name_to_bytes(rename.path2) == d + b"/renamed"
    assert any(c.name.startswith("pipe") and c.fds and c.fds[0] >= 0 for c in calls)
    [connect] = [c for c in calls if c.name == "connect"]
    assert connect.addr.family == "inet" and connect.addr.address == "127.0.0.1"
    [bind] = [c for c in calls if c.name == "bind"]
    assert (bind.addr.address, bind.addr.port) == ("127.0.0.1", 0)  # as the call said
    threads = [c for c in calls if c.name == "clone" and c.flags & 0x10000]
    assert threads
    opened_by_thread = [c for c in calls if c.path and c.path.endswith("/from-thread")]
    assert opened_by_thread and opened_by_thread[0].tid != opened_by_thread[0].pid
    exits = {c.pid: c.result for c in calls if c.name == "exit" and c.group_dead}
    assert sorted(exits.values()) == [4, 128 + 15]
    # the first call of the root is the exec of the command (the gate's own start-up was
    # before the probes; from the go on, everything is seen) and times are in order
    assert [c.name for c in calls if c.pid == calls[0].pid][:1] in (["close"], ["execve"])
    assert [c.ts for c in calls] == sorted(c.ts for c in calls)
    assert cap.parser.bad == 0 and cap.lost == 0


def test_lost_events_are_counted(tmp_path: Path, backend: Backend):
    """A one-page buffer overflows under a burst of calls; whether the reader keeps up with
    a given burst depends on the machine, so the burst grows until the kernel drops some."""
    for n in (20000, 100000, 400000):
        burst = (f"import os\nfor i in range({n}):\n"
                 f"    os.close(os.open({str(tmp_path)!r} + '/f%d' % (i % 50), 65))\n")
        calls, cap, code = trace([sys.executable, "-c", burst], backend, ring_pages=1,
                                 ring_kb=4)
        assert code == 0
        if cap.lost > 0:
            break
    assert cap.lost > 0
    opens = [c for c in calls if c.name == "openat" and c.path and c.path.startswith(str(tmp_path))]
    assert len(opens) < n


def test_lost_records_arrive_as_gap_events_of_the_run(tmp_path: Path):
    """`ursprung run`'s tracer with a one-page ring: the records the kernel dropped become
    ``Kind.GAP`` events of the run's root, and the result counts them."""
    why = ebpf_missing("libbpf")
    if why is not None:
        pytest.skip(f"the libbpf back end (the one with a ring size to set) is missing: {why}")
    from ursprung_graph.collectors.ebpf.runner import EbpfTracer
    from ursprung_graph.schema.event import Event, Kind

    for n in (20000, 100000, 400000):
        events: list[Event] = []
        burst = (f"import os\nfor i in range({n}):\n"
                 f"    os.close(os.open({str(tmp_path)!r} + '/f%d' % (i % 50), 65))\n")
        tracer = EbpfTracer([sys.executable, "-c", burst], events.extend, host="h",
                            ring_kb=4)
        result = tracer.wait_stored(tracer.run())
        if result.lost > 0:
            break
    assert result.returncode == 0 and result.lost > 0
    gaps = [e for e in events if e.kind is Kind.GAP]
    assert gaps and sum(n for _, n in result.gaps) == result.lost
    assert {(e.proc.pid, e.proc.start) for e in gaps} == {(result.root_pid, result.root_start)}
    assert all("records lost" in e.gap for e in gaps)


def test_a_loader_that_does_not_load_falls_back_to_bpftrace(tmp_path: Path):
    """The compiled loader fails (here: a stand-in that says what the real one says when
    the kernel refuses the program): bpftrace traces instead, and the capture says why."""
    why = ebpf_missing("bpftrace")
    if why is not None:
        pytest.skip(f"the bpftrace back end (the fallback) is missing: {why}")
    broken = tmp_path / "ursprung-ebpf"
    broken.write_text("#!/bin/sh\necho 'ursprung-ebpf: the eBPF program did not load: "
                      "Operation not permitted' >&2\nexit 1\n")
    broken.chmod(0o755)
    bpftrace = check_ebpf("bpftrace").path
    out = tmp_path / "out.txt"
    calls, cap, code = trace(["sh", "-c", f"echo x > {out}"],
                             Backend("libbpf", str(broken), bpftrace))
    assert code == 0 and cap.backend.kind == "bpftrace"
    assert cap.fell_back is not None and "Operation not permitted" in cap.fell_back
    assert any(c.path == str(out) for c in calls)
