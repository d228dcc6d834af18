"""The FalkorDB backend (embedded or remote).

Writes, the schema marker, index creation and ``clear`` go over :mod:`.resp`, a small RESP
client of our own: opening a store and writing never imports the official client, whose
import (all of redis-py) costs ~0.16 s of CPU. Reads go through the official `falkordb`
client, imported on the first read: it parses FalkorDB's compact result format (nodes,
edges and paths by label and property ids, resolved against the graph's schema).
"""

from __future__ import annotations

import functools
import hashlib
import operator
import os
import pathlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

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
from .resp import ReplyError, Resp

if TYPE_CHECKING:
    from falkordb import FalkorDB, Graph

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
    from falkordb import Edge, Node, Path

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
    embedded server's `appendfsync always` it is on disk when the server replies, and a
    write returns only after every reply.

    A connection found dropped (the server restarted) is opened again once and the
    command resent (:mod:`.resp`): every write is an idempotent upsert, and so are the
    schema's statements and ``clear``, so a command that ran before its reply was lost
    does no harm when it runs again."""

    def __init__(self, *, unix_socket: str | None = None, host: str = "127.0.0.1",
                 port: int = 6379, graph: str = "ursprung", password: str | None = None,
                 timeout: float | None = 300.0, data_dir: pathlib.Path | None = None) -> None:
        """``data_dir``: where the server keeps its data, when it is on this machine (the
        embedded one): writes are refused while its disk is full."""
        self._where = {"host": host, "port": port, "unix_socket_path": unix_socket,
                       "password": password, "socket_timeout": timeout}
        self._resp = Resp(unix_socket=unix_socket, host=host, port=port, password=password,
                          timeout=timeout)
        self._client: FalkorDB | None = None
        self._reader: Graph | None = None
        self._reader_lock = threading.Lock()
        self.name = graph
        self._data_dir = data_dir
        self._marker = f"ursprung:schema:{graph}"

    def ensure_schema(self) -> None:
        """Create the schema unless the graph's marker says it is there: one read, so that
        only the first writer of a store writes it (reads never call this)."""
        if self._resp.execute(b"GET", self._marker) == SCHEMA_DIGEST.encode():
            return
        self._check_disk()
        self._create_schema()
        self._resp.execute(b"SET", self._marker, SCHEMA_DIGEST)

    def _create_schema(self) -> None:
        """The types, then each index (one that is there already is an error, ignored)."""
        self._register_types()
        for label, prop in INDEXES:
            try:
                self._query(f"CREATE INDEX FOR (e:{label}) ON (e.{prop})".encode())
            except ReplyError as exc:
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
        self._query(f"CREATE {', '.join(parts)} DELETE {doomed}".encode())

    def read(self, statement: str, params: dict[str, Any] | None = None, *,
             timeout: float | None = None) -> list[Row]:
        check_read(statement)
        _check_names(params)
        ms = None if timeout is None else max(1, int(timeout * 1000))
        header = params_header(params)
        if header is not None:  # msgspec's header, as for writes (the client's is slower)
            statement, params = header + statement, None
        graph = self._graph()
        try:
            result = self._guard(lambda: graph.ro_query(statement, params, timeout=ms))
        except StoreError as exc:
            if ms is not None and "timed out" in str(exc).lower():
                raise StoreTimeout(f"the store stopped a read after {ms} ms") from exc
            raise
        names = [h[1] for h in result.header]
        return [dict(zip(names, (plain(v) for v in row), strict=True)) for row in result.result_set]

    def _graph(self) -> Graph:
        """The official client's graph, for reads: made (and the client imported) once."""
        with self._reader_lock:
            if self._reader is None:
                from falkordb import FalkorDB

                self._client = self._guard(lambda: FalkorDB(**self._where))
                self._reader = self._client.select_graph(self.name)
            return self._reader

    def write(self, statements: list[tuple[Cypher, dict[str, Any]]]) -> None:
        self._check_disk()
        for statement, params in statements:
            try:
                self._query(statement, params)
            except ReplyError:
                if not _has_nul(params):
                    raise
                # FalkorDB's parameter header is a C string: a NUL ends it. File names
                # cannot hold one, but event text (a dead letter, a Scale record) can.
                self._query(statement, _without_nul(params))

    def _query(self, statement: bytes | str, params: dict[str, Any] | None = None) -> None:
        """One GRAPH.QUERY, its parameters in the statement's header (rows as lists)."""
        if isinstance(statement, str):
            statement, params = as_lists(Cypher(statement), params)
        header = header_bytes(params)
        if header is None and params:
            header = literal_header(params)
        self._resp.execute(b"GRAPH.QUERY", self.name, (header or b"") + statement,
                           b"--compact")

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

    def _guard(self, call: Callable[[], Any]) -> Any:
        """The official client's answer, with its errors as the store's."""
        import redis

        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError) as exc:
            raise StoreUnavailable(f"FalkorDB is not reachable: {exc}") from exc
        except redis.ResponseError as exc:
            if "empty key" in str(exc) or "Invalid graph operation on empty key" in str(exc):
                return _Empty()
            raise StoreError(str(exc)) from exc

    def clear(self) -> None:
        self._resp.execute(b"DEL", self._marker)
        try:
            self._resp.execute(b"GRAPH.DELETE", self.name)
        except ReplyError as exc:
            if "empty key" not in str(exc) and "Invalid graph" not in str(exc):
                raise
        with self._reader_lock:
            if self._reader is not None:  # its ids of labels and properties are gone too
                self._reader.schema.clear()

    def close(self) -> None:
        self._resp.close()
        with self._reader_lock:
            if self._client is not None:
                self._client.close()


_json = msgspec.json.Encoder()
#: A field of the row variable ``r`` of an ``UNWIND $rows AS r`` statement.
_ROW_FIELD = re.compile(r"(?<![\w.`$])r\.([A-Za-z_][A-Za-z0-9_]*)")
#: The row variable itself, where it is not read by field.
_ROW_ITSELF = re.compile(r"(?<![\w.`$])r(?![\w.`])")
#: Where the row itself may stand: as the UNWIND's variable, or carried on by a WITH.
_ROW_CARRIED = re.compile(r"(?:\bAS |\bWITH (?:\w+, )*)\Z")


@dataclass(frozen=True, slots=True)
class ListRows:
    """A statement over ``$rows`` rewritten to take each row as a list: ``r.key`` becomes
    ``r[0]``, and so on, in the order the fields first occur."""

    text: bytes
    fields: tuple[str, ...]
    values: Callable[[dict[str, Any]], Any]  # a row's values in that order


@functools.cache
def list_rows(statement: Cypher) -> ListRows | None:
    """``statement`` with its rows as lists, or None when it is not an ``UNWIND $rows AS r``
    statement that reads its rows by field only.

    FalkorDB parses its parameters from the text of the query, and a map costs it per
    key: the 13 keys of a version row took 22 µs of its 34 µs of parsing. As lists, rows
    are shorter and parsed in about half the time (docs/decisions.md)."""
    if not statement.startswith("UNWIND $rows AS r "):
        return None
    fields = tuple(dict.fromkeys(_ROW_FIELD.findall(statement)))
    if not fields or "'" in statement or '"' in statement:
        return None  # no fields to read, or text in quotes the rewrite could reach into
    if any(not _ROW_CARRIED.search(statement, 0, m.start())
           for m in _ROW_ITSELF.finditer(statement)):
        return None  # the row used as a map (``SET n = r``, ``keys(r)``)
    index = {field: i for i, field in enumerate(fields)}
    text = _ROW_FIELD.sub(lambda m: f"r[{index[m.group(1)]}]", statement)
    get = operator.itemgetter(*fields)
    values = get if len(fields) > 1 else (lambda row: (get(row),))
    return ListRows(text.encode(), fields, values)


def as_lists(statement: Cypher, params: dict[str, Any] | None
             ) -> tuple[bytes, dict[str, Any] | None]:
    """The text and parameters a write sends: ``$rows`` as lists where the statement allows
    it and every row has its fields (else as they are)."""
    form = list_rows(statement)
    if form is None or not params or not params.get("rows"):
        return statement.encode(), params
    try:
        lists = list(map(form.values, params["rows"]))
    except (KeyError, TypeError):
        return statement.encode(), params
    return form.text, {**params, "rows": lists}


_JSON_KEY = re.compile(rb'[{,]"([A-Za-z_][A-Za-z0-9_]*)":')


def params_header(params: dict[str, Any] | None) -> str | None:
    """The ``CYPHER name=value ...`` header FalkorDB parses its parameters from, made by
    msgspec's JSON encoder instead of the client's recursive Python one (which took as
    long as the store itself on ingest batches), or None when JSON cannot say it (see
    :func:`header_bytes`)."""
    header = header_bytes(params)
    return None if header is None else header.decode()


def header_bytes(params: dict[str, Any] | None) -> bytes | None:
    """:func:`params_header` as the bytes a command sends.

    JSON is FalkorDB's parameter syntax except for two things: map keys, which Cypher
    wants bare (``"key":`` becomes ``key:``, see :func:`_bare_keys`), and ``\\uXXXX``
    escapes, which FalkorDB keeps literally: a value that needs one (a control character)
    gives None, and :func:`literal_header` is used."""
    if not params:
        return None
    parts = []
    for name, value in params.items():
        data = _json.encode(value)
        if b"\\" in data and b"\\u" in data:  # memchr first: most rows have no backslash
            return None
        parts.append(b"`" + name.encode() + b"`=" + _bare_keys(value, data))
    return b"CYPHER " + b" ".join(parts) + b" "


def _bare_keys(value: Any, data: bytes) -> bytes:
    """``data`` (``value`` as JSON) with every map key that is a name unquoted.

    Outside keys the text ``"key":`` cannot occur: a quote inside a string is escaped, and
    after a string value comes ``,``, ``]`` or ``}``, never ``:``. So each key is replaced
    as a whole, at C speed (a substitution with a group template calls Python per match,
    45,000 per trace). The keys are those of the maps ``value`` holds at its top level
    (rows: flat maps of a few keys), unless the text has more maps than those (each
    non-empty map starts with ``{"``; a string that ends in ``{`` adds one): then they are
    found in the text."""
    if b'{"' not in data:  # no map that has a key
        return data
    rows = _top_maps(value)
    if rows is not None and data.count(b'{"') == len(rows) - rows.count({}):
        keys = {k.encode() for k in set().union(*rows) if _is_name(k)}
    else:
        keys = set(_JSON_KEY.findall(data))
    for key in keys:
        data = data.replace(b'"' + key + b'":', key + b":")
    return data


def _top_maps(value: Any) -> list[dict[Any, Any]] | None:
    """The maps ``value`` is or holds at its top level ([] for a scalar), None when it is
    anything else (a list of strings, a list of lists, a dict subclass)."""
    kind = type(value)
    if kind is dict:
        return [value]
    if kind is list or kind is tuple:
        return list(value) if value and set(map(type, value)) == {dict} else None
    return [] if kind in _SCALARS else None


def _is_name(key: Any) -> bool:
    return type(key) is str and PARAM_NAME.fullmatch(key) is not None


def literal_header(params: dict[str, Any]) -> bytes:
    """The header as the official client writes it (``falkordb``'s
    ``stringify_param_value``): strings quoted with ``\\`` and ``"`` escaped and nothing
    else, so control characters go in raw. Used where JSON would need ``\\u`` escapes."""
    return ("CYPHER " + "".join(f"`{name}`={_literal(value)} "
                                for name, value in params.items())).encode()


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(_literal, value)) + "]"
    if isinstance(value, dict):
        for key in value:
            if str(key) == "" or "`" in str(key):
                raise StoreError(f"{key!r} cannot be a map key: FalkorDB's parameters "
                                 "take no empty keys and no backticks in them")
        return "{" + ",".join(f"`{k}`:{_literal(v)}" for k, v in value.items()) + "}"
    return str(value)


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
