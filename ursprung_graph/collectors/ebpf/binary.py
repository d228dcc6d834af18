"""The compiled loader's binary records (``ursprung_ebpf.h``: ``struct rec``) -> the same
neutral :class:`~.records.Call` and :class:`~.records.Lost` items as the bpftrace output.

A record is a 96-byte little-endian header (its size, type, syscall number, thread,
process, CLOCK_MONOTONIC time, result, four arguments, three extra words, the lengths of
its strings) followed by its strings, each with its NUL: one or two names (a syscall), or
an exec's file name and then its argv elements. The loader copies the kernel's ring buffer
unchanged, so there is no text to format or split: one ``struct.unpack_from`` per record.
:class:`BinaryParser` has the interface of :class:`~.records.RecordParser`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ...schema.names import name_from_bytes
from .program import SYSCALLS, syscall_numbers
from .records import Call, Lost, address_from_words

HEADER = struct.Struct("<HBBIIIQq4q3qHHI")
assert HEADER.size == 96
FLAG_CUT = 1
CALL, EXEC, EXECED, TASK, EXIT, MARK, LOST, READY = (ord(c) for c in "SVENXRLA")


def _name(data: bytes) -> str:
    return name_from_bytes(data[:-1] if data.endswith(b"\0") else data)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


@dataclass
class BinaryParser:
    """Feeds byte blocks of the loader's output; returns completed calls and gaps.
    ``clock_offset``: epoch ns minus CLOCK_MONOTONIC ns."""

    clock_offset: int
    machine: str | None = None
    bad: int = 0
    spurious: int = 0  # (always 0: records are never split)
    markers: int = 0  # READY and ``R`` records seen (see program.Target.ready_pid)
    messages: list[str] = field(default_factory=list)
    _names: dict[int, str] = field(default_factory=dict)
    _rest: bytes = b""
    _last_ts: int = 0

    def __post_init__(self) -> None:
        self._names = {nr: name for name, nr in syscall_numbers(self.machine).items()}

    def feed(self, data: bytes) -> list[Call | Lost]:
        buf = self._rest + data if self._rest else data
        out: list[Call | Lost] = []
        off, end, size_of = 0, len(buf), HEADER.size
        unpack = HEADER.unpack_from
        while end - off >= size_of:
            (size, kind, flags, nr, tid, pid, ts, ret, a0, a1, a2, a3, x0, x1, x2, len1,
             len2, _) = unpack(buf, off)
            if size < size_of:  # the stream is not the loader's: nothing after is readable
                self.bad += 1
                self.messages.append("the eBPF loader's output is corrupt")
                off = end
                break
            if end - off < size:
                break
            ts += self.clock_offset
            body = buf[off + size_of:off + size]
            off += size
            if kind == CALL:
                name = self._names.get(nr)
                if name is None:
                    self.bad += 1
                    continue
                self._last_ts = ts
                out.append(self._call(name, tid, pid, ts, ret, (a0, a1, a2, a3),
                                      (x0, x1, x2), body, len1, len2, flags))
            elif kind == EXEC:
                name = self._names.get(nr)
                if name is None:
                    self.bad += 1
                    continue
                strings = body[len1:].split(b"\0")[:len2]
                out.append(Call(name, tid, pid, ts, 0, args=(_s32(a0),),
                                path=_name(body[:len1]),
                                argv=[name_from_bytes(s) for s in strings],
                                cut=bool(flags & FLAG_CUT)))
            elif kind == TASK:
                out.append(Call("clone", tid, pid, ts, 0, child=ret, flags=a0))
            elif kind == EXECED:
                out.append(Call("exec", tid, pid, ts, 0, old_tid=ret))
            elif kind == EXIT:
                out.append(Call("exit", tid, pid, ts, ret, group_dead=a0 == 1))
            elif kind in (MARK, READY):
                self.markers += 1
            elif kind == LOST:
                out.append(Lost(ret, self._last_ts or ts))
            else:
                self.bad += 1
        self._rest = buf[off:]
        return out

    def finish(self) -> list[Call | Lost]:
        """The end of the output: a record cut short by the loader's end is bad."""
        if self._rest:
            self.bad += 1
            self._rest = b""
        return []

    @staticmethod
    def _call(name: str, tid: int, pid: int, ts: int, ret: int, args: tuple[int, ...],
              extra: tuple[int, int, int], body: bytes, len1: int, len2: int,
              flags: int) -> Call:
        call = Call(name, tid, pid, ts, ret, args=args, cut=bool(flags & FLAG_CUT))
        shape = SYSCALLS[name]
        first = body[:len1] if len1 else None
        if shape.extra == "pipe":
            call.fds = (_s32(extra[0]), _s32(extra[1]))
        elif shape.extra == "how":
            call.flags = extra[0]
        elif shape.extra == "sockaddr":
            call.addr, _ = address_from_words(*extra)
            if call.addr is not None and call.addr.family == "unix":
                if first is not None:
                    text = _name(first)
                    call.addr.address = ("@" + text) if call.addr.port == -1 else text
                call.addr.port = None
            return call
        if first is not None:
            call.path = _name(first)
        if len2:
            call.path2 = _name(body[len1:len1 + len2])
        return call
