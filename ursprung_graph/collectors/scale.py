"""IBM Spectrum Scale file events -> normalized events.

Two input formats, one JSON object per line (or per Kafka message):

* **Watch folder** (``"WF_JSON"``; `mmwatch`, sink Kafka topic or a file of JSON lines):
  ``event`` is an inotify name, possibly combined with ``IN_ISDIR``; a rename is
  ``IN_MOVED_FROM`` then ``IN_MOVED_TO`` with the same ``cookie``.
* **File audit logging** (``"LWE_JSON"``): OPEN, CREATE, CLOSE, CLOSEWRITE, RENAME (with
  ``oldPath``), UNLINK, RMDIR, DESTROY, XATTRCHANGE, ACLCHANGE, GPFSATTRCHANGE,
  ACCESS_DENIED.

What each becomes (Scale has no byte counts; the open flags and the close kind are the only
read/write signal):

=====================================  ===============================================
open / OPEN                            READ if opened O_RDONLY, WRITE if O_WRONLY or
                                       O_RDWR with O_CREAT/O_TRUNC, else READ
IN_CLOSE_WRITE / CLOSEWRITE            WRITE (extends the write interval to the close)
IN_CLOSE_NOWRITE / CLOSE               READ, or WRITE for LWE CLOSE of a write-only open;
                                       nothing for a write-only open closed unwritten
IN_CREATE / CREATE                     WRITE (a new file is written by its creator)
IN_ACCESS, IN_MODIFY                   READ, WRITE
IN_MOVED_FROM + IN_MOVED_TO (cookie)   RENAME from -> to; an unpaired FROM after the
                                       bounded wait is an UNLINK, an unpaired TO a WRITE
RENAME (oldPath -> path)               RENAME
IN_DELETE(_SELF), UNLINK, RMDIR,       UNLINK
DESTROY
attribute, ACL, xattr changes,         nothing (metadata, no data flow): counted, skipped
denied access, IN_IGNORED, IN_UNMOUNT,
IN_MOVE_SELF
=====================================  ===============================================

Directories (``IN_ISDIR``, or a directory mode in ``permissions``) are not data: their
opens, closes and creations are skipped; their moves and deletions are kept.

Files are ``FileRef(fs=fsName, path=path)``: a file on Scale is one node whatever node saw
it. The process is ``(nodeName, processId)`` with start ``-1`` (unknown): the ingest worker
links it to the process alive at the event time (`ingest/resolve.py`). Times are Scale's
``YYYY-MM-DD_HH:MM:SS[.fff]±HHMM`` (watch folder: local time with its offset; audit
logging: UTC), converted to epoch nanoseconds. Input that is not one of these becomes a
dead letter with the reason.
"""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..schema.event import SCHEMA_VERSION, DeadLetter, Event, FileRef, Kind, ProcessInfo
from .linux import O_ACCMODE, O_CREAT, O_RDWR, O_TRUNC, O_WRONLY, S_IFDIR, S_IFMT

SOURCE = "scale"
UNKNOWN_START = -1  # the process start is not known: resolved at ingest


RAW_LIMIT = 2000

_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[_T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    r"\s*(Z|UTC|[+-]\d{2}:?\d{2})?$"
)

WF_SKIPPED = {"IN_ATTRIB", "IN_MOVE_SELF", "IN_UNMOUNT", "IN_IGNORED", "IN_Q_OVERFLOW"}
LWE_SKIPPED = {"XATTRCHANGE", "ACLCHANGE", "GPFSATTRCHANGE", "ACCESS_DENIED"}


class ScaleError(ValueError):
    """A record that cannot become an event (the reason becomes a dead letter)."""


def parse_time(text: Any) -> int:
    """Scale's ``2020-08-03_09:06:36-0700`` (also ``.166`` fractions, ``Z``, ISO ``T``)
    -> epoch ns. Without a zone the time is UTC (file audit logging writes UTC)."""
    if not isinstance(text, str):
        raise ScaleError(f"eventTime is not a string: {text!r}")
    m = _TIME.match(text.strip())
    if m is None:
        raise ScaleError(f"unrecognised time {text!r}")
    y, mo, d, h, mi, s, frac, zone = m.groups()
    if not (1 <= int(mo) <= 12 and 1 <= int(d) <= 31 and int(h) < 24 and int(mi) < 60
            and int(s) <= 60):
        raise ScaleError(f"impossible time {text!r}")
    secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
    if zone and zone not in ("Z", "UTC"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        if int(digits[:2]) > 18 or int(digits[2:]) >= 60:
            raise ScaleError(f"impossible zone offset in {text!r}")
        secs -= sign * offset
    ns = int((frac or "0").ljust(9, "0")) if frac else 0
    return secs * 1_000_000_000 + ns


class PendingMove(msgspec.Struct, array_like=True):
    """An IN_MOVED_FROM waiting for its IN_MOVED_TO."""

    key: str
    ts: int
    index: int  # record number, for the count bound
    host: str
    pid: int
    uid: int | None
    path: str
    inode: int | None
    fs: str
    seq: str


class ScaleState(msgspec.Struct):
    records: int = 0
    moves: list[PendingMove] = msgspec.field(default_factory=list)


@dataclass(slots=True)
class ScaleChunk:
    events: list[Event] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    skipped: int = 0


def _int(obj: dict[str, Any], name: str) -> int | None:
    v = obj.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ScaleError(f"{name} is not a number: {v!r}") from None


def _text(obj: dict[str, Any], name: str) -> str:
    v = obj.get(name)
    if not isinstance(v, str) or not v:
        raise ScaleError(f"no {name}")
    return v


class ScaleMapper:
    """Records -> events, with the pairing of watch-folder moves. Its state (pending move
    halves and the record count) is a msgspec struct, so a checkpoint can save it."""

    def __init__(self, state: bytes | None = None, *, pair_seconds: float = 2.0,
                 pair_events: int = 10000) -> None:
        self.state = msgspec.msgpack.decode(state, type=ScaleState) if state else ScaleState()
        self.pair_ns = int(pair_seconds * 1_000_000_000)
        self.pair_events = pair_events

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(self.state)

    @property
    def pending(self) -> int:
        return len(self.state.moves)

    # -------------------------------------------------------------------- input

    def feed_line(self, line: bytes, where: str, out: ScaleChunk) -> None:
        """One line of JSON (blank lines are ignored)."""
        text = line.strip()
        if not text:
            return
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            out.dead.append(_dead(f"not JSON: {exc}", line, where))
            return
        self.feed(obj, where, out, raw=line)

    def feed(self, obj: Any, where: str, out: ScaleChunk, raw: bytes | None = None) -> None:
        self.state.records += 1
        index = self.state.records
        try:
            if not isinstance(obj, dict):
                raise ScaleError(f"not a JSON object but {type(obj).__name__}")
            if "WF_JSON" in obj:
                self._watch_folder(obj, where, index, out)
            elif "LWE_JSON" in obj:
                self._audit_log(obj, where, out)
            else:
                raise ScaleError("neither a watch-folder (WF_JSON) nor a file audit "
                                 "(LWE_JSON) record")
        except ScaleError as exc:
            data = raw if raw is not None else json.dumps(obj).encode()
            out.dead.append(_dead(str(exc), data, where))

    def expire(self, out: ScaleChunk, *, now_ts: int | None = None, everything: bool = False
               ) -> None:
        """Unpaired move halves past the bound become UNLINKs (moved out of view)."""
        keep = []
        for mv in self.state.moves:
            late = (everything or self.state.records - mv.index >= self.pair_events
                    or (now_ts is not None and now_ts - mv.ts > self.pair_ns))
            if late:
                out.events.append(self._event(Kind.UNLINK, mv.ts, mv.host, mv.pid, mv.uid,
                                              FileRef(mv.path, mv.inode, fs=mv.fs), mv.seq))
            else:
                keep.append(mv)
        self.state.moves = keep

    def flush(self, out: ScaleChunk) -> None:
        """End of input: every pending half is decided."""
        self.expire(out, everything=True)

    # -------------------------------------------------------------------- formats

    @staticmethod
    def _event(kind: Kind, ts: int, host: str, pid: int, uid: int | None, file: FileRef,
               seq: str, dst: FileRef | None = None) -> Event:
        return Event(v=SCHEMA_VERSION, source=SOURCE, host=host, ts=ts, seq=seq, kind=kind,
                     proc=ProcessInfo(pid=pid, start=UNKNOWN_START, uid=uid), file=file,
                     dst=dst)

    def _common(self, obj: dict[str, Any]) -> tuple[int, str, int, int | None, str]:
        ts = parse_time(obj.get("eventTime"))
        host = _text(obj, "nodeName")
        pid = _int(obj, "processId")
        if pid is None or pid < 0:
            raise ScaleError("no processId")
        fs = _text(obj, "fsName")
        return ts, host, pid, _int(obj, "clientUserId"), fs

    def _watch_folder(self, obj: dict[str, Any], where: str, index: int,
                      out: ScaleChunk) -> None:
        names = set(re.split(r"[\s|,]+", str(obj.get("event") or "").strip())) - {""}
        if not names:
            raise ScaleError("no event")
        is_dir = "IN_ISDIR" in names or _is_dir(obj)
        names.discard("IN_ISDIR")
        if len(names) != 1:
            raise ScaleError(f"not one event: {obj.get('event')!r}")
        name = names.pop()
        if name in WF_SKIPPED:
            out.skipped += 1
            return
        ts, host, pid, uid, fs = self._common(obj)
        self.expire(out, now_ts=ts)  # halves whose wait is over come before this event
        path = obj.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ScaleError(f"{name} without an absolute path (path={path!r})")
        ref = FileRef(path, _int(obj, "inode"), fs=fs)
        seq = where
        flags = _int(obj, "openFlags")
        kind: Kind | None
        if name == "IN_MOVED_FROM":
            key = f"{host}\0{fs}\0{obj.get('cookie')}"
            self.state.moves = [m for m in self.state.moves if m.key != key] + [PendingMove(
                key, ts, index, host, pid, uid, path, ref.inode, fs, seq)]
            return
        if name == "IN_MOVED_TO":
            key = f"{host}\0{fs}\0{obj.get('cookie')}"
            match = next((m for m in self.state.moves if m.key == key), None)
            if match is not None:
                self.state.moves.remove(match)
                out.events.append(self._event(
                    Kind.RENAME, ts, host, pid, uid,
                    FileRef(match.path, match.inode, fs=match.fs), seq, dst=ref))
            else:
                out.events.append(self._event(Kind.WRITE, ts, host, pid, uid, ref, seq))
            return
        if name in ("IN_DELETE", "IN_DELETE_SELF"):
            kind = Kind.UNLINK
        elif is_dir:
            out.skipped += 1  # listing or creating a directory moves no data
            return
        elif name == "IN_OPEN":
            kind = _open_kind(flags)
        elif name == "IN_CLOSE_WRITE" or name == "IN_MODIFY":
            kind = Kind.WRITE
        elif name == "IN_CLOSE_NOWRITE":
            kind = None if flags is not None and flags & O_ACCMODE == O_WRONLY else Kind.READ
        elif name == "IN_CREATE":
            kind = Kind.WRITE
        elif name == "IN_ACCESS":
            kind = Kind.READ
        else:
            raise ScaleError(f"unknown watch-folder event {name!r}")
        if kind is None:
            out.skipped += 1
        else:
            out.events.append(self._event(kind, ts, host, pid, uid, ref, seq))

    def _audit_log(self, obj: dict[str, Any], where: str, out: ScaleChunk) -> None:
        name = str(obj.get("event") or "").strip().upper()
        if not name:
            raise ScaleError("no event")
        if name in LWE_SKIPPED:
            out.skipped += 1
            return
        ts, host, pid, uid, fs = self._common(obj)
        path = obj.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ScaleError(f"{name} without an absolute path (path={path!r})")
        ref = FileRef(path, _int(obj, "inode"), fs=fs)
        flags = _int(obj, "openFlags")
        dst = None
        if name == "RENAME":
            old = obj.get("oldPath")
            if not isinstance(old, str) or not old.startswith("/"):
                raise ScaleError(f"RENAME without an absolute oldPath (oldPath={old!r})")
            kind: Kind | None = Kind.RENAME
            ref, dst = FileRef(old, ref.inode, fs=fs), ref
        elif name in ("UNLINK", "RMDIR", "DESTROY"):
            kind = Kind.UNLINK
        elif _is_dir(obj):
            kind = None
        elif name == "OPEN":
            kind = _open_kind(flags)
        elif name == "CLOSEWRITE":
            kind = Kind.WRITE
        elif name == "CLOSE":
            written = _int(obj, "bytesWritten")
            if written or (flags is not None and flags & O_ACCMODE == O_WRONLY):
                kind = Kind.WRITE
            else:
                kind = Kind.READ
        elif name == "CREATE":
            kind = Kind.WRITE
        else:
            raise ScaleError(f"unknown file audit event {name!r}")
        if kind is None:
            out.skipped += 1
            return
        out.events.append(self._event(kind, ts, host, pid, uid, ref, where, dst=dst))


def _open_kind(flags: int | None) -> Kind:
    if flags is None:
        return Kind.READ
    mode = flags & O_ACCMODE
    if mode == O_WRONLY or (mode == O_RDWR and flags & (O_CREAT | O_TRUNC)):
        return Kind.WRITE
    return Kind.READ


def _is_dir(obj: dict[str, Any]) -> bool:
    perm = obj.get("permissions")
    if not isinstance(perm, str) or not perm.isdigit():
        return False
    try:
        mode = int(perm[-6:], 8)
    except ValueError:
        return False
    return mode & S_IFMT == S_IFDIR


def _dead(reason: str, raw: bytes, where: str) -> DeadLetter:
    return DeadLetter(source=SOURCE, reason=reason,
                      raw=raw[:RAW_LIMIT].decode("utf-8", errors="backslashreplace").rstrip("\n"),
                      where=where)


def map_file(path: str, **kw: Any) -> ScaleChunk:
    """Every event and dead letter of a file of JSON lines (tests, local import)."""
    mapper = ScaleMapper(**kw)
    out = ScaleChunk()
    offset = 0
    with open(path, "rb") as fh:
        for line in fh:
            mapper.feed_line(line, f"{path}:{offset}", out)
            offset += len(line)
    mapper.flush(out)
    return out


def consume_scale_topic(url: str, group: str, publisher: Any, config: Any,
                        stop: Any) -> dict[str, int]:
    """Scale's own Kafka sink topic (``kafka://HOST:PORT/TOPIC``) -> our events topic.

    The source offsets are committed after our publisher has the events, and never past
    a move half still waiting for its pair (it is re-read after a restart instead)."""
    import contextlib
    import os
    import time
    from urllib.parse import urlparse

    from ..ingest.bus import BusError, KafkaBus, publish_events

    parsed = urlparse(url)
    topic = parsed.path.strip("/")
    if parsed.scheme != "kafka" or not parsed.netloc or not topic:
        raise BusError(f"not a Kafka topic URL: {url!r} (use kafka://HOST:PORT/TOPIC)")
    c = config.collect
    bus = KafkaBus.from_config(config.kafka, parsed.netloc)
    mapper = ScaleMapper(pair_seconds=c.pair_seconds, pair_events=c.pair_events)
    sub = bus.subscribe(group, [topic])
    stats = {"records": 0, "events": 0, "dead_letters": 0}
    next_offset: dict[tuple[str, int], int] = {}
    last_data = time.monotonic()
    host = c.host or os.uname().nodename
    try:
        while not stop.is_set():
            msgs = sub.poll(1000, 0.2)
            out = ScaleChunk()
            for m in msgs:
                mapper.feed_line(m.value or b"", f"{m.topic}/{m.partition}/{m.offset}", out)
                next_offset[(m.topic, m.partition)] = m.offset + 1
            stats["records"] += len(msgs)
            now = time.monotonic()
            if msgs:
                last_data = now
            elif mapper.pending and now - last_data >= c.pair_seconds:
                mapper.expire(out, everything=True)
            if out.events or out.dead:
                publish_events(publisher, config.kafka.events_topic, SOURCE, out.events,
                               out.dead, host, per_message=c.message_events)
                publisher.flush()
                stats["events"] += len(out.events)
                stats["dead_letters"] += len(out.dead)
            due = dict(next_offset)
            for mv in mapper.state.moves:
                t, p, o = mv.seq.rsplit("/", 2)
                tp = (t, int(p))
                if tp in due:
                    due[tp] = min(due[tp], int(o))
            assigned = set(sub.assignment())
            due = {tp: o for tp, o in due.items() if tp in assigned}
            if due and (msgs or out.events):
                # rebalanced away: the new owner re-reads from the last commit
                with contextlib.suppress(BusError):
                    sub.commit(due)
    finally:
        sub.close()
    return stats
