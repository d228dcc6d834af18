"""The compiled parser core (_records.c) against the pure-Python parser, its oracle.

Both must give the same outputs in the same order (same classes, field values and their
types, reasons, raw bytes, offsets) and the same counters after every line: on the recorded
logs, on those logs shuffled, duplicated, truncated and mixed with junk, on records whose
fields are mutated one by one, and on generated input.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.collectors.test_audit_records import openat, path, rec, sysc, title
from tests.collectors.test_audit_records_props import record_like, scenario
from ursprung_graph.collectors.auditd import records
from ursprung_graph.collectors.auditd.records import (
    AuditEvent,
    PyAuditParser,
    Rejected,
)

DATA = Path(__file__).resolve().parents[1] / "data"
LOGS = sorted(DATA.glob("*.audit.log"))
#: Other people's logs (tests/data/README.md) and hand-edited excerpts.
OTHER_LOGS = sorted([*DATA.glob("foreign/*.log"), *DATA.glob("edited/*.log")])
CParser = records.CAuditParser
needs_c = pytest.mark.skipif(CParser is None, reason=f"no compiled core: {records.C_UNAVAILABLE}")
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- built and used


def test_extension_is_built() -> None:
    """A failed or skipped build (the extension is optional for setuptools) shows here."""
    assert CParser is not None, records.C_UNAVAILABLE
    mod = importlib.import_module("ursprung_graph.collectors.auditd._records")
    assert CParser is mod.AuditParser
    src = Path(records.__file__).with_name("_records.c")
    built = Path(mod.__file__)  # type: ignore[arg-type]
    assert built.stat().st_mtime >= src.stat().st_mtime, "stale build: pip install -e ."


@pytest.mark.skipif(
    os.environ.get(records.PURE_PYTHON_ENV, "") not in ("", "0"),
    reason=f"{records.PURE_PYTHON_ENV} is set",
)
def test_extension_is_used() -> None:
    assert records.IMPLEMENTATION == "c"
    assert records.AuditParser is CParser
    from ursprung_graph.collectors.auditd.source import AuditdSource

    assert type(AuditdSource("h").parser) is CParser


# --------------------------------------------------------------------------- comparison


def strict(x: object) -> object:
    """A comparable form that keeps types (True == 1 and 1 == 1.0 must not hide a bug)."""
    if dataclasses.is_dataclass(x):
        return (type(x), tuple(strict(getattr(x, f.name)) for f in dataclasses.fields(x)))
    if isinstance(x, (list, tuple)):
        return (type(x), tuple(strict(v) for v in x))
    return (type(x), x)


def trace(cls: type, lines: list[bytes], **kw: object) -> list:
    """Everything observable while feeding `lines` then flushing."""
    p = cls(**kw)
    res: list = []
    offset = 0
    for line in lines:
        out = p.feed(line, offset)
        assert type(out) is list
        res.append((strict(out), p.records, p.skipped, p.pending))
        offset += len(line)
    res.append((strict(p.flush()), p.records, p.skipped, p.pending))
    return res


def same(lines: list[bytes], **kw: object) -> list:
    """Assert both parsers agree on `lines`; returns the (Python) trace."""
    expected = trace(PyAuditParser, lines, **kw)
    got = trace(CParser, lines, **kw)  # type: ignore[arg-type]
    if got != expected:
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert g == e, f"line {i}: {lines[i] if i < len(lines) else 'flush'!r}"
    return expected


def _lines(log: Path) -> list[bytes]:
    return log.read_bytes().splitlines(keepends=True)


# --------------------------------------------------------------------------- real logs


@needs_c
@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_real_logs(log: Path) -> None:
    lines = _lines(log)
    out = same(lines)
    items = [o for step in out for o in step[0][1]]
    assert sum(1 for o in items if o[0] is AuditEvent) > len(lines) / 4  # ~3 records each
    assert not any(o[0] is Rejected for o in items)


@needs_c
@pytest.mark.parametrize("log", OTHER_LOGS, ids=lambda p: p.name)
@pytest.mark.parametrize("window", [0, 2, 256])
def test_other_peoples_logs(log: Path, window: int) -> None:
    """Old kernels (objtype=, no nametype=), hex arguments split over records, blank and
    comment lines, partial events: the core and the oracle agree on all of it."""
    lines = _lines(log)
    same(lines, window=window)
    same([*lines, *lines], window=window)  # every record of the copy arrives late


@needs_c
@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_real_logs_through_iter_file(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "AuditParser", PyAuditParser)
    expected = [strict(o) for o in records.iter_file(str(log), "n")]
    monkeypatch.setattr(records, "AuditParser", CParser)
    assert [strict(o) for o in records.iter_file(str(log), "n")] == expected


def shuffled(lines: list[bytes], rnd: random.Random, width: int) -> list[bytes]:
    """Lines shuffled within consecutive blocks of `width`."""
    out = []
    for i in range(0, len(lines), width):
        block = lines[i : i + width]
        rnd.shuffle(block)
        out += block
    return out


def duplicated(lines: list[bytes], rnd: random.Random, share: float) -> list[bytes]:
    """Some lines repeated, right after themselves or a few lines later."""
    out = list(lines)
    for _ in range(int(len(lines) * share)):
        i = rnd.randrange(len(out))
        out.insert(min(len(out), i + rnd.choice([1, 1, 2, 5, 40])), out[i])
    return out


def truncated(lines: list[bytes], rnd: random.Random, share: float) -> list[bytes]:
    """Some lines cut at a random byte (with or without their newline)."""
    out = list(lines)
    for _ in range(int(len(lines) * share)):
        i = rnd.randrange(len(out))
        cut = out[i][: rnd.randrange(len(out[i]) + 1)]
        out[i] = cut + (b"\n" if rnd.random() < 0.5 else b"")
    return out


JUNK = [
    b"", b"\n", b"\r\n", b"garbage\n", b"\xff\xfe\x00 binary\n", b"type=\n",
    b"type=SYSCALL msg=audit(\n", b"type=SYSCALL msg=audit(1.2:3)\n",
    b"type=SYSCALL msg=audit(1795305766.453:83115):\n",
    b"node= type=PATH msg=audit(1.1:1): x\n",
    b"type=USER_START msg=audit(1795305766.470:99): pid=1 uid=0 res=success\n",
    b"type=EOE msg=audit(1795305766.470:83120): \n",
    "type=CWD msg=audit(1795305766.470:83120): cwd=\"/caf\u00e9\"\n".encode(),
    b"type=AVC msg=audit(1795305766.470:5): avc: denied \x1d\xff\xfe\n",
]  # fmt: skip


def junked(lines: list[bytes], rnd: random.Random, n: int) -> list[bytes]:
    out = list(lines)
    for _ in range(n):
        j = rnd.choice(JUNK) if rnd.random() < 0.7 else rnd.randbytes(rnd.randrange(60))
        out.insert(rnd.randrange(len(out) + 1), j)
    return out


def with_eoe_and_nodes(lines: list[bytes], rnd: random.Random) -> list[bytes]:
    """EOE after some PROCTITLEs (as audisp streams have them), node= on some events."""
    out = []
    for line in lines:
        if line.startswith(b"type=") and b"msg=audit(" in line:
            stamp = line[line.index(b"msg=audit(") : line.index(b")") + 1]
            if hash(stamp) % 5 == 0:
                line = b"node=host" + str(hash(stamp) % 3).encode() + b" " + line
            out.append(line)
            if line.find(b"type=PROCTITLE ") >= 0 and rnd.random() < 0.5:
                head = line[: line.index(b"type=")]
                out.append(head + b"type=EOE " + stamp + b": \n")
        else:
            out.append(line)
    return out


MUTATIONS: dict[str, Callable[[list[bytes], random.Random], list[bytes]]] = {
    "shuffle3": lambda ls, r: shuffled(ls, r, 3),
    "shuffle8": lambda ls, r: shuffled(ls, r, 8),
    "duplicate": lambda ls, r: duplicated(ls, r, 0.05),
    "truncate": lambda ls, r: truncated(ls, r, 0.05),
    "junk": lambda ls, r: junked(ls, r, 200),
    "eoe_nodes": with_eoe_and_nodes,
    "crlf": lambda ls, r: [ln.rstrip(b"\n") + (b"\r\n" if r.random() < 0.5 else b"") for ln in ls],
    "all": lambda ls, r: junked(truncated(duplicated(shuffled(ls, r, 5), r, 0.03), r, 0.03), r, 50),
}  # fmt: skip


@needs_c
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_mutated_real_logs(log: Path, mutation: str) -> None:
    rnd = random.Random(f"{log.name}/{mutation}")
    lines = _lines(log)
    start = rnd.randrange(max(1, len(lines) - 4000))
    same(MUTATIONS[mutation](lines[start : start + 4000], rnd))


@needs_c
@pytest.mark.parametrize("window", [0, 1, 3, 40])
def test_small_windows_on_a_shuffled_log(window: int) -> None:
    rnd = random.Random(window)
    lines = _lines(DATA / "pipeline.audit.log")[:3000]
    same(duplicated(shuffled(lines, rnd, 6), rnd, 0.02), window=window, default_node="d")


@needs_c
def test_bounded_memos_and_done_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memo dicts are cleared at MEMO_LIMIT and emitted keys kept in two generations."""
    monkeypatch.setattr(records, "MEMO_LIMIT", 16)
    records._bind_compiled()  # the compiled core reads the limit at bind time
    try:
        lines = _lines(DATA / "two_runs.audit.log")
        same(lines, window=8)
        p = CParser(window=8)  # type: ignore[misc]
        for line in lines:
            p.feed(line)
            assert len(p._done) <= p._done_cap and len(p._done_old) <= p._done_cap + 1
        for memo in (p._m_ident, p._m_ts, p._m_name, p._m_path, p._m_cwd, p._m_title):
            assert 0 < len(memo) <= 16
        assert p._done_cap == 1024 and len(p._done_old) == 1025
    finally:
        monkeypatch.undo()
        records._bind_compiled()


# --------------------------------------------------------------------------- feed_block


def groups_by_feed(lines: list[bytes], **kw: object) -> list:
    """What feed_block must return, from PyAuditParser.feed line by line."""
    p = PyAuditParser(**kw)  # type: ignore[arg-type]
    out, offset = [], 0
    for line in lines:
        items = p.feed(line, offset)
        offset += len(line)
        if items:
            out.append((offset, p.pending, p.records, strict(items)))
    return [*out, strict(p.flush())]


def groups_by_block(cls: type, data: bytes, rnd: random.Random, **kw: object) -> list:
    """feed_block over blocks of random sizes, each cut anywhere (the tail is carried)."""
    p = cls(**kw)
    out, offset, rest, i = [], 0, b"", 0
    while i < len(data):
        size = rnd.choice([1, 50, 700, 3000, 20000])
        block = rest + data[i : i + size]
        i += size
        out += [(end, pend, recs, strict(items)) for end, pend, recs, items in
                p.feed_block(block, offset)]  # fmt: skip
        end = block.rfind(b"\n") + 1
        offset, rest = offset + end, block[end:]
    return [*out, strict(p.flush())]


@needs_c
@pytest.mark.parametrize("mutation", ["none", "all", "crlf"])
def test_feed_block_matches_feed(mutation: str) -> None:
    rnd = random.Random(mutation)
    lines = _lines(DATA / "two_runs.audit.log")[:5000]
    if mutation != "none":
        lines = [ln + b"\n" if not ln.endswith(b"\n") else ln
                 for ln in MUTATIONS[mutation](lines, rnd)]  # fmt: skip
    data = b"".join(lines)
    lines = [ln + b"\n" for ln in data.split(b"\n")[:-1]]  # as a file splits (junk has \n)
    expected = groups_by_feed(lines, window=5)
    for cls in (PyAuditParser, CParser):
        assert groups_by_block(cls, data, random.Random(1), window=5) == expected, cls


@needs_c
def test_feed_block_leaves_the_tail_and_takes_any_buffer() -> None:
    a, b = openat(1), openat(2)
    for cls in (PyAuditParser, CParser):
        p = cls()  # type: ignore[operator]
        data = b"".join(a) + b[0][:-5]
        groups = p.feed_block(memoryview(data), 100)
        assert [(end, pend, recs) for end, pend, recs, _ in groups] == [
            (100 + len(b"".join(a)), 0, 4)
        ]
        assert p.records == 4 and p.pending == 0

# Values a field may take instead of its own: forms int() accepts that the fast path does
# not parse, broken encodings, separators.
ODD_VALUES = [
    b"", b"0", b"-1", b"+1", b"1_0", b"0x10", b" 1", b"99999999999999999999", b"ffffffffffffffff1",
    b"(null)", b'"', b'"x', b'""', b"414", b"4142", b"zz", b"?", b"\x1d", b"a=b", b"yes", b"no",
    b"maybe", b"\xc3\xa9", b"\t1", b"1\x1dX=y",
]  # fmt: skip


def mutate_record(line: bytes, rnd: random.Random) -> bytes:
    """One field of a record changed: value, name, order, spacing or presence."""
    head, sep, body = line.rstrip(b"\n").partition(b"): ")
    if not sep:
        return line
    fields = body.split(b" ")
    i = rnd.randrange(len(fields))
    k, eq, v = fields[i].partition(b"=")
    op = rnd.randrange(7)
    if op == 0:
        fields[i] = k + b"=" + rnd.choice(ODD_VALUES)
    elif op == 1:
        del fields[i]
    elif op == 2 and len(fields) > 1:
        j = rnd.randrange(len(fields))
        fields[i], fields[j] = fields[j], fields[i]
    elif op == 3:
        fields.insert(i, b"")  # a double space
    elif op == 4:
        fields.insert(i, fields[i])  # a repeated field
    elif op == 5:
        fields[i] = v + eq + k  # swapped name and value
    else:
        fields[i] = fields[i][: rnd.randrange(len(fields[i]) + 1)]
    return head + sep + b" ".join(fields) + b"\n"


@needs_c
@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_records_with_mutated_fields(log: Path) -> None:
    rnd = random.Random(log.name)
    lines = _lines(log)
    for _ in range(6):
        start = rnd.randrange(len(lines) - 2000)
        chunk = lines[start : start + 2000]
        same([mutate_record(ln, rnd) if rnd.random() < share(ln) else ln for ln in chunk])


def share(line: bytes) -> float:
    """How often a record is mutated: rare record types more often than common ones."""
    return 0.9 if line.startswith((b"type=EXECVE", b"type=SOCKADDR", b"type=FD_PAIR")) else 0.2


@needs_c
def test_hand_written_edge_cases() -> None:
    lines = [
        *openat(1),
        # internal error path: a node name that is not ASCII (allowed after \x1d)
        "node=a\x1d\u00e9 type=SYSCALL msg=audit(1.001:2): arch=c000003e syscall=3 success=yes "
        "exit=0 a0=1 a1=2 a2=3 a3=4 items=0 ppid=1 pid=2 auid=0 uid=0 gid=0 euid=0 suid=0 "
        'fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="x" exe="/x" key=(null)\n'.encode(),
        "node=a\x1d\u00e9 type=PROCTITLE msg=audit(1.001:2): proctitle=78\n".encode(),
        # big serial and nanosecond stamp: the Python path computes them
        sysc(10**20, items=0, ts="1700000000.123456789"),
        title(10**20, ts="1700000000.123456789"),
        # execve: null, empty and hex arguments, argc 0, a PATH with an unusual item number
        sysc(3, 59, items=1, exit=0),
        rec("EXECVE", 3, 'argc=4 a0=(null) a1= a2=2D6C a3="x=y"'),
        path(3, 7, '"/bin/x"'),
        title(3),
        sysc(4, 59, items=0, exit=0),
        rec("EXECVE", 4, "argc=0"),
        title(4),
        sysc(5, 59, items=0, exit=0),
        rec("EXECVE", 5, 'argc=1  a0="x"  \x1dARGC=1'),
        title(5),
        # values the kernel never writes: odd-length hex, unterminated quotes
        sysc(14, 59, items=0, exit=0),
        rec("EXECVE", 14, "argc=2 a0=78 a1=414"),
        title(14),
        sysc(15, 59, items=0, exit=0),
        rec("EXECVE", 15, 'argc=1 a0="x'),
        title(15),
        sysc(16, 42, items=0, exit=0),
        rec("SOCKADDR", 16, "saddr=02004A627F00000"),
        title(16),
        # FD_PAIR and SOCKADDR in forms only the Python path reads
        sysc(6, 293, items=0, exit=0),
        rec("FD_PAIR", 6, "  fd0=3 fd1=4  "),
        title(6),
        sysc(7, 293, items=0, exit=0),
        rec("FD_PAIR", 7, "fd0=3  fd1=4"),
        title(7),
        sysc(8, 42, items=0, exit=0),
        rec("SOCKADDR", 8, 'saddr="ab"'),
        title(8),
        sysc(9, 42, items=0, exit=0),
        rec("SOCKADDR", 9, "saddr=0200"),
        title(9),
        sysc(11, 42, items=0, exit=0),
        rec("SOCKADDR", 11, "saddr=02004A627F000001 x=1"),
        title(11),
        # a record for a done event, a late EOE, a user message sharing a stamp
        *openat(12),
        rec("CWD", 12, 'cwd="/"'),
        rec("EOE", 12, ""),
        rec("USER_CMD", 13, "pid=1"),
        sysc(13, items=0),
        title(13),
    ]
    for window in (0, 1, 256):
        same(lines, window=window, default_node="d")


# --------------------------------------------------------------------------- API


@needs_c
def test_api_matches() -> None:
    for cls in (PyAuditParser, CParser):
        p = cls("n1", window=3)  # type: ignore[operator]
        assert (p.default_node, p.window, p.records, p.skipped, p.pending) == ("n1", 3, 0, 0, 0)
        assert p.feed(line=sysc(1, items=0)) == [] and p.feed(sysc(2, items=0), offset=5) == []
        assert p.pending == 2 and p.records == 2
        p.default_node = "n2"
        out = p.flush()
        assert [(e.node, e.offset) for e in out] == [("n2", -1), ("n2", 5)]  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="window must be >= 0"):
            cls(window=-1)  # type: ignore[operator]
        with pytest.raises(TypeError):
            p.feed("text")  # type: ignore[arg-type]


@needs_c
def test_uninitialised_subclass_raises() -> None:
    class Lazy(CParser):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            pass

    with pytest.raises(RuntimeError):
        Lazy().feed(b"x")


@needs_c
def test_reentrant_use_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parser shared between threads (or called back into) raises instead of crashing."""
    calls = []
    build = records._build_event

    def reenter(p, *args):
        for call in (lambda: p.feed(b"x"), p.flush, lambda: p.feed_block(b"x\n", 0)):
            with pytest.raises(RuntimeError, match="already running"):
                call()
        calls.append(args[0])
        return build(p, *args)

    monkeypatch.setattr(records, "_build_event", reenter)
    records._bind_compiled()
    try:
        p = CParser()  # type: ignore[misc]
        p.feed(rec("CONFIG_CHANGE", 9, "op=add_rule res=1"))
        assert p.flush() == [] and calls == [b"1700000000.123:9"] and p.skipped == 1
        assert p.feed(sysc(10, items=0)) == []  # usable afterwards
    finally:
        monkeypatch.undo()
        records._bind_compiled()


# --------------------------------------------------------------------------- generated


@needs_c
@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(0, 4))
def test_arbitrary_bytes(lines: list[bytes], window: int) -> None:
    same(lines, window=window)


@needs_c
@SETTINGS
@given(st.lists(record_like(), max_size=25), st.integers(0, 4))
def test_broken_records(lines: list[bytes], window: int) -> None:
    same(lines, window=window)


@needs_c
@SETTINGS
@given(scenario(), st.integers(0, 3))
def test_generated_events(sc: tuple, window: int) -> None:
    _, lines, _ = sc
    same(lines, window=window)


_REAL = _lines(DATA / "pipeline.audit.log")[:3000] if LOGS else [b""]


@needs_c
@SETTINGS
@given(
    st.integers(0, len(_REAL) - 40),
    st.lists(st.tuples(st.integers(0, 39), st.integers(0, 2**32)), max_size=8),
    st.integers(0, 4),
)
def test_mutated_real_events(start: int, edits: list[tuple[int, int]], window: int) -> None:
    """40 consecutive real lines, some fields mutated, some lines moved or repeated."""
    lines = _REAL[start : start + 40]
    for i, seed in edits:
        rnd = random.Random(seed)
        kind = seed % 4
        if kind == 0:
            lines[i] = mutate_record(lines[i], rnd)
        elif kind == 1:
            lines.insert(rnd.randrange(len(lines) + 1), lines[i])
        elif kind == 2:
            lines.insert(rnd.randrange(len(lines) + 1), lines.pop(i % len(lines)))
        else:
            b = bytearray(lines[i])
            b[rnd.randrange(len(b))] = rnd.randrange(256)
            lines[i] = bytes(b)
    same(lines, window=window)
