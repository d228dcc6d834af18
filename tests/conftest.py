"""Shared fixtures: one real embedded FalkorDB server per test session, a fresh graph per
test (graphs are independent in FalkorDB, so tests do not see each other's data); one real
Neo4j 5 per session, started on first use (tests/neo4j_server.py, or ``NEO4J_URI``)."""

from __future__ import annotations

import atexit
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.neo4j_server import Neo4jServer, Neo4jTarget, Neo4jUnavailable, external
from ursprung_graph.config import Settings
from ursprung_graph.store import embedded_server
from ursprung_graph.store.falkordb import FalkorDBStore

_graph_ids = itertools.count()


@pytest.fixture(scope="session")
def store_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("ursprung-home")
    server = embedded_server(Settings(home=home, store_url=None, graph="x"))
    server.start()
    atexit.register(server.stop)  # also when the run is interrupted: no server left behind
    yield home
    server.stop()


@pytest.fixture()
def settings(store_home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    graph = f"t{os.getpid()}_{next(_graph_ids)}"
    monkeypatch.setenv("URSPRUNG_HOME", str(store_home))
    monkeypatch.setenv("URSPRUNG_GRAPH", graph)
    monkeypatch.delenv("URSPRUNG_STORE", raising=False)
    return Settings(home=store_home, store_url=None, graph=graph)


@pytest.fixture()
def store(settings: Settings) -> Iterator[FalkorDBStore]:
    server = embedded_server(settings)
    s = FalkorDBStore(unix_socket=str(server.socket), graph=settings.graph)
    s.ensure_schema()
    yield s
    s.clear()
    s.close()


@pytest.fixture(scope="session")
def neo4j_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jTarget]:
    given = external()
    if given is not None:
        yield given
        return
    server = Neo4jServer(tmp_path_factory.mktemp("neo4j") / "data")
    try:
        target = server.start()
    except Neo4jUnavailable as exc:
        pytest.fail(f"no Neo4j for the backend tests: {exc}", pytrace=False)
    atexit.register(server.stop)  # also when the run is interrupted
    yield target
    server.stop()
