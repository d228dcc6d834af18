"""What only the Neo4j backend has: constraints that enforce keys, the mapping of driver
errors, URL dispatch with credentials, and concurrent writers resolved by the driver's
retries of managed transactions."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from tests.backends.conftest import Backend
from tests.graphdump import dump
from tests.neo4j_server import Neo4jTarget
from tests.test_real_logs import HOST
from ursprung_graph.config import ConfigError, Settings, load_config
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.schema.graph import LOOKUP_PROPERTIES, UNIQUE_KEYS
from ursprung_graph.store import open_store
from ursprung_graph.store.base import StoreError, StoreUnavailable
from ursprung_graph.store.cypher import Cypher
from ursprung_graph.store.neo4j import Neo4jStore, joined

DATA = Path(__file__).resolve().parents[1] / "data"
CONSTRAINTS = Cypher("SHOW CONSTRAINTS YIELD labelsOrTypes, properties, type "
                     "RETURN labelsOrTypes[0] AS label, properties[0] AS prop, type")
INDEXES = Cypher("SHOW RANGE INDEXES YIELD labelsOrTypes, properties "
                 "RETURN labelsOrTypes[0] AS label, properties[0] AS prop")


def test_keys_are_unique_constraints_and_lookups_are_indexed(neo4j_backend: Backend) -> None:
    store = neo4j_backend.store
    store.ensure_schema()  # again: idempotent
    constraints = {(r["label"], r["prop"]) for r in store.read(CONSTRAINTS)
                   if r["type"] == "UNIQUENESS"}
    assert constraints == set(UNIQUE_KEYS)
    assert set(LOOKUP_PROPERTIES) <= {(r["label"], r["prop"]) for r in store.read(INDEXES)}
    create = Cypher("CREATE (:Process {key: $key})")
    store.write([(create, {"key": "p:x:1:0"})])
    with pytest.raises(StoreError, match="already exists") as refused:
        store.write([(create, {"key": "p:x:1:0"})])
    assert not isinstance(refused.value, StoreUnavailable)  # retrying would not help


def test_a_refused_statement_is_a_store_error(neo4j_backend: Backend) -> None:
    with pytest.raises(StoreError, match="Invalid input") as refused:
        neo4j_backend.store.read("MATCH (n RETURN n")
    assert not refused.value.retryable


def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    store = Neo4jStore(f"bolt://127.0.0.1:{port}", connection_timeout=2,
                       max_transaction_retry_time=1)
    with pytest.raises(StoreUnavailable) as down:
        store.read(Cypher("RETURN 1 AS one"))
    assert down.value.retryable and f"127.0.0.1:{port}" in str(down.value)
    store.close()


def test_urls_select_the_neo4j_store_with_credentials(neo4j_target: Neo4jTarget,
                                                       tmp_path: Path) -> None:
    host_port = neo4j_target.uri.split("://", 1)[1]
    for url in (f"bolt://{host_port}", f"neo4j://{host_port}", f"bolt://neo4j:pw@{host_port}"):
        config = load_config(env={"URSPRUNG_STORE": url, "URSPRUNG_HOME": str(tmp_path),
                                  "URSPRUNG_STORE_USER": neo4j_target.user or "",
                                  "URSPRUNG_STORE_PASSWORD": neo4j_target.password or ""})
        store = open_store(config.settings)
        assert isinstance(store, Neo4jStore)
        assert store.read(Cypher("RETURN 1 AS one")) == [{"one": 1}]
        store.close()
    with pytest.raises(ConfigError, match="neo4j://HOST:PORT"):
        load_config(env={"URSPRUNG_STORE": f"neo4jx://{host_port}"})
    with pytest.raises(StoreError, match="bad Neo4j URL"):
        open_store(Settings(home=tmp_path, store_url="bolt://h:1?x=1", graph="g"))


def test_adjacent_chunks_are_joined_in_order() -> None:
    a, b = Cypher("UNWIND $rows AS r RETURN r"), Cypher("UNWIND $rows AS r RETURN r.x")
    parts = [(a, {"rows": [1, 2]}), (a, {"rows": [3]}), (b, {"rows": [4]}), (a, {"rows": [5]}),
             (a, {"rows": [6, 7], "other": 1}), (a, {"rows": [8, 9]}), (a, {"rows": [10]})]
    assert joined(parts, limit=3) == [
        (a, {"rows": [1, 2, 3]}), (b, {"rows": [4]}), (a, {"rows": [5]}),
        (a, {"rows": [6, 7], "other": 1}), (a, {"rows": [8, 9, 10]})]


def test_concurrent_writers_end_in_the_graph_of_one(neo4j_backend: Backend) -> None:
    """Two writers importing the same log at once MERGE the same hosts, files and edges:
    the driver retries the deadlocked transaction, and the graph is that of one import."""
    store = neo4j_backend.store
    import_file(store, DATA / "pipeline.audit.log", host=HOST, chunk_events=500)
    alone = dump(store)
    store.clear()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            import_file(store, DATA / "pipeline.audit.log", host=HOST, chunk_events=500)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert dump(store) == alone
