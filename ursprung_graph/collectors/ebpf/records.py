"""The eBPF program's output (:mod:`.program`) -> neutral per-call records, in time order.

:class:`Call` is the tracer-neutral record of one syscall (or task event): its name, the
thread, process and time, the result, and the arguments the OS model needs (descriptors,
directory descriptors, names in the one lossless text form of :mod:`...schema.names`,
flags, a socket address, argv). :class:`RecordParser` assembles them from byte blocks
(records end with ``\\x1e\\n``; a record's strings come on the lines after it, from the same
probe, so from the same CPU's buffer, in order), and :class:`Reorder` puts them in time
order: bpftrace reads one buffer per CPU, so lines of different CPUs arrive out of order.

bpftrace's own lines (``Lost N events`` when the kernel's buffer was full) become
:class:`Lost` gaps; a line that does not parse is counted in ``bad`` and never raises.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...schema.names import name_from_bytes
from .program import CHUNK, SYSCALLS, syscall_numbers

END = b"\x1e\n"
SEP = b"\x1f"
_LOST = re.compile(rb"Lost (\d+) events")
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10


@dataclass(slots=True)
class Address:
    family: str  # unix, inet, inet6
    address: str | None
    port: int | None = None


@dataclass(slots=True)
class Call:
    """One traced call, complete with its result. ``name`` is the syscall, or ``clone``
    (``child``, ``flags`` the clone flags), ``exec`` (a successful exec: ``old_tid`` is the
    thread that called it, ``path``/``argv`` what it asked for) or ``exit`` (``result`` is
    the process's status as a shell reports it, -1 if unknown; ``group_dead``: the last
    thread of the process ended)."""

    name: str
    tid: int
    pid: int
    ts: int  # epoch ns (exit of the call)
    result: int
    args: tuple[int, ...] = ()  # the raw arguments (a0..a3), as the kernel saw them
    path: str | None = None
    path2: str | None = None
    flags: int = 0
    fds: tuple[int, int] | None = None  # pipe
    addr: Address | None = None
    argv: list[str] | None = None
    child: int | None = None
    old_tid: int | None = None
    group_dead: bool = False
    cut: bool = False  # a string was longer than the program prints (it ends early)


@dataclass(slots=True)
class Lost:
    """The kernel dropped ``count`` records (bpftrace's buffer was full) around ``ts``."""

    count: int
    ts: int


@dataclass(slots=True)
class _Pending:
    call: Call
    strings: list[bytearray]
    expected: int  # strings to wait for (exec: until its trailer)
    full: bool = False  # the last chunk was a whole chunk: a continuation may follow

    def done(self) -> bool:
        return 0 <= self.expected <= len(self.strings) and not self.full


def _text(data: bytes | bytearray) -> str:
    return name_from_bytes(bytes(data))


@dataclass
class RecordParser:
    """Feeds byte blocks of the program's output; returns completed calls and gaps (in
    arrival order). ``clock_offset``: epoch ns minus CLOCK_MONOTONIC ns."""

    clock_offset: int
    machine: str | None = None
    bad: int = 0
    spurious: int = 0
    markers: int = 0  # ``R`` lines seen (see program.Target.ready_pid)
    messages: list[str] = field(default_factory=list)
    _names: dict[int, str] = field(default_factory=dict)
    _rest: bytes = b""
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _last_ts: int = 0

    def __post_init__(self) -> None:
        self._names = {nr: name for name, nr in syscall_numbers(self.machine).items()}

    def feed(self, data: bytes) -> list[Call | Lost]:
        out: list[Call | Lost] = []
        parts = (self._rest + data).split(END)
        self._rest = parts.pop()
        for part in parts:
            self._record(part, out)
        return out

    def finish(self) -> list[Call | Lost]:
        """The end of the output: what is still incomplete goes as it is."""
        out: list[Call | Lost] = []
        if self._rest:
            self._messages(self._rest + b"\n", out)
            self._rest = b""
        for tid in list(self._pending):
            out.append(self._complete(tid))
        return out

    # -- internals ---------------------------------------------------------------------

    def _messages(self, text: bytes, out: list[Call | Lost]) -> bytes:
        """bpftrace's own lines before a record: noted (lost events become a gap)."""
        while True:
            nl = text.find(b"\n")
            if nl < 0 or 0 <= text.find(SEP) < nl:
                return text
            line, text = text[:nl], text[nl + 1:]
            m = _LOST.search(line)
            if m is not None:
                out.append(Lost(int(m.group(1)), self._last_ts))
            elif line.strip():
                self.messages.append(line.decode("utf-8", "replace").strip())

    def _record(self, rec: bytes, out: list[Call | Lost]) -> None:
        if b"\n" in rec:
            rec = self._messages(rec, out)
        if not rec:
            return
        lead = rec[0]
        try:
            if lead in b"&+;~":
                head, _, text = rec.partition(SEP)
                tid = int(head[2:])
                pending = self._pending.get(tid)
                if pending is None:
                    self.spurious += 1
                    return
                if lead == 0x7E:  # "~": the kernel printed no more of the last string
                    pending.call.cut = True
                    pending.full = False
                    pending.expected = min(pending.expected, len(pending.strings))
                elif lead == 0x3B:  # ";": the end of an exec's strings
                    pending.full = False
                    pending.expected = len(pending.strings)
                elif lead == 0x2B:  # "+": more of the last string
                    if not pending.full:
                        self.spurious += 1
                        return
                    pending.strings[-1] += text
                    pending.full = len(text) == CHUNK
                else:
                    pending.strings.append(bytearray(text))
                    pending.full = len(text) == CHUNK
                    if pending.expected < 0 and pending.full:
                        pending.call.cut = True  # argv elements are one chunk each
                        pending.full = False
                if pending.done():
                    out.append(self._complete(tid))
                return
            fields = rec.split(b" ")
            if lead == 0x52:  # "R"
                self.markers += 1
                return
            tid, pid, ts = int(fields[1]), int(fields[2]), int(fields[3]) + self.clock_offset
            self._last_ts = ts
            if tid in self._pending:
                out.append(self._complete(tid))
            if lead == 0x4E:  # "N"
                out.append(Call("clone", tid, pid, ts, 0, child=int(fields[4]),
                                flags=int(fields[5])))
            elif lead == 0x45:  # "E"
                out.append(Call("exec", tid, pid, ts, 0, old_tid=int(fields[4])))
            elif lead == 0x58:  # "X"
                out.append(Call("exit", tid, pid, ts, int(fields[4]),
                                group_dead=fields[5] == b"1"))
            else:
                self._syscall(fields, tid, pid, ts, out)
        except (ValueError, IndexError):
            self.bad += 1

    def _syscall(self, f: list[bytes], tid: int, pid: int, ts: int,
                 out: list[Call | Lost]) -> None:
        name = self._names[int(f[0])]
        shape = SYSCALLS[name]
        if f[4] == b"-":  # an exec, printed at enter: strings until its trailer
            call = Call(name, tid, pid, ts, 0, args=(int(f[5]),))
            self._pending[tid] = _Pending(call, [], -1)
            return
        args = (int(f[5]), int(f[6]), int(f[7]), int(f[8]))
        call = Call(name, tid, pid, ts, int(f[4]), args=args)
        expected = len(shape.strings)
        if shape.extra == "pipe":
            call.fds = (int(f[9]), int(f[10]))
        elif shape.extra == "how":
            call.flags = int(f[9])
        elif shape.extra == "sockaddr":
            call.addr, expected = address_from_words(int(f[9]), int(f[10]), int(f[11]))
        if expected == 0:
            out.append(call)
        else:
            self._pending[tid] = _Pending(call, [], expected)

    def _complete(self, tid: int) -> Call:
        pending = self._pending.pop(tid)
        call, strings = pending.call, pending.strings
        if call.addr is not None and call.addr.family == "unix":
            if strings:
                name = _text(strings[0])
                call.addr.address = ("@" + name) if call.addr.port == -1 else name
            call.addr.port = None
        elif SYSCALLS[call.name].argv is not None:
            if strings:
                call.path = _text(strings[0])
                call.argv = [_text(s) for s in strings[1:]]
        else:
            if strings:
                call.path = _text(strings[0])
            if len(strings) > 1:
                call.path2 = _text(strings[1])
        return call


def address_from_words(x0: int, x1: int, x2: int) -> tuple[Address | None, int]:
    """The first 24 bytes of a sockaddr (three little-endian words) -> its address, and
    whether a string (a unix socket's path) follows."""
    raw = b"".join((w & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little") for w in (x0, x1, x2))
    family = raw[0] | raw[1] << 8
    port = int.from_bytes(raw[2:4], "big")
    if family == AF_INET:
        return Address("inet", ".".join(str(b) for b in raw[4:8]), port), 0
    if family == AF_INET6:
        import ipaddress

        return Address("inet6", str(ipaddress.IPv6Address(raw[8:24])), port), 0
    if family == AF_UNIX:
        return Address("unix", None, -1 if x2 == -1 else None), 1
    return None, 0


class Reorder:
    """Releases calls in time order: a call goes out once a call ``lag_ns`` later has come
    (every CPU's buffer is read more often than that), or at :meth:`drain`."""

    def __init__(self, lag_ns: int) -> None:
        self.lag_ns = lag_ns
        self._heap: list[tuple[int, int, Call | Lost]] = []
        self._seq = 0
        self._latest = 0

    def push(self, items: Iterable[Call | Lost]) -> list[Call | Lost]:
        heap = self._heap
        for item in items:
            self._seq += 1
            heapq.heappush(heap, (item.ts, self._seq, item))
            if item.ts > self._latest:
                self._latest = item.ts
        out = []
        limit = self._latest - self.lag_ns
        while heap and heap[0][0] <= limit:
            out.append(heapq.heappop(heap)[2])
        return out

    def release_until(self, ts: int) -> list[Call | Lost]:
        """The calls up to ``ts``, once nothing earlier can come any more (the source has
        been quiet long enough): a quiet stream's last calls do not wait for a later one."""
        heap, out = self._heap, []
        while heap and heap[0][0] <= ts:
            out.append(heapq.heappop(heap)[2])
        return out

    def drain(self) -> list[Call | Lost]:
        out = [item for _, _, item in sorted(self._heap)]
        self._heap.clear()
        return out
