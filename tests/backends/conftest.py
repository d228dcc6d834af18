"""Both backends for one suite: the embedded FalkorDB of the session (a fresh graph per
test) and the session's real Neo4j 5 (``neo4j_target`` of tests/conftest.py), cleared
before and after each test, since Neo4j community has a single database.

An external Neo4j given by ``NEO4J_URI`` is cleared by these tests: point it at a
disposable database only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.neo4j_server import Neo4jTarget
from ursprung_graph.config import Settings
from ursprung_graph.store import embedded_server
from ursprung_graph.store.base import GraphStore
from ursprung_graph.store.falkordb import FalkorDBStore
from ursprung_graph.store.neo4j import Neo4jStore

BACKENDS = ["falkordb", "neo4j"]


@dataclass(frozen=True, slots=True)
class Backend:
    """A store under test and how the CLI reaches the same graph."""

    name: str
    store: GraphStore
    settings: Settings

    def env(self) -> dict[str, str]:
        """The environment of an `ursprung` subprocess that uses this store."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("URSPRUNG_")}
        env["URSPRUNG_HOME"] = str(self.settings.home)
        env["URSPRUNG_GRAPH"] = self.settings.graph
        if self.settings.store_url:
            env["URSPRUNG_STORE"] = self.settings.store_url
        for key, value in (("USER", self.settings.store_user),
                           ("PASSWORD", self.settings.store_password)):
            if value:
                env[f"URSPRUNG_STORE_{key}"] = value
        return env


def neo4j_store(target: Neo4jTarget) -> Neo4jStore:
    store = Neo4jStore(target.uri, auth=target.auth)
    store.ensure_schema()
    store.clear()
    return store


@pytest.fixture()
def falkordb_backend(settings: Settings) -> Iterator[Backend]:
    server = embedded_server(settings)
    store = FalkorDBStore(unix_socket=str(server.socket), graph=settings.graph)
    store.ensure_schema()
    url = f"falkordb+unix://{server.socket}"
    yield Backend("falkordb", store, Settings(home=settings.home, store_url=url,
                                              graph=settings.graph))
    store.clear()
    store.close()


@pytest.fixture()
def neo4j_backend(neo4j_target: Neo4jTarget, store_home: Path) -> Iterator[Backend]:
    store = neo4j_store(neo4j_target)
    yield Backend("neo4j", store, Settings(
        home=store_home, store_url=neo4j_target.uri, graph="neo4j",
        store_user=neo4j_target.user, store_password=neo4j_target.password))
    store.clear()
    store.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.getfixturevalue(f"{request.param}_backend")
