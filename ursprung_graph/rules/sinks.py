"""Where records go (INTO GRAPH, INTO FILE, INTO DB) and where rule state is kept.

Each destination writes a list of records together with the rule state that says they are
done (a log's offset, a transfer's last value), so a restart continues after them:

- graph: records are MERGEd on their keys, then the state is saved in the local state
  database; a crash in between re-reads the same records, which MERGE onto themselves;
- file: one line per record (values joined by ``,``), flushed and synced, then the state;
- database: the rows and the state (table ``ursprung_rule_state`` in that database, as the
  original kept its state beside its rows) in one transaction: exactly once.

The local state database is SQLite under ``$URSPRUNG_HOME/rules/state.db``.
"""

from __future__ import annotations

import json
import os
import posixpath
import threading
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

from ..schema import graph as g
from ..store.base import GraphStore
from ..store.cypher import Cypher
from . import cypher as c
from . import model as m
from .records import Record

STATE_TABLE = "ursprung_rule_state"


def _state_table(meta: sa.MetaData) -> sa.Table:
    return sa.Table(STATE_TABLE, meta,
                    sa.Column("key", sa.String(512), primary_key=True),
                    sa.Column("value", sa.Text, nullable=False))


class StateDb:
    """Rule state in a database (key -> JSON text), through SQLAlchemy."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.meta = sa.MetaData()
        self.table = _state_table(self.meta)
        self.meta.create_all(engine, tables=[self.table])

    def get(self, key: str) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.table.c.value).where(
                self.table.c.key == key)).first()
        return None if row is None else json.loads(row[0])

    def put(self, conn: sa.Connection, state: dict[str, Any]) -> None:
        for key, value in state.items():
            text = json.dumps(value)
            done = conn.execute(self.table.update().where(self.table.c.key == key)
                                .values(value=text))
            if done.rowcount == 0:
                conn.execute(self.table.insert().values(key=key, value=text))

    def save(self, state: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            self.put(conn, state)


def local_state(home: Path) -> StateDb:
    path = home / "rules" / "state.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return StateDb(sa.create_engine(f"sqlite:///{path}"))


class Sink(Protocol):
    def state(self, key: str) -> Any: ...

    def write(self, records: list[Record], state: dict[str, Any]) -> None: ...


class GraphSink:
    def __init__(self, store: Any, local: StateDb) -> None:
        self._store = store
        self.local = local

    @property
    def store(self) -> GraphStore:
        return self._store() if callable(self._store) else self._store

    def state(self, key: str) -> Any:
        return self.local.get(key)

    def write(self, records: list[Record], state: dict[str, Any]) -> None:
        if records:
            self.store.write(record_statements(records))
        if state:
            self.local.save(state)


def record_statements(records: list[Record]) -> list[tuple[Cypher, dict[str, Any]]]:
    rows, procs, files, versions = [], [], [], []
    for r in records:
        rows.append({
            "key": r.key, "rule": r.rule, "action": r.action,
            "fields": json.dumps(dict(zip(r.names, r.values, strict=True))), "line": r.line,
            "ts": r.ts, "host": r.host, "path": r.path, "pos": r.pos,
            "metrics": json.dumps(r.metrics, sort_keys=True) if r.metrics else None,
            "step": r.step,
        })
        if r.proc:
            procs.append({"key": r.key, "proc": r.proc})
        if r.file:
            files.append({"key": r.key, "file": r.file, "path": r.path, "ts": r.ts,
                          "file_host": r.host, "name": posixpath.basename(r.path or "")})
        if r.version:
            versions.append({"key": r.key, "version": r.version})
    out: list[tuple[Cypher, dict[str, Any]]] = [(c.UPSERT_RECORDS, {"rows": rows})]
    for statement, part in ((c.LINK_RECORD_PROCESSES, procs), (c.LINK_RECORD_FILES, files),
                            (c.LINK_RECORD_VERSIONS, versions)):
        if part:
            out.append((statement, {"rows": part}))
    return out


class FileSink:
    """The original's INTO FILE: one line per record, appended."""

    _locks: dict[str, threading.Lock] = {}

    def __init__(self, path: str, local: StateDb) -> None:
        self.path = os.path.abspath(path)
        self.local = local
        self._lock = self._locks.setdefault(self.path, threading.Lock())

    def state(self, key: str) -> Any:
        return self.local.get(key)

    def write(self, records: list[Record], state: dict[str, Any]) -> None:
        if records:
            with self._lock, open(self.path, "a", encoding="utf-8") as fh:
                fh.write("".join(r.line + "\n" for r in records))
                fh.flush()
                os.fsync(fh.fileno())
        if state:
            self.local.save(state)


_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> sa.Engine:
    """One SQLAlchemy engine (connection pool) per URL in this process."""
    with _engines_lock:
        if url not in _engines:
            _engines[url] = sa.create_engine(url, pool_pre_ping=True)
        return _engines[url]


class DbSink:
    """The original's INTO DB ... USING table/columns: a record's values fill the columns
    in order; its state lives in the same database, written in the same transaction."""

    def __init__(self, dest: m.IntoDb) -> None:
        self.dest = dest
        self.engine = engine_for(dest.url)
        self.state_db = StateDb(self.engine)
        meta = sa.MetaData()
        schema, _, name = dest.table.rpartition(".")
        self.table = sa.Table(name, meta, *(sa.Column(col) for col in dest.columns),
                              schema=schema or None)

    def state(self, key: str) -> Any:
        return self.state_db.get(key)

    def write(self, records: list[Record], state: dict[str, Any]) -> None:
        rows = []
        for r in records:
            if len(r.values) != len(self.dest.columns):
                raise ValueError(
                    f"a record has {len(r.values)} values and {self.dest.table} is given "
                    f"{len(self.dest.columns)} columns ({', '.join(self.dest.columns)})")
            rows.append(dict(zip(self.dest.columns, r.values, strict=True)))
        with self.engine.begin() as conn:
            if rows:
                conn.execute(self.table.insert(), rows)
            self.state_db.put(conn, state)


def version_row(host: str, path: str, sha256: str | None, size: int, mtime: int, at: int,
                stored: bool) -> dict[str, Any]:
    from ..schema.event import FileRef

    file = g.file_key(host, FileRef(path))
    return {"key": g.version_key(file, sha256, size, mtime), "file": file, "path": path,
            "host": host, "name": posixpath.basename(path), "sha256": sha256, "size": size,
            "mtime": mtime, "at": at, "stored": stored}
