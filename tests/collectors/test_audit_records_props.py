"""Property tests of the raw auditd parser: junk never raises, generated events round-trip."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.collectors.test_audit_records import run
from ursprung_graph.collectors.auditd.records import (
    RAW_LIMIT,
    AuditEvent,
    AuditParser,
    PathItem,
    Rejected,
    SockAddr,
)
from ursprung_graph.collectors.os_model.syscalls import X86_64
from ursprung_graph.schema.names import name_from_bytes, name_to_bytes

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAME_OF = {"openat": 257, "execve": 59, "connect": 42, "pipe2": 293, "close": 3, "unlinkat": 263}
assert all(X86_64[n] == name for name, n in NAME_OF.items())


def encode(b: bytes) -> str:
    """The kernel's audit_log_untrustedstring: quoted if plain, else uppercase hex."""
    if any(c == 0x22 or c < 0x21 or c > 0x7E for c in b):
        return b.hex().upper()
    return '"' + b.decode("ascii") + '"'


def text(b: bytes) -> str:
    """What the parser must give back for encoded bytes: the text form of names, which
    gives the bytes back exactly."""
    out = name_from_bytes(b)
    assert name_to_bytes(out) == b
    return out


def is_header_like(line: bytes) -> bool:
    """Could this line start a record? (Anything else must be a Rejected.)"""
    return line.startswith((b"type=", b"node="))


def outputs(lines: list[bytes], **kw: object) -> tuple[list[AuditEvent], list[Rejected]]:
    """Feed, flush, split (shared with the hand-written tests)."""
    events, dead, _ = run(lines, **kw)
    return events, dead


# --------------------------------------------------------------------------- (1) junk


@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_arbitrary_lines_never_raise_and_junk_is_dead_lettered(lines: list[bytes]) -> None:
    p = AuditParser(window=3)
    for i, line in enumerate(lines):
        out = p.feed(line, i)
        if not line.rstrip(b"\r\n"):
            assert out == []  # a blank line is skipped
        elif not is_header_like(line):
            assert len(out) == 1 and isinstance(out[0], Rejected)
            assert out[0].raw == line.rstrip(b"\r\n")[:RAW_LIMIT] and out[0].offset == i
            assert out[0].reason
    p.flush()
    assert p.pending == 0


_TYPES = st.sampled_from(
    ["SYSCALL", "PATH", "EXECVE", "CWD", "PROCTITLE", "SOCKADDR", "FD_PAIR", "EOE", "AVC", "X"]
)
_BODY_TOKENS = st.sampled_from(
    ["arch=c000003e", "syscall=257", "items=1", "items=2", "success=yes", "exit=-2", "a0=1",
     "a1=zz", "a2=0", "a3=0", "ppid=1", "pid=2", 'name="/x"', "name=4142", "name=414",
     "item=0", "item=x", "nametype=NORMAL", "argc=2", 'a0="x"', "a1_len=4", "a1[0]=4142",
     "cwd=(null)", 'cwd="/t', "proctitle=6C73", "saddr=0200", "saddr=0A00", "fd0=3 fd1=x",
     "=", "==", '"', "\x1d", "\x1dSYSCALL=openat", "(enforce)"]
)  # fmt: skip


@st.composite
def record_like(draw: st.DrawFn) -> bytes:
    """A valid header with a random, usually broken, body."""
    rtype = draw(_TYPES)
    serial = draw(st.integers(1, 4))
    body = " ".join(draw(st.lists(_BODY_TOKENS, max_size=12)))
    noise = draw(st.binary(max_size=20)) if draw(st.booleans()) else b""
    return f"type={rtype} msg=audit(1700000000.001:{serial}): {body}".encode() + noise


@SETTINGS
@given(st.lists(record_like(), max_size=25), st.integers(0, 4))
def test_broken_records_never_raise(lines: list[bytes], window: int) -> None:
    outputs(lines, window=window)


# --------------------------------------------------------------------------- (2) round trip

_BYTES = st.binary(min_size=1, max_size=40).filter(lambda b: 0 not in b)
_PRINTABLE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                     max_size=20).map(str.encode)  # fmt: skip
_NAMEISH = st.one_of(_BYTES, _PRINTABLE)


@dataclass
class Spec:
    """One generated syscall event and the records that express it."""

    serial: int
    node: str | None
    syscall: str
    success: bool
    exit: int
    args: tuple[int, int, int, int]
    pid: int
    ppid: int
    ids: tuple[int, int, int, int]  # auid, uid, gid, euid
    comm: bytes
    exe: bytes
    key: bytes | None
    cwd: bytes | None
    paths: list[tuple[bytes | None, int | None, str]]
    argv: list[bytes] | None
    proctitle: list[bytes] | None
    sockaddr: tuple[bytes, SockAddr] | None
    fd_pair: tuple[int, int] | None
    enriched: bool
    eoe: bool
    lines: list[bytes] = field(default_factory=list)


_SOCKADDRS = st.sampled_from([
    (bytes.fromhex("02004A627F000001") + bytes(8), SockAddr("inet", "127.0.0.1", 19042)),
    (bytes.fromhex("0A0001BB00000000") + bytes(15) + b"\x01" + bytes(4),
     SockAddr("inet6", "::1", 443)),
    (b"\x01\x00/tmp/sock\x00\x00", SockAddr("unix", "/tmp/sock", None)),
    (b"\x01\x00\x00abs\x00", SockAddr("unix", "@abs", None)),
    (bytes.fromhex("100000000000000000000000"), SockAddr("netlink", None, None)),
])  # fmt: skip


@st.composite
def specs(draw: st.DrawFn, serial: int) -> Spec:
    """A random syscall event as the kernel would log it."""
    syscall = draw(st.sampled_from(sorted(NAME_OF)))
    success = draw(st.booleans())
    n_paths = draw(st.integers(0, 3))
    paths = [
        (
            draw(st.one_of(st.none(), _NAMEISH)),
            draw(st.one_of(st.none(), st.integers(0, 2**40))),
            draw(st.sampled_from(["NORMAL", "PARENT", "CREATE", "DELETE", "UNKNOWN"])),
        )
        for _ in range(n_paths)
    ]
    execs = syscall == "execve" and success
    argv = draw(st.lists(st.one_of(_NAMEISH, st.binary(min_size=30, max_size=120).filter(
        lambda b: 0 not in b)), min_size=1, max_size=4)) if execs else None  # fmt: skip
    return Spec(
        serial=serial,
        node=draw(st.sampled_from([None, "n1", "n2"])),
        syscall=syscall,
        success=success,
        exit=draw(st.integers(-4095, 2**31)),
        args=tuple(draw(st.integers(0, 2**64 - 1)) for _ in range(4)),  # type: ignore[arg-type]
        pid=draw(st.integers(1, 2**22)),
        ppid=draw(st.integers(0, 2**22)),
        ids=tuple(draw(st.integers(0, 2**32 - 1)) for _ in range(4)),  # type: ignore[arg-type]
        comm=draw(_NAMEISH.map(lambda b: b[:15])),
        exe=draw(_NAMEISH),
        key=draw(st.one_of(st.none(), _NAMEISH)),
        cwd=draw(st.one_of(st.none(), _NAMEISH)),
        paths=paths,
        argv=argv,
        proctitle=draw(st.one_of(st.none(), st.lists(_NAMEISH, min_size=1, max_size=4))),
        sockaddr=draw(st.one_of(st.none(), _SOCKADDRS)) if syscall == "connect" else None,
        fd_pair=(draw(st.integers(0, 99)), draw(st.integers(0, 99)))
        if syscall == "pipe2"
        else None,  # fmt: skip
        enriched=draw(st.booleans()),
        eoe=draw(st.booleans()),
    )


def render(s: Spec, rnd: random.Random) -> list[bytes]:
    """The spec's records, in the kernel's order (SYSCALL, aux, CWD, PATH, PROCTITLE, EOE)."""
    head = (f"node={s.node} " if s.node else "") + "type={} msg=audit(1700000000.{:03d}:{}): "
    ms = s.serial % 1000

    def line(rtype: str, body: str) -> bytes:
        return (head.format(rtype, ms, s.serial) + body).encode()

    out = []
    auid, uid, gid, euid = s.ids
    res = f"success={'yes' if s.success else 'no'} exit={s.exit}"
    args = " ".join(f"a{i}={a:x}" for i, a in enumerate(s.args))
    body = (
        f"arch=c000003e syscall={NAME_OF[s.syscall]} {res} {args} items={len(s.paths)} "
        f"ppid={s.ppid} pid={s.pid} auid={auid} uid={uid} gid={gid} euid={euid} suid=0 "
        f"fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm={encode(s.comm)} "
        f"exe={encode(s.exe)} key={'(null)' if s.key is None else encode(s.key)}"
    )
    if s.enriched:
        body += f'\x1dARCH=x86_64 SYSCALL={s.syscall} AUID="unset" UID="root"'
    out.append(line("SYSCALL", body))
    if s.argv is not None:
        out += [line("EXECVE", b) for b in execve_bodies(s.argv, rnd)]
    if s.sockaddr is not None:
        out.append(line("SOCKADDR", f"saddr={s.sockaddr[0].hex().upper()}"))
    if s.fd_pair is not None:
        out.append(line("FD_PAIR", f"fd0={s.fd_pair[0]} fd1={s.fd_pair[1]}"))
    if s.cwd is not None:
        out.append(line("CWD", f"cwd={encode(s.cwd)}"))
    for i, (name, inode, nametype) in enumerate(s.paths):
        ino = (
            ""
            if inode is None
            else f"inode={inode} dev=fd:01 mode=0100644 ouid=0 ogid=0 rdev=00:00 "
        )
        nm = "(null)" if name is None else encode(name)
        out.append(line("PATH", f"item={i} name={nm} {ino}nametype={nametype} cap_fp=0 cap_fi=0"))
    if s.proctitle is not None:
        out.append(line("PROCTITLE", "proctitle=" + encode(b"\0".join(s.proctitle))))
    if s.eoe:
        out.append(line("EOE", ""))
    return out


def execve_bodies(argv: list[bytes], rnd: random.Random) -> list[str]:
    """EXECVE records; long arguments split in chunks, spread over several records."""
    fields = [f"argc={len(argv)}"]
    for i, a in enumerate(argv):
        if len(a) < 30:
            fields.append(f"a{i}={encode(a)}")
            continue
        hexed = any(c == 0x22 or c < 0x21 or c > 0x7E for c in a)
        cuts = sorted(rnd.sample(range(1, len(a)), k=rnd.randint(1, 3)))
        chunks = [a[x:y] for x, y in zip([0, *cuts], [*cuts, len(a)], strict=True)]
        fields.append(f"a{i}_len={2 * len(a) if hexed else len(a)}")  # hex: digits
        fields += [
            f"a{i}[{j}]=" + (c.hex().upper() if hexed else '"' + c.decode() + '"')
            for j, c in enumerate(chunks)
        ]
    bodies, cur = [], []
    for f in fields:
        cur.append(f)
        if rnd.random() < 0.3:
            bodies.append(" ".join(cur))
            cur = []
    if cur:
        bodies.append(" ".join(cur))
    return [" " + b if i else b for i, b in enumerate(bodies)]


def check(ev: AuditEvent, s: Spec) -> None:
    """Every generated field comes back."""
    assert (ev.serial, ev.node, ev.syscall, ev.success) == (s.serial, s.node, s.syscall, s.success)
    assert ev.ts == 1_700_000_000_000_000_000 + (s.serial % 1000) * 1_000_000
    assert (ev.exit, ev.args, ev.pid, ev.ppid) == (s.exit, s.args, s.pid, s.ppid)
    assert (ev.auid, ev.uid, ev.gid, ev.euid) == s.ids
    assert (ev.comm, ev.exe) == (text(s.comm), text(s.exe))
    assert ev.key == (None if s.key is None else text(s.key))
    assert ev.cwd == (None if s.cwd is None else text(s.cwd))
    assert ev.paths == [
        PathItem(i, None if n is None else text(n), ino, None if ino is None else "fd:01",
                 None if ino is None else 0o100644, nt)
        for i, (n, ino, nt) in enumerate(s.paths)
    ]  # fmt: skip
    assert ev.argv == (None if s.argv is None else [text(a) for a in s.argv])
    assert ev.proctitle == (None if s.proctitle is None else [text(a) for a in s.proctitle])
    assert ev.sockaddr == (None if s.sockaddr is None else s.sockaddr[1])
    assert ev.fd_pair == s.fd_pair
    # An EOE after PROCTITLE arrives once the event is out: it is not counted.
    assert ev.records == len(s.lines) - (s.eoe and s.proctitle is not None)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[Spec], list[bytes], random.Random]:
    """Events with unique serials, rendered, their records merged in a random interleaving
    that keeps each event's own record order (as concurrent CPUs produce it)."""
    serials = draw(st.lists(st.integers(1, 10**6), min_size=1, max_size=8, unique=True))
    rnd = draw(st.randoms(use_true_random=False))
    evs = [draw(specs(s)) for s in serials]
    for s in evs:
        s.lines = render(s, rnd)
    queues = [list(s.lines) for s in evs]
    merged = []
    while any(queues):
        q = rnd.choice([q for q in queues if q])
        merged.append(q.pop(0))
    return evs, merged, rnd


@SETTINGS
@given(scenario())
def test_generated_events_round_trip_in_any_interleaving(sc: tuple) -> None:
    evs, lines, _ = sc
    events, dead = outputs(lines)
    assert dead == []
    by_key = {(e.node, e.serial): e for e in events}
    assert len(by_key) == len(events) == len(evs)
    for s in evs:
        check(by_key[(s.node, s.serial)], s)


@SETTINGS
@given(scenario())
def test_record_order_within_an_event_does_not_matter_without_end_records(sc: tuple) -> None:
    """Without PROCTITLE/EOE the event completes at flush, so any permutation works."""
    evs, _, rnd = sc
    lines = [
        line for s in evs for line in s.lines
        if b" type=PROCTITLE " not in b" " + line and b" type=EOE " not in b" " + line
    ]  # fmt: skip
    rnd.shuffle(lines)
    events, dead = outputs(lines)
    assert dead == []
    by_key = {(e.node, e.serial): e for e in events}
    for s in evs:
        s.proctitle = None
        s.eoe = False
        s.lines = [ln for ln in s.lines if b"type=PROCTITLE" not in ln and b"type=EOE" not in ln]
        check(by_key[(s.node, s.serial)], s)


# --------------------------------------------------------------------------- (3) junk between


@SETTINGS
@given(
    scenario(),
    st.lists(st.binary(max_size=120).filter(lambda b: b.strip(b"\r\n") and not is_header_like(b)),
             max_size=10),
)
def test_junk_between_records_loses_no_event(sc: tuple, junk: list[bytes]) -> None:
    evs, lines, rnd = sc
    mixed = list(lines)
    for j in junk:
        mixed.insert(rnd.randint(0, len(mixed)), j)
    events, dead = outputs(mixed)
    assert len(dead) == len(junk)
    assert sorted(d.raw for d in dead) == sorted(j.rstrip(b"\r\n")[:RAW_LIMIT] for j in junk)
    by_key = {(e.node, e.serial): e for e in events}
    assert len(by_key) == len(evs)
    for s in evs:
        check(by_key[(s.node, s.serial)], s)


@SETTINGS
@given(scenario(), st.integers(0, 3))
def test_small_window_only_affects_events_without_end_records(sc: tuple, window: int) -> None:
    """A tiny window may cut events short, but never raises or loses an event silently."""
    evs, lines, _ = sc
    events, dead = outputs(lines, window=window)
    accounted = {(e.node, e.serial) for e in events} | {
        (s.node, s.serial)
        for s in evs
        for d in dead
        if re.search(rf"serial {s.serial}\b", d.reason)
    }
    assert {(s.node, s.serial) for s in evs} <= accounted
