"""auditd's own records (``DAEMON_*``) and record stamps: what they say about capture.

auditd writes DAEMON_START when it starts recording, DAEMON_END when it stops (``op=
terminate``), DAEMON_ABORT when it gives up (e.g. a full disk with ``disk_full_action =
suspend``), DAEMON_RESUME when it records again after a suspension, and DAEMON_ROTATE when
it rotates its log. The kernel's events between an END or ABORT and the next START or
RESUME were not recorded by this log: that window is a capture gap. A rotation loses
nothing; it is noted. The parser skips these records as it does every record without a
SYSCALL; :func:`daemon_lines` finds them in a block of lines (one ``bytes.find`` when
there are none).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .records import _ts_serial

#: What a DAEMON_* record means for capture.
STOPS = frozenset((b"DAEMON_END", b"DAEMON_ABORT"))
RESUMES = frozenset((b"DAEMON_START", b"DAEMON_RESUME"))
NOTES = frozenset((b"DAEMON_ROTATE",))

_MARK = b"type=DAEMON_"
_DAEMON = re.compile(
    rb"(?:node=([^ ]+) )?type=(DAEMON_[A-Z_]+) msg=audit\(([0-9]+\.[0-9]+:[0-9]+)\):? ?(.*)")
_STAMP = re.compile(rb"msg=audit\(([0-9]+\.[0-9]+:[0-9]+)\)")
_FIELD = re.compile(rb"\b(op|res|reason|auid|pid)=(\"[^\"]*\"|[^ ]*)")


@dataclass(frozen=True, slots=True)
class DaemonRecord:
    """One DAEMON_* record that matters for capture: ``kind`` stop, resume or note;
    ``node`` when the record names one; ``what`` says it in words; ``end``: the offset just
    after its line."""

    kind: str
    rtype: str
    ts: int
    serial: int
    node: str | None
    what: str
    end: int


def parse_daemon(line: bytes, end: int = -1) -> DaemonRecord | None:
    """A DAEMON_* line -> its record; None for other lines and DAEMON_* types that say
    nothing about capture (CONFIG, ACCEPT, CLOSE, ERR)."""
    m = _DAEMON.match(line.rstrip(b"\r\n"))
    if m is None:
        return None
    node, rtype, stamp, body = m.groups()
    if rtype in STOPS:
        kind = "stop"
    elif rtype in RESUMES:
        kind = "resume"
    elif rtype in NOTES:
        kind = "note"
    else:
        return None
    ts, serial = _ts_serial(stamp)
    fields = {k.decode(): v.strip(b'"').decode("ascii", "replace")
              for k, v in _FIELD.findall(body)}
    detail = ", ".join(f"{k}={fields[k]}" for k in ("op", "reason", "res") if k in fields)
    what = f"auditd {rtype.decode()[7:].lower()}" + (f" ({detail})" if detail else "")
    return DaemonRecord(kind, rtype.decode(), ts, serial, node.decode("ascii", "replace")
                        if node else None, what, end)


def daemon_lines(data: bytes, offset: int) -> Iterator[DaemonRecord]:
    """The DAEMON_* records of a block of lines (``data[0]`` at ``offset``), in order."""
    at = data.find(_MARK)
    while at >= 0:
        start = data.rfind(b"\n", 0, at) + 1
        stop = data.find(b"\n", at)
        stop = len(data) if stop < 0 else stop + 1
        record = parse_daemon(data[start:stop], offset + stop)
        if record is not None:
            yield record
        at = data.find(_MARK, stop)


def record_time(raw: bytes) -> int | None:
    """The time (epoch ns) in an audit record's ``msg=audit(...)`` stamp, None if none."""
    m = _STAMP.search(raw)
    return _ts_serial(m.group(1))[0] if m else None
