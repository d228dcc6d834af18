"""Names are bytes: the one lossless, reversible text form of Linux paths and arguments.

A Linux file name or argument is any string of bytes except NUL (and ``/`` inside a name).
The graph, the wire format and JSON need text, so every source turns names into text the
same way: the bytes are decoded as UTF-8; each byte that is not part of valid UTF-8 becomes
``\\xNN`` (two lowercase hex digits), and a backslash itself becomes ``\\\\``. So the text is
always valid UTF-8, ordinary names (UTF-8, no backslash) are unchanged, and two different
byte strings never give the same text: ``sorted\\xff.txt`` (the byte 0xff) and
``sorted\\\\xff.txt`` (a backslash, then ``xff``) stay two files. :func:`name_to_bytes`
gives the bytes back, for the system calls that need the real name.

Control characters are valid UTF-8 and stay as they are in this form (JSON escapes them);
human output escapes them on top (:func:`printable`).
"""

from __future__ import annotations

import os
import re

_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2})")


def name_from_bytes(raw: bytes) -> str:
    """The text form of a name given as bytes (audit hex fields, strace strings)."""
    if b"\\" in raw:
        raw = raw.replace(b"\\", b"\\\\")
    return raw.decode("utf-8", "backslashreplace")


def name_from_os(name: str) -> str:
    """The text form of a name Python decoded with the file system encoding
    (``sys.argv``, ``os.getcwd()``, ``os.listdir``: undecodable bytes as surrogates)."""
    return name_from_bytes(os.fsencode(name))


def name_from_text(text: str) -> str:
    """The text form of a name that arrived as text (a JSON string from Spectrum Scale):
    its UTF-8 bytes, lone surrogates as the bytes they stand for."""
    return name_from_bytes(text.encode("utf-8", "surrogateescape"))


def name_to_bytes(name: str) -> bytes:
    """The bytes a text-form name stands for (the inverse of :func:`name_from_bytes`)."""
    if "\\" not in name:
        return name.encode("utf-8")
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(name):
        out += name[pos:m.start()].encode("utf-8")
        code = m.group(1)
        out += b"\\" if code == "\\" else bytes([int(code[1:], 16)])
        pos = m.end()
    out += name[pos:].encode("utf-8")
    return bytes(out)


def name_to_os(name: str) -> str:
    """A text-form name as Python's OS functions take it (surrogate-escaped str)."""
    return os.fsdecode(name_to_bytes(name))


_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e"
                     "\u2066-\u2069\ud800-\udfff]")
_SHOWN = re.compile(r"\\\\|\\x([0-7][0-9a-f])|\\u([0-9a-f]{4})")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x80 else f"\\u{c:04x}"


def printable(text: str) -> str:
    """Text from events (paths, command lines, values) as it is safe to print to a
    terminal: every character a terminal would act on (a newline forging a row, an escape
    sequence clearing the screen or setting the title, a C1 CSI, a bidi override reversing
    a name) becomes ``\\xNN`` (below U+0080) or ``\\uNNNN``. Names are stored with their
    backslashes doubled and undecodable bytes as ``\\x80``-``\\xff``
    (above), so these escapes can never be mistaken for a name's own
    characters: two different names never print the same, and :func:`unprintable` gives
    the stored text back. Every human output of the CLI and every report cell the GUI shows
    or downloads goes through this; JSON output is
    exact instead."""
    return _UNSAFE.sub(_escape, text)


def unprintable(shown: str) -> str:
    """The stored text :func:`printable` was given (for a user who copies a name back)."""
    def back(m: re.Match[str]) -> str:
        code = m.group(1) or m.group(2)
        return m.group() if code is None else chr(int(code, 16))

    return _SHOWN.sub(back, shown)
