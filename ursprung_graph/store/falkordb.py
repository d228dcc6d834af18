"""The FalkorDB backend (embedded or remote), through the official `falkordb` client."""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
from collections.abc import Callable
from typing import Any

import msgspec
import redis
from falkordb import Edge, FalkorDB, Node, Path

from ..schema.graph import (
    EDGE_TYPES,
    GAP_LABELS,
    LOOKUP_PROPERTIES,
    NODE_LABELS,
    RAN_ON,
    RULE_EDGE_TYPES,
    RULE_LABELS,
    RUN_EDGE_TYPES,
    RUN_LABELS,
    UNIQUE_KEYS,
)
from .base import Row, StoreError, StoreFull, StoreTimeout, StoreUnavailable
from .cypher import Cypher
from .readguard import check_read

#: Indexes as (label, property): the keys every MERGE looks up, then what users search by.
INDEXES = UNIQUE_KEYS + LOOKUP_PROPERTIES
#: What the schema of a graph is made of; the marker names its digest, so a changed schema
#: is created again on the next write.
SCHEMA_DIGEST = hashlib.sha256(repr((
    INDEXES, NODE_LABELS, RUN_LABELS, GAP_LABELS,
    sorted({e.name for e in (*EDGE_TYPES, *RUN_EDGE_TYPES, RAN_ON)}))).encode()).hexdigest()[:16]
#: A write is refused (StoreFull) while the data's file system has less free space than
#: this: FalkorDB, fsyncing every write, exits when it cannot append one.
DISK_RESERVE = 1 << 20
#: Parameter names FalkorDB's ``CYPHER name=value`` header can carry.
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


#: Values that are plain already (most of what a read returns): no further checks.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def plain(value: Any) -> Any:
    """Turn client objects into plain Python values (the rows both backends return)."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Node):
        return {"_id": value.id, "_labels": list(value.labels or []), **value.properties}
    if isinstance(value, Edge):
        return {
            "_id": value.id, "_type": value.relation, "_src": value.src_node,
            "_dst": value.dest_node, **value.properties,
        }
    if isinstance(value, Path):
        return {"nodes": [plain(n) for n in value.nodes()],
                "edges": [plain(e) for e in value.edges()]}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


class FalkorDBStore:
    """A graph in a FalkorDB server. Each statement is one atomic GRAPH.QUERY; with the
    embedded server's `appendfsync always` it is on disk when the call returns."""

    def __init__(self, *, unix_socket: str | None = None, host: str = "127.0.0.1",
                 port: int = 6379, graph: str = "ursprung", password: str | None = None,
                 timeout: float | None = 300.0, data_dir: pathlib.Path | None = None) -> None:
        """``data_dir``: where the server keeps its data, when it is on this machine (the
        embedded one): writes are refused while its disk is full."""
        self._db = FalkorDB(
            host=host, port=port, unix_socket_path=unix_socket, password=password,
            socket_timeout=timeout,
        )
        self._graph = self._db.select_graph(graph)
        self.name = graph
        self._data_dir = data_dir
        self._marker = f"ursprung:schema:{graph}"

    def ensure_schema(self) -> None:
        """Create the schema unless the graph's marker says it is there: one read, so that
        only the first writer of a store writes it (reads never call this)."""
        redis_ = self._db.connection
        marker = self._guard(lambda: redis_.get(self._marker))
        if marker in (SCHEMA_DIGEST, SCHEMA_DIGEST.encode()):  # as the client decodes it
            return
        self._check_disk()
        self._create_schema()
        self._guard(lambda: redis_.set(self._marker, SCHEMA_DIGEST))

    def _create_schema(self) -> None:
        self._register_types()
        existing = self._existing_indexes()
        for label, prop in INDEXES:
            if (label, prop) in existing:
                continue
            try:
                self._graph.create_node_range_index(label, prop)
            except redis.ResponseError as exc:
                if "already indexed" not in str(exc):
                    raise StoreError(f"could not index {label}.{prop}: {exc}") from exc

    def _register_types(self) -> None:
        """Make every label and edge type known to the graph before any MERGE.

        FalkorDB can create a node or edge twice when two writers MERGE the first edge of a
        type the graph has never seen (seen with two ingest workers on an empty graph).
        Creating and deleting one of each in a single statement registers them all.
        """
        labels = ":".join(NODE_LABELS + RUN_LABELS + RULE_LABELS + GAP_LABELS)
        types = sorted({e.name for e in (*EDGE_TYPES, *RUN_EDGE_TYPES, *RULE_EDGE_TYPES, RAN_ON)})
        parts = [f"(a{i}:{labels})-[e{i}:{t}]->(b{i}:{labels})" for i, t in enumerate(types)]
        doomed = ", ".join(f"e{i}, a{i}, b{i}" for i in range(len(types)))
        self._call(self._graph.query, f"CREATE {', '.join(parts)} DELETE {doomed}", None)

    def _existing_indexes(self) -> set[tuple[str, str]]:
        try:
            result = self._graph.list_indices()
        except redis.ResponseError:
            return set()  # a graph that does not exist yet has no indexes
        found: set[tuple[str, str]] = set()
        for row in result.result_set:
            label, props = row[0], row[1]
            found.update((label, p) for p in props)
        return found

    def read(self, statement: str, params: dict[str, Any] | None = None, *,
             timeout: float | None = None) -> list[Row]:
        check_read(statement)
        _check_names(params)
        ms = None if timeout is None else max(1, int(timeout * 1000))
        header = params_header(params)
        if header is not None:  # msgspec's header, as for writes (the client's is slower)
            statement, params = header + statement, None
        try:
            result = self._guard(lambda: self._graph.ro_query(statement, params, timeout=ms))
        except StoreError as exc:
            if ms is not None and "timed out" in str(exc).lower():
                raise StoreTimeout(f"the store stopped a read after {ms} ms") from exc
            raise
        names = [h[1] for h in result.header]
        return [dict(zip(names, (plain(v) for v in row), strict=True)) for row in result.result_set]

    def write(self, statements: list[tuple[Cypher, dict[str, Any]]]) -> None:
        self._check_disk()
        for statement, params in statements:
            try:
                header = params_header(params)
                if header is None:
                    self._call(self._graph.query, statement, params)
                else:
                    self._call(self._graph.query, header + statement, None)
            except StoreError:
                if not _has_nul(params):
                    raise
                # FalkorDB's parameter header is a C string: a NUL ends it. File names
                # cannot hold one, but event text (a dead letter, a Scale record) can.
                self._call(self._graph.query, statement, _without_nul(params))

    def _check_disk(self) -> None:
        if self._data_dir is None:
            return
        try:
            st = os.statvfs(self._data_dir)
        except OSError:
            return
        free = st.f_bavail * st.f_frsize
        if free < DISK_RESERVE:
            raise StoreFull(f"the disk of the store's data ({self._data_dir}) is full "
                            f"({free:,} bytes free): nothing was written; free some space "
                            "and run the command again")

    def _call(self, method: Any, statement: str, params: dict[str, Any] | None) -> Any:
        return self._guard(lambda: method(statement, params))

    def _guard(self, call: Callable[[], Any]) -> Any:
        """The call's answer, with the client's errors as the store's."""
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError) as exc:
            raise StoreUnavailable(f"FalkorDB is not reachable: {exc}") from exc
        except redis.ResponseError as exc:
            if "empty key" in str(exc) or "Invalid graph operation on empty key" in str(exc):
                return _Empty()
            raise StoreError(str(exc)) from exc

    def clear(self) -> None:
        self._guard(lambda: self._db.connection.delete(self._marker))
        try:
            self._graph.delete()
        except redis.ResponseError as exc:
            if "empty key" not in str(exc) and "Invalid graph" not in str(exc):
                raise StoreError(str(exc)) from exc

    def close(self) -> None:
        self._db.close()


_json = msgspec.json.Encoder()
_JSON_KEY = re.compile(rb'[{,]"([A-Za-z_][A-Za-z0-9_]*)":')


def params_header(params: dict[str, Any] | None) -> str | None:
    """The ``CYPHER name=value ...`` header FalkorDB parses its parameters from, made by
    msgspec's JSON encoder instead of the client's recursive Python one (which took as
    long as the store itself on ingest batches). JSON is that syntax except for two
    things: map keys, which Cypher wants bare (``"key":`` becomes ``key:``; inside a JSON
    string a quote is always escaped, so only real keys match), and ``\\uXXXX`` escapes,
    which FalkorDB keeps literally: a value that needs one (a control character) gives
    None, and the client's own header is used.

    The few distinct keys are found first, then each ``"key":`` is replaced as a whole
    (C speed; a substitution with a group template calls Python per match, which cost as
    much as the encoding of a trace's rows many times over). Outside keys the text
    ``"key":`` cannot occur: a quote inside a string is escaped, and after a string value
    comes ``,``, ``]`` or ``}``, never ``:``."""
    if not params:
        return None
    parts = []
    for name, value in params.items():
        data = _json.encode(value)
        if b"\\u" in data:
            return None
        for key in set(_JSON_KEY.findall(data)):
            data = data.replace(b'"' + key + b'":', key + b":")
        parts.append(b"`" + name.encode() + b"`=" + data)
    return "CYPHER " + b" ".join(parts).decode() + " "


def _check_names(params: dict[str, Any] | None) -> None:
    for name in params or ():
        if not PARAM_NAME.fullmatch(name):
            raise StoreError(f"{name!r} cannot be a parameter name: use letters, digits and _")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {k: _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


class _Empty:
    """The answer of a read on a graph that has never been written."""

    header: list[Any] = []
    result_set: list[Any] = []
