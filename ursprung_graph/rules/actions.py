"""What each action does when its rule matched an event (run by the engine's worker).

Every handler reads its durable state from its destination, does its work, and hands the
records to the destination together with the new state (:mod:`.sinks`). A handler raises
:class:`ActionError` for a failure that a retry cannot mend (a missing file, a bad line),
anything else for one that it may (a database that is down).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..content import ContentStore, hash_file
from ..schema import graph as g
from ..schema.event import DeadLetter, Event, FileRef
from ..schema.names import name_to_os
from . import cypher as c
from . import model as m
from .fields import getter
from .records import BadLine, Record, extract, metrics_of
from .sinks import DbSink, FileSink, GraphSink, Sink, StateDb, engine_for, version_row

#: A log is read this much at a time.
READ_BLOCK = 1 << 20


Handler = Callable[[Event], None]


class ActionError(RuntimeError):
    """A failure a retry will not mend: the task goes to the dead letters at once."""


@dataclass(slots=True)
class Context:
    """What handlers share: the store (or its opener), the local state, the content store,
    dead letters found while working (bad lines), and the processes with new metrics."""

    store: Any  # GraphStore or a function opening it
    local: StateDb
    content: ContentStore
    dead: list[DeadLetter] = field(default_factory=list)
    metric_procs: set[str] = field(default_factory=set)
    run_roots: dict[str, str] = field(default_factory=dict)  # process key -> pipeline
    #: TRACK and DBLOAD wait until the writes to a file have settled (the engine is idle):
    #: (action tag, host, path) -> (function, the latest matching event)
    settling: dict[tuple[str, str, str], tuple[Handler, Event]] = field(default_factory=dict)

    #: CAPTURESOUT: action tag -> (action, destination, the exec events its rule matched)
    capturing: dict[str, tuple[m.CaptureStdout, Sink, list[Event]]] = field(
        default_factory=dict)

    def settle(self, tag: str, fn: Handler, event: Event, path: str | None) -> None:
        if path:
            self.settling[(tag, event.host, path)] = (fn, event)

    def graph(self) -> Any:
        """The store, opened on first use when it was given as an opener."""
        if callable(self.store):
            self.store = self.store()
        return self.store

    def sink(self, dest: m.Destination) -> Sink:
        if isinstance(dest, m.IntoFile):
            return FileSink(dest.path, self.local)
        if isinstance(dest, m.IntoDb):
            return DbSink(dest)
        return GraphSink(self.graph, self.local)


def proc_key(event: Event) -> str:
    return g.process_key(event.host, event.proc.pid, event.proc.start)


def handler(rule: m.Rule, index: int, action: m.Action, ctx: Context) -> Handler:
    """The function that runs ``action`` (the ``index``-th of ``rule``) for one event."""
    tag = f"{rule.id}.{index}"
    sink = ctx.sink(action.into) if not isinstance(action, m.RunRoot) else None
    if isinstance(action, m.LogLoad):
        return lambda ev: log_load(action, tag, ev, sink, ctx)  # type: ignore[arg-type]
    if isinstance(action, m.DbLoad):
        def load(ev: Event) -> None:
            db_load(action, tag, ev, sink, ctx)  # type: ignore[arg-type]
        field_of = getter(action.event_field)
        return lambda ev: ctx.settle(tag, load, ev, str(field_of(ev) or "") or None)
    if isinstance(action, m.DbTransfer):
        return lambda ev: db_transfer(action, tag, ev, sink)  # type: ignore[arg-type]
    if isinstance(action, m.Track):
        def keep(ev: Event) -> None:
            track(action, tag, ev, sink, ctx)  # type: ignore[arg-type]
        return lambda ev: ctx.settle(tag, keep, ev, ev.file.path if ev.file else None)
    if isinstance(action, m.RunRoot):
        return lambda ev: ctx.run_roots.__setitem__(proc_key(ev), action.pipeline)
    assert isinstance(action, m.CaptureStdout)
    matched: list[Event] = []
    ctx.capturing[tag] = (action, sink, matched)  # type: ignore[assignment]
    return matched.append  # the lines are attributed when the run is flushed


# ------------------------------------------------------------------------ CAPTURESOUT


def capture_records(ctx: Context, lines: list[tuple[int, str, int]]) -> None:
    """Captured stdout lines (number, text, time) as records of each CAPTURESOUT action: a
    line belongs to the latest process its rule matched that started before the line was
    written; lines before any such process are not that rule's."""
    for tag, (action, sink, matched) in ctx.capturing.items():
        procs = sorted(matched, key=lambda e: e.ts)
        if not procs:
            continue
        records: list[Record] = []
        for number, text, ts in lines:
            found = action.match.search(text)
            if found is None:
                continue
            owner = None
            for ev in procs:
                if ev.ts <= ts:
                    owner = ev
            if owner is None:
                continue
            proc = proc_key(owner)
            try:
                values = extract(text, found, action.extract, owner)
            except BadLine as exc:
                ctx.dead.append(DeadLetter(source="rules", reason=f"rule {tag}: {exc}",
                                           raw=text, where=f"stdout:{proc}:{number}"))
                continue
            metrics, step = metrics_of(action.extract, values)
            records.append(Record(
                key=g.record_key(tag, f"stdout:{proc}", str(number)), rule=tag,
                action="capturesout", names=action.extract.names, values=values, ts=ts,
                host=owner.host, pos=number, proc=proc, metrics=metrics,
                step=None if step is None else f"{action.extract.step}={step}"))
            if metrics:
                ctx.metric_procs.add(proc)
        sink.write(records, {})


# ------------------------------------------------------------------------ LOGLOAD


def _path_of(f: m.Field, event: Event) -> str:
    value = getter(f)(event)
    if not value:
        raise ActionError(f"the event has no {f.name}")
    return str(value)


def log_load(action: m.LogLoad, tag: str, event: Event, sink: Sink, ctx: Context) -> None:
    """New complete lines of the log since the last offset: an incomplete last line is left
    for the next time (the offset stays before it); a new inode at the path (rotation) or a
    shorter file starts at 0."""
    path = _path_of(action.event_field, event)
    key = f"logload:{tag}:{event.host}:{path}"
    try:
        fh = open(name_to_os(path), "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ActionError(f"cannot read {path}: {exc.strerror}") from exc
    with fh:
        st = os.fstat(fh.fileno())
        state = sink.state(key) or {}
        offset = state.get("offset", 0)
        if state.get("inode") != st.st_ino or offset > st.st_size:
            offset = 0
        fh.seek(offset)
        while True:
            data = fh.read(READ_BLOCK)
            if not data:
                break
            end = data.rfind(b"\n")
            if end < 0:
                if len(data) < READ_BLOCK:
                    break  # a partial last line: wait for its end
                end = len(data) - 1  # a line longer than a block: take it as it is
            records = _log_records(action, tag, event, path, st.st_ino, offset,
                                   data[:end + 1], ctx)
            offset += end + 1
            sink.write(records, {key: {"offset": offset, "inode": st.st_ino}})
            fh.seek(offset)
    if records_had_metrics(action.extract):
        ctx.metric_procs.add(proc_key(event))


def records_had_metrics(spec: m.Extract) -> bool:
    return bool(spec.metrics)


def _log_records(action: m.LogLoad, tag: str, event: Event, path: str, inode: int,
                 base: int, data: bytes, ctx: Context) -> list[Record]:
    out: list[Record] = []
    file = g.file_key(event.host, FileRef(path))
    pos = base
    for raw in data.splitlines(keepends=True):
        here, pos = pos, pos + len(raw)
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        found = action.match.search(line)
        if found is None:
            continue
        where = f"{path}:{inode}:{here}"
        try:
            values = extract(line, found, action.extract, event)
        except BadLine as exc:
            ctx.dead.append(DeadLetter(source="rules", reason=f"rule {tag}: {exc}",
                                       raw=line, where=where))
            continue
        metrics, step = metrics_of(action.extract, values)
        out.append(Record(
            key=g.record_key(tag, f"{event.host}:{path}:{inode}", str(here)), rule=tag,
            action="logload", names=action.extract.names, values=values, ts=event.ts,
            host=event.host, pos=here, path=path, proc=proc_key(event), file=file,
            metrics=metrics,
            step=None if step is None else f"{action.extract.step}={step}"))
    return out


# ------------------------------------------------------------------------ DBLOAD


def db_load(action: m.DbLoad, tag: str, event: Event, sink: Sink, ctx: Context) -> None:
    """The CSV file's rows (after ``header`` lines; the first of them names the values),
    once per content version of the file."""
    path = _path_of(action.event_field, event)
    try:
        data = Path(name_to_os(path)).read_bytes()
    except OSError as exc:
        raise ActionError(f"cannot read {path}: {exc.strerror}") from exc
    sha = hashlib.sha256(data).hexdigest()
    key = f"dbload:{tag}:{event.host}:{path}"
    if sink.state(key) == sha:
        return  # this version is loaded already
    st = os.stat(name_to_os(path))
    version = version_row(event.host, path, sha, len(data), st.st_mtime_ns, event.ts, False)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8", errors="replace")),
                           delimiter=action.delim))
    head, body = rows[:action.header], rows[action.header:]
    width = max((len(r) for r in body), default=0)
    names = tuple(head[0]) if head and len(head[0]) == width else tuple(
        f"c{i}" for i in range(width))
    records = []
    for n, row in enumerate(body):
        if not row:
            continue
        values = tuple(row) + ("",) * (len(names) - len(row))
        records.append(Record(
            key=g.record_key(tag, version["key"], str(n)), rule=tag, action="dbload",
            names=names[:len(values)] if len(values) <= len(names) else
            names + tuple(f"c{i}" for i in range(len(names), len(values))),
            values=values, ts=event.ts, host=event.host, pos=n, path=path,
            proc=proc_key(event), version=version["key"] if isinstance(sink, GraphSink)
            else None))
    if isinstance(sink, GraphSink):
        sink.store.write([(c.UPSERT_RULE_VERSIONS, {"rows": [version]})])
    sink.write(records, {key: sha})


# ------------------------------------------------------------------------ DBTRANSFER


def db_transfer(action: m.DbTransfer, tag: str, event: Event, sink: Sink) -> None:
    """Rows of the query past the remembered value of the state column, in its order."""
    import sqlalchemy as sa

    key = f"dbtransfer:{tag}"
    last = sink.state(key)
    col = action.state_column  # an identifier (the grammar's IDENT): safe in the text
    query = f"SELECT * FROM ({action.query}) AS ursprung_q"
    params: dict[str, Any] = {}
    if last is not None:
        query += f" WHERE ursprung_q.{col} > :last"
        params["last"] = last
    query += f" ORDER BY ursprung_q.{col}"
    with engine_for(action.source).connect() as conn:
        result = conn.execute(sa.text(query), params)
        names = tuple(result.keys())
        rows = [tuple(r) for r in result]
    if not rows:
        return
    if col not in names:
        raise ActionError(f"the query's rows have no column {col!r}")
    at = names.index(col)
    records: list[Record] = []
    for row in rows:
        values = tuple("" if v is None else str(v) for v in row)
        digest = hashlib.sha256(json.dumps(values).encode()).hexdigest()[:16]
        records.append(Record(
            key=g.record_key(tag, action.source, f"{values[at]}:{digest}"), rule=tag,
            action="dbtransfer", names=names, values=values, ts=event.ts, host=event.host,
            pos=len(records)))
    newest = rows[-1][at]
    state = newest if isinstance(newest, int | float | str) else str(newest)
    sink.write(records, {key: state})


# ------------------------------------------------------------------------ TRACK


def track(action: m.Track, tag: str, event: Event, sink: Sink, ctx: Context) -> None:
    """The file's content now, as a version of the file written by the event's process;
    the bytes go into the content store (``AT`` another directory: there)."""
    if event.file is None or action.path.fullmatch(event.file.path) is None:
        return
    path = event.file.path
    version = hash_file(name_to_os(path))
    if version is None:
        raise ActionError(f"cannot read {path} (gone, or not a regular file)")
    if version.sha256 is None:
        raise ActionError(f"{path} changed while it was read, or is above the hashing limit")
    store = ContentStore(Path(action.repo)) if action.repo else ctx.content
    stored = store.put(name_to_os(path), version.sha256)
    row = version_row(event.host, path, version.sha256, version.size, version.mtime,
                      event.ts, stored)
    if isinstance(sink, GraphSink):
        sink.store.write([(c.UPSERT_RULE_VERSIONS, {"rows": [row]}),
                          (c.LINK_VERSION_WRITERS, {"rows": [{
                              "key": row["key"], "proc": proc_key(event), "at": event.ts}]})])
        return
    inode = event.file.inode if event.file.inode is not None else os.stat(name_to_os(path)).st_ino
    sink.write([Record(key=row["key"], rule=tag, action="track",
                       names=("path", "inode", "ts", "sha256"),
                       values=(path, str(inode), str(event.ts), version.sha256),
                       ts=event.ts, host=event.host)], {})
