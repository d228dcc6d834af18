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

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import msgspec

from ..config import CollectConfig
from ..schema.event import (
    SCHEMA_VERSION,
    UNKNOWN_START,
    DeadLetter,
    Event,
    FileRef,
    Kind,
    ProcessInfo,
    raw_text,
)
from ..schema.names import name_from_text
from ..schema.times import TimeError, parse_time
from .linux import O_ACCMODE, O_CREAT, O_RDWR, O_TRUNC, O_WRONLY, S_IFDIR, S_IFMT
from .source import Chunk, Point

SOURCE = "scale"
_COLLECT = CollectConfig()  # the defaults of the pairing bounds



WF_SKIPPED = {"IN_ATTRIB", "IN_MOVE_SELF", "IN_UNMOUNT", "IN_IGNORED", "IN_Q_OVERFLOW"}
LWE_SKIPPED = {"XATTRCHANGE", "ACLCHANGE", "GPFSATTRCHANGE", "ACCESS_DENIED"}


class ScaleError(ValueError):
    """A record that cannot become an event (the reason becomes a dead letter)."""


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

    def __init__(self, state: bytes | None = None, *, pair_seconds: float = _COLLECT.pair_seconds,
                 pair_events: int = _COLLECT.pair_events) -> None:
        self.state = msgspec.msgpack.decode(state, type=ScaleState) if state else ScaleState()
        self.pair_ns = int(pair_seconds * 1_000_000_000)
        self.pair_events = pair_events

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(self.state)

    @property
    def pending(self) -> int:
        return len(self.state.moves)

    # -------------------------------------------------------------------- input

    def feed_line(self, line: bytes, where: str, out: Chunk) -> None:
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

    def feed(self, obj: Any, where: str, out: Chunk, raw: bytes | None = None) -> None:
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

    def expire(self, out: Chunk, *, now_ts: int | None = None, everything: bool = False
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

    def flush(self, out: Chunk) -> None:
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
        try:
            ts = parse_time(obj.get("eventTime"))
        except TimeError as exc:
            raise ScaleError(str(exc)) from None
        host = _text(obj, "nodeName")
        pid = _int(obj, "processId")
        if pid is None or pid < 0:
            raise ScaleError("no processId")
        fs = _text(obj, "fsName")
        return ts, host, pid, _int(obj, "clientUserId"), fs

    def _watch_folder(self, obj: dict[str, Any], where: str, index: int,
                      out: Chunk) -> None:
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
        path = name_from_text(path)
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

    def _audit_log(self, obj: dict[str, Any], where: str, out: Chunk) -> None:
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
        path = name_from_text(path)
        ref = FileRef(path, _int(obj, "inode"), fs=fs)
        flags = _int(obj, "openFlags")
        dst = None
        if name == "RENAME":
            old = obj.get("oldPath")
            if not isinstance(old, str) or not old.startswith("/"):
                raise ScaleError(f"RENAME without an absolute oldPath (oldPath={old!r})")
            kind: Kind | None = Kind.RENAME
            ref, dst = FileRef(name_from_text(old), ref.inode, fs=fs), ref
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
                      raw=raw_text(raw).rstrip("\n"),
                      where=where)


def map_file(path: str, **kw: Any) -> Chunk:
    """Every event and dead letter of a file of JSON lines (tests, local import)."""
    mapper = ScaleMapper(**kw)
    out = Chunk()
    offset = 0
    with open(path, "rb") as fh:
        for line in fh:
            mapper.feed_line(line, f"{path}:{offset}", out)
            offset += len(line)
    mapper.flush(out)
    return out


class ScaleSource:
    """Scale JSON lines as a line source (:class:`.source.LineSource`). Move halves waiting
    for their pair are part of the saved state, so nothing is ever pending."""

    kind = "scale"
    pending = 0

    def __init__(self, state: bytes | None = None, *, pair_seconds: float = _COLLECT.pair_seconds,
                 pair_events: int = _COLLECT.pair_events) -> None:
        self.mapper = ScaleMapper(state, pair_seconds=pair_seconds, pair_events=pair_events)
        self.pair_seconds = pair_seconds

    @property
    def records(self) -> int:
        return self.mapper.state.records

    def feed_block(self, data: bytes, offset: int, where: str, out: Chunk) -> Iterator[Point]:
        for line in io.BytesIO(data):
            self.mapper.feed_line(line, f"{where}:{offset}", out)
            offset += len(line)
            yield offset, 0

    def idle(self, where: str, out: Chunk, quiet_seconds: float) -> None:
        if quiet_seconds >= self.pair_seconds:
            self.mapper.expire(out, everything=True)

    def flush(self, where: str, out: Chunk) -> None:
        self.mapper.flush(out)

    def snapshot(self) -> bytes:
        return self.mapper.snapshot()
