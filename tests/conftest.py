"""Shared fixtures: one real embedded FalkorDB server per test session, a fresh graph per
test (graphs are independent in FalkorDB, so tests do not see each other's data)."""

from __future__ import annotations

import atexit
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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
