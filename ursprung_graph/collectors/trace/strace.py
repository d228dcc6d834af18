"""strace's text output -> complete syscall records.

``strace -f -ttt -q -s N -e signal=none -o FILE`` writes one line per syscall::

    12140 1795305827.351803 openat(AT_FDCWD, "d/a.txt", O_WRONLY|O_CREAT, 0666) = 3

With ``-f`` a call of one process may be cut by calls of others::

    12142 1795305827.357029 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
    12144 1795305827.357297 dup2(3, 0 <unfinished ...>
    12142 1795305827.357309 <... clone resumed>, child_tidptr=0x7f4a) = 12144

:class:`StraceParser` joins the halves (the call keeps the time of its first half, when it
was entered) and parses the argument list into a small tree: strings (bytes, C escapes
decoded), arrays, structs (``{k=v, ...}``) and bare words. Exit lines
(``+++ exited with 1 +++``, ``+++ killed by SIGKILL +++``) become calls named ``+++exit``.
Anything else (signals, ``--- ... ---``, strace's own notes) is ignored; a line that cannot be
parsed is counted in ``bad`` and never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...schema.names import name_from_bytes

_LINE = re.compile(r"(\d+) +(\d+)\.(\d+) (.*)\Z", re.S)
_UNFINISHED = " <unfinished ...>"
_RESUMED = re.compile(r"<\.\.\. ([a-z0-9_]+) resumed>(.*)\Z", re.S)
_CALL = re.compile(r"([a-z0-9_]+)\((.*)\) += (.*)\Z", re.S)
_EXITED = re.compile(r"\+\+\+ (?:exited with (\d+)|killed by (SIG[A-Z0-9]+|\d+))")
_RET = re.compile(r"(-?\d+|0x[0-9a-f]+|\?)(?: ([A-Z][A-Z0-9_]*))?")
#: The two calls that make most of a trace, parsed without the general argument parser
#: (same result): ``close(N)`` and ``openat(DIRFD, "plain path", FLAGS[, MODE])``. A path
#: with escapes or cut by ``-s`` does not match and takes the general way.
_FAST_CLOSE = re.compile(r"close\((\d+)\) += (-?\d+)(?: ([A-Z][A-Z0-9_]*))?")
_FAST_OPENAT = re.compile(
    r'openat\((AT_FDCWD|-?\d+), "([^"\\]*)", ([A-Z0-9_|]+)(?:, (0[0-7]*))?\) += '
    r"(-?\d+)(?: ([A-Z][A-Z0-9_]*))?")

#: Both fast calls as whole lines, with their thread and time: one match per line for most
#: of a trace.
_FAST_LINE = re.compile(
    r"(\d+) +(\d+)\.(\d+) (?:close\((\d+)\) += (-?\d+)(?: ([A-Z][A-Z0-9_]*))?"
    r'|openat\((AT_FDCWD|-?\d+), "([^"\\]*)", ([A-Z0-9_|]+)(?:, (0[0-7]*))?\) += '
    r"(-?\d+)(?: ([A-Z][A-Z0-9_]*))?)")

SIGNALS = {
    "SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6,
    "SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12,
    "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15, "SIGXCPU": 24, "SIGXFSZ": 25,
}


@dataclass(slots=True)
class Call:
    """One complete syscall (or ``+++exit``) of thread ``tid`` entered at ``ts`` (epoch ns).
    ``ret`` is None for ``?``; ``error`` is the errno name of a failed call."""

    tid: int
    ts: int
    name: str
    args: list
    ret: int | None
    error: str | None
    line: int


class StraceParser:
    """Feeds lines in file order, returns the calls they complete."""

    def __init__(self) -> None:
        self._open: dict[int, tuple[int, str, str]] = {}  # tid -> (ts, name, first half)
        self.lines = 0
        self.bad = 0

    def feed(self, line: str) -> Call | None:
        self.lines += 1
        f = _FAST_LINE.match(line)
        if f is not None:
            tid, sec, frac, fd, ret, error, dirfd, path, flags, mode, ret2, error2 = f.groups()
            ts = int(sec) * 1_000_000_000 + (int(frac) * 1000 if len(frac) == 6
                                             else int(frac.ljust(9, "0")[:9]))
            if fd is not None:
                return Call(int(tid), ts, "close", [Word(fd)], int(ret), error, self.lines)
            args = [Word(dirfd), path.encode("utf-8", "surrogateescape"), Word(flags)]
            if mode is not None:
                args.append(Word(mode))
            return Call(int(tid), ts, "openat", args, int(ret2), error2, self.lines)
        m = _LINE.match(line.rstrip("\n"))
        if m is None:
            if line.strip():
                self.bad += 1
            return None
        tid = int(m.group(1))
        frac = m.group(3)
        ts = int(m.group(2)) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])
        rest = m.group(4)
        if rest.endswith(_UNFINISHED):
            head = rest[: -len(_UNFINISHED)]
            paren = head.find("(")
            if paren <= 0:
                self.bad += 1
                return None
            self._open[tid] = (ts, head[:paren], head)
            return None
        if rest.startswith("<..."):
            r = _RESUMED.match(rest)
            if r is None:
                self.bad += 1
                return None
            started = self._open.pop(tid, None)
            if started is None or started[1] != r.group(1):
                self.bad += 1
                return None
            ts, rest = started[0], started[2] + r.group(2)
        elif rest.startswith("+++"):
            e = _EXITED.match(rest)
            if e is None:
                return None
            if e.group(1) is not None:
                code = int(e.group(1))
            else:
                sig = e.group(2)
                code = 128 + (int(sig) if sig.isdigit() else SIGNALS.get(sig, 0))
            self._open.pop(tid, None)
            return Call(tid, ts, "+++exit", [], code, None, self.lines)
        elif not rest[:1].isalpha():
            return None  # --- signals ---, notes
        if rest[0] == "c" and rest.startswith("close("):
            f = _FAST_CLOSE.match(rest)
            if f is not None:
                return Call(tid, ts, "close", [Word(f.group(1))], int(f.group(2)), f.group(3),
                            self.lines)
        elif rest[0] == "o" and rest.startswith("openat("):
            f = _FAST_OPENAT.match(rest)
            if f is not None:
                args = [Word(f.group(1)), f.group(2).encode("utf-8", "surrogateescape"),
                        Word(f.group(3))]
                if f.group(4) is not None:
                    args.append(Word(f.group(4)))
                return Call(tid, ts, "openat", args, int(f.group(5)), f.group(6), self.lines)
        c = _CALL.match(rest)
        if c is None:
            self.bad += 1
            return None
        ret_text = c.group(3)
        r = _RET.match(ret_text)
        if r is None:
            self.bad += 1
            return None
        value = r.group(1)
        ret = None if value == "?" else int(value, 16 if value.startswith("0x") else 10)
        try:
            args = parse_args(c.group(2))
        except ValueError:
            self.bad += 1
            return None
        return Call(tid, ts, c.group(1), args, ret, r.group(2), self.lines)


# --------------------------------------------------------------------------- arguments


class Struct(dict):
    """``{k=v, ...}`` (a struct); positional items of a mixed struct go under their index."""


class Word(str):
    """A bare token: a number, a constant, flags ``A|B``, an expression like ``htons(80)``."""


_ESCAPES = {"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "a": 7, "b": 8, "\\": 92, '"': 34,
            "'": 39, "?": 63, "e": 27}


def parse_args(text: str) -> list:
    """The top-level arguments of a call, as a list of values (see module docstring)."""
    value, pos = _items(text, 0, "")
    if pos != len(text):
        raise ValueError(f"trailing text at {pos}")
    return value


def _items(text: str, pos: int, close: str) -> tuple[list, int]:
    items: list = []
    n = len(text)
    while pos < n:
        while pos < n and text[pos] == " ":
            pos += 1
        if pos >= n:
            break
        if close and text[pos] == close:
            return items, pos + 1
        item, pos = _value(text, pos)
        items.append(item)
        while pos < n and text[pos] == " ":
            pos += 1
        if pos < n and text[pos] == ",":
            pos += 1
        elif close and pos < n and text[pos] == close:
            return items, pos + 1
        elif pos < n and text[pos] not in ",":
            # an abbreviated tail (``...``), a comment, or => {...}: keep as a word
            word, pos = _word(text, pos)
            items.append(word)
    if close:
        raise ValueError(f"missing {close!r}")
    return items, pos


def _value(text: str, pos: int):
    ch = text[pos]
    if ch == '"':
        return _string(text, pos)
    if ch == "[":
        return _items(text, pos + 1, "]")
    if ch == "{":
        items, end = _items(text, pos + 1, "}")
        struct = Struct()
        for i, item in enumerate(items):
            if isinstance(item, Word) and "=" in item and not item.startswith("="):
                k, _, v = item.partition("=")
                struct[k] = Word(v)
            elif isinstance(item, tuple):
                struct[item[0]] = item[1]
            else:
                struct[i] = item
        return struct, end
    return _word(text, pos)


def _word(text: str, pos: int):
    """A bare token up to the next top-level comma or closer; ``k=VALUE`` where VALUE is a
    string, array or struct becomes the tuple (k, value)."""
    start = pos
    n = len(text)
    depth = 0
    while pos < n:
        ch = text[pos]
        if ch == "=" and depth == 0 and pos + 1 < n and text[pos + 1] in '"[{':
            key = text[start:pos].strip()
            value, pos = _value(text, pos + 1)
            return (key, value), pos
        if ch == '"':
            _, pos = _string(text, pos)
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif ch == "," and depth == 0:
            break
        pos += 1
    return Word(text[start:pos].strip()), pos


def _string(text: str, pos: int) -> tuple[bytes, int]:
    """A C string literal (strace escapes) starting at the quote; a trailing ``...`` (strace
    truncated it) is skipped."""
    out = bytearray()
    pos += 1
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch == '"':
            pos += 1
            if text.startswith("...", pos):
                pos += 3
            return bytes(out), pos
        if ch == "\\" and pos + 1 < n:
            nxt = text[pos + 1]
            if nxt in "01234567":
                end = pos + 1
                while end < n and end < pos + 4 and text[end] in "01234567":
                    end += 1
                out.append(int(text[pos + 1:end], 8) & 0xFF)
                pos = end
                continue
            if nxt == "x":
                end = pos + 2
                while end < n and end < pos + 4 and text[end] in "0123456789abcdefABCDEF":
                    end += 1
                out.append(int(text[pos + 2:end], 16))
                pos = end
                continue
            out.append(_ESCAPES.get(nxt, ord(nxt) if ord(nxt) < 128 else 63))
            pos += 2
            continue
        out += ch.encode("utf-8", "surrogateescape")
        pos += 1
    raise ValueError("unterminated string")


def text_of(value: object) -> str | None:
    """A path or argv element in the text form of names (:mod:`...schema.names`)."""
    if isinstance(value, bytes):
        return name_from_bytes(value)
    return None


def int_of(value: object, names: dict[str, int] | None = None) -> int:
    """A number, a named constant, or flags ``A|B|0x10`` as an int (unknown names: 0)."""
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return 0
    if names is None and value.isdigit() and (value[0] != "0" or len(value) == 1):
        return int(value)  # a descriptor, most of the time (a leading 0 is octal)
    cache = _int_cache(names)
    total = cache.get(value)
    if total is None:
        total = _int_of(value, names)
        if len(cache) < _INT_CACHE_SIZE:
            cache[value] = total
    return total


_INT_CACHE_SIZE = 4096
_int_caches: dict[int, tuple[object, dict[str, int]]] = {}


def _int_cache(names: dict[str, int] | None) -> dict[str, int]:
    """Flag words repeat (``O_RDONLY|O_CLOEXEC`` thousands of times): one cache per name
    table."""
    entry = _int_caches.get(id(names))
    if entry is None or entry[0] is not names:
        entry = _int_caches[id(names)] = (names, {})
    return entry[1]


def _int_of(value: str, names: dict[str, int] | None) -> int:
    total = 0
    for part in value.split("|"):
        part = part.strip()
        try:
            if part.startswith(("0x", "-0x")):
                total |= int(part, 16)
            elif part.startswith("0") and len(part) > 1:
                total |= int(part, 8)
            else:
                total |= int(part)
        except ValueError:
            if names is not None:
                total |= names.get(part, 0)
    return total
