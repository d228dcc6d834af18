"""The Neo4j 5 backend, through the official `neo4j` driver over Bolt.

``bolt://`` talks to one server, ``neo4j://`` routes in a cluster (writes to the leader,
reads to followers); the ``+s`` / ``+ssc`` schemes add TLS. Reads run in managed read
transactions, so a statement that writes is refused by the server. A call to ``write`` is
one managed write transaction (``execute_write``): the driver retries it on transient
failures (deadlocks between concurrent MERGEs, a leader switch), which is safe because
every upsert is idempotent, and it is committed, hence durable, when the call returns.

Rows are the same plain values the FalkorDB backend returns (``falkordb.plain``): nodes and
relationships become dicts with ``_id``/``_labels`` or ``_type``/``_src``/``_dst``, so the
query layer runs unchanged. Ids are Neo4j element ids (strings), not FalkorDB's integers;
nothing above the store relies on their type.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import neo4j
from neo4j import exceptions as nex
from neo4j.graph import Node, Path, Relationship

from ..schema.graph import LOOKUP_PROPERTIES, UNIQUE_KEYS
from .base import Row, StoreError, StoreTimeout, StoreUnavailable
from .cypher import Cypher
from .readguard import check_read


def _name(label: str, prop: str) -> str:
    return f"ursprung_{label.lower()}_{prop}"


#: Backend DDL (Neo4j 5 syntax, idempotent): a uniqueness constraint per key (it also
#: gives the index every MERGE looks up) and a range index per lookup property.
SCHEMA: tuple[Cypher, ...] = tuple(
    Cypher(f"CREATE CONSTRAINT {_name(label, prop)} IF NOT EXISTS "
           f"FOR (n:{label}) REQUIRE n.{prop} IS UNIQUE")
    for label, prop in UNIQUE_KEYS
) + tuple(
    Cypher(f"CREATE INDEX {_name(label, prop)} IF NOT EXISTS FOR (n:{label}) ON (n.{prop})")
    for label, prop in LOOKUP_PROPERTIES
)

#: Deletes the graph in transactions of bounded size (a single one would need memory for
#: every node); runs in an auto-commit transaction, as ``IN TRANSACTIONS`` requires.
CLEAR = Cypher(
    "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS"
)

#: Rows per UNWIND statement sent to Neo4j: the ingest code cuts statements at 2,000 rows
#: (FalkorDB's sweet spot); adjacent chunks of one statement are joined up to this many,
#: since each statement costs Neo4j a round trip and a plan lookup.
ROWS_PER_STATEMENT = 10_000

#: Errors the same call may get past later: the server is down, restarting, or busy.
_RETRYABLE = (nex.ServiceUnavailable, nex.SessionExpired, nex.TransientError,
              nex.IncompleteCommit, OSError)


def plain(value: Any) -> Any:
    """Driver objects as plain Python values (the rows both backends return)."""
    if isinstance(value, Node):
        return {"_id": value.element_id, "_labels": sorted(value.labels), **dict(value.items())}
    if isinstance(value, Relationship):
        start, end = value.start_node, value.end_node
        return {
            "_id": value.element_id, "_type": value.type,
            "_src": start.element_id if start is not None else None,
            "_dst": end.element_id if end is not None else None, **dict(value.items()),
        }
    if isinstance(value, Path):
        return {"nodes": [plain(n) for n in value.nodes],
                "edges": [plain(e) for e in value.relationships]}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


class Neo4jStore:
    """A graph in a Neo4j 5 database (community: the default database ``neo4j``)."""

    def __init__(self, uri: str, *, auth: tuple[str, str] | None = None,
                 database: str | None = None, connection_timeout: float = 30.0,
                 max_transaction_retry_time: float = 30.0, ca_file: str | None = None) -> None:
        """``ca_file``: PEM of the CAs the server's certificate must chain to, for a
        ``+s`` URL (instead of the system's CAs)."""
        self.name = database or "neo4j"
        self._database = database
        uri, tls = _trust(uri, ca_file)
        try:
            self._driver = neo4j.GraphDatabase.driver(
                uri, auth=auth, connection_timeout=connection_timeout, **tls,
                max_transaction_retry_time=max_transaction_retry_time,
                user_agent="ursprung-graph",
                # Notices such as "relationship type LINKED_TO does not exist" (a graph that
                # has none yet) are not for users; errors still raise.
                notifications_min_severity="OFF",
            )
        except (nex.ConfigurationError, ValueError) as exc:
            raise StoreError(f"bad Neo4j URL {uri!r}: {exc}") from exc
        self._uri = uri

    def _session(self, mode: str) -> neo4j.Session:
        return self._driver.session(database=self._database, default_access_mode=mode)

    def ensure_schema(self) -> None:
        with self._errors(), self._session(neo4j.WRITE_ACCESS) as session:
            for statement in SCHEMA:
                try:
                    session.run(statement).consume()
                except nex.ClientError as exc:
                    # two workers starting at once: the other one created it first
                    if "AlreadyExists" not in (exc.code or ""):
                        raise

    def read(self, statement: str, params: dict[str, Any] | None = None, *,
             timeout: float | None = None) -> list[Row]:
        check_read(statement)
        work = _collect if timeout is None else neo4j.unit_of_work(
            timeout=max(0.001, timeout))(_collect)
        with self._errors(), self._session(neo4j.READ_ACCESS) as session:
            return session.execute_read(work, statement, params or {})

    def write(self, statements: list[tuple[Cypher, dict[str, Any]]]) -> None:
        if not statements:
            return
        with self._errors(), self._session(neo4j.WRITE_ACCESS) as session:
            session.execute_write(_apply, joined(statements))

    def clear(self) -> None:
        with self._errors(), self._session(neo4j.WRITE_ACCESS) as session:
            session.run(CLEAR).consume()

    def close(self) -> None:
        self._driver.close()

    def _errors(self) -> AbstractContextManager[None]:
        return _errors(self._uri)


def _trust(uri: str, ca_file: str | None) -> tuple[str, dict[str, Any]]:
    """The URL and TLS options for the driver. The driver takes custom CAs only with the
    plain schemes, so ``bolt+s://`` with a CA file becomes ``bolt://`` with encryption on
    and those CAs as the only trusted ones (hostname checked, as with ``+s``)."""
    if ca_file is None:
        return uri, {}
    scheme, sep, rest = uri.partition("://")
    if scheme not in ("neo4j+s", "bolt+s"):
        raise StoreError(f"store.ca_file is for TLS with a checked certificate: use "
                         f"neo4j+s:// or bolt+s:// instead of {scheme}://")
    if not os.path.isfile(ca_file):
        raise StoreError(f"store.ca_file {ca_file!r} is not a readable file")
    return scheme.removesuffix("+s") + sep + rest, {
        "encrypted": True, "trusted_certificates": neo4j.TrustCustomCAs(ca_file)}


def _collect(tx: neo4j.ManagedTransaction, statement: str,
             params: dict[str, Any]) -> list[Row]:
    result = tx.run(statement, params)
    keys = result.keys()
    return [dict(zip(keys, (plain(v) for v in record.values()), strict=True))
            for record in result]


def joined(statements: list[tuple[Cypher, dict[str, Any]]],
           limit: int = ROWS_PER_STATEMENT) -> list[tuple[Cypher, dict[str, Any]]]:
    """Adjacent statements with the same text and only a ``rows`` list as parameters, as
    one statement of up to ``limit`` rows (the order of rows and statements is kept)."""
    out: list[tuple[Cypher, dict[str, Any]]] = []
    for statement, params in statements:
        if out and out[-1][0] == statement and params.keys() == {"rows"} \
                and out[-1][1].keys() == {"rows"} \
                and len(out[-1][1]["rows"]) + len(params["rows"]) <= limit:
            out[-1] = (statement, {"rows": out[-1][1]["rows"] + params["rows"]})
        else:
            out.append((statement, params))
    return out


def _apply(tx: neo4j.ManagedTransaction,
           statements: list[tuple[Cypher, dict[str, Any]]]) -> None:
    for statement, params in statements:
        tx.run(statement, params).consume()


@contextmanager
def _errors(uri: str) -> Iterator[None]:
    """Driver errors as the store's (:func:`_store_error`)."""
    try:
        yield
    except (nex.Neo4jError, nex.DriverError, OSError) as exc:
        raise _store_error(exc, uri) from exc


def _store_error(exc: BaseException, uri: str) -> StoreError:
    """StoreUnavailable when a retry may help, StoreTimeout when a read ran past the
    timeout it was given, else StoreError (a refused statement, bad credentials, a TLS
    certificate the configured CA did not sign)."""
    if isinstance(exc, nex.AuthError):
        return StoreError(f"Neo4j at {uri} refused the credentials: {_message(exc)}")
    if isinstance(exc, nex.Neo4jError) and "TransactionTimedOut" in (exc.code or ""):
        return StoreTimeout(f"Neo4j stopped a read: {_message(exc)}")
    if isinstance(exc, _RETRYABLE):
        refused = _certificate_error(exc)
        if refused is not None:
            return StoreError(f"Neo4j at {uri}: its TLS certificate is not trusted "
                              f"({refused}); check store.ca_file")
        return StoreUnavailable(f"Neo4j at {uri} is not reachable now: {_message(exc)}")
    return StoreError(f"Neo4j: {_message(exc)}")


def _certificate_error(exc: BaseException) -> str | None:
    """The reason a TLS certificate was refused, somewhere in the causes of ``exc``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _message(exc: BaseException) -> str:
    if isinstance(exc, nex.Neo4jError) and exc.message:
        return f"{exc.message} ({exc.code})"
    return str(exc) or type(exc).__name__
