"""The FalkorDB store writes without the official client: opening a store and writing imports
neither `falkordb` nor `redis` (a read then does); over TCP with a password, across a
server restart, with the store's error meanings."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.events import Script
from tests.store.conftest import PASSWORD, Server
from ursprung_graph.config import Settings
from ursprung_graph.ingest.upserts import Batch
from ursprung_graph.store.base import StoreError, StoreUnavailable
from ursprung_graph.store.cypher import Cypher
from ursprung_graph.store.falkordb import FalkorDBStore

REPO = Path(__file__).resolve().parents[2]
COUNT_FILES = Cypher("MATCH (f:File) RETURN count(f) AS n")


def statements(n: int = 20) -> list:
    script = Script("h")
    proc = script.proc(100, 1, ["python3", "gen.py"])
    for i in range(n):
        script.write(i, proc, f"/w/out-{i}.txt")
    batch = Batch()
    for ev in script.events:
        batch.add(ev)
    return batch.statements()


CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from tests.store.test_falkordb_store import COUNT_FILES, statements
    from ursprung_graph.config import Settings
    from ursprung_graph.store import open_store

    home, graph, url = sys.argv[1], sys.argv[2], sys.argv[3] or None
    store = open_store(Settings(home=Path(home), store_url=url, graph=graph), autostart=False)
    store.ensure_schema()
    store.write(statements())
    wrote = sorted(m for m in sys.modules if m.split(".")[0] in ("falkordb", "redis"))
    files = store.read(COUNT_FILES)
    read = sorted(m for m in sys.modules if m.split(".")[0] in ("falkordb", "redis"))
    store.clear()
    store.close()
    print(json.dumps({"wrote": wrote, "read": "falkordb" in read, "files": files}))
""")


def child(home: Path, graph: str, url: str = "") -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(home), graph, url], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_opening_the_embedded_store_and_writing_imports_no_client(settings: Settings) -> None:
    got = child(settings.home, settings.graph)
    assert got["wrote"] == []  # neither falkordb nor redis
    assert got["read"] and got["files"] == [{"n": 20}]  # a read imports the client


def test_a_store_by_url_with_a_password_writes_without_the_client(
        server: Server, tmp_path: Path) -> None:
    url = f"falkordb://:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{server.port}"
    got = child(tmp_path, "g", url)
    assert got["wrote"] == [] and got["files"] == [{"n": 20}]


def tcp_store(server: Server, **kw) -> FalkorDBStore:
    return FalkorDBStore(host="127.0.0.1", port=server.port, password=server.password,
                         graph="g", **kw)


def test_writes_and_reads_go_on_after_the_server_restarts(server: Server) -> None:
    store = tcp_store(server)
    store.ensure_schema()
    store.write(statements(5))
    assert store.read(COUNT_FILES) == [{"n": 5}]
    server.stop()  # no data kept: the graph is empty after the restart
    with pytest.raises(StoreUnavailable):
        store.write(statements(3))
    with pytest.raises(StoreUnavailable):
        store.read(COUNT_FILES)
    server.start()
    store.ensure_schema()  # the marker is gone with the data: the schema is made again
    store.write(statements(3))
    assert store.read(COUNT_FILES) == [{"n": 3}]
    server.stop()
    server.start()
    store.write(statements(4))  # the idle connection was dropped: opened again, resent
    assert store.read(COUNT_FILES) == [{"n": 4}]
    store.close()


def test_the_schema_is_made_once_and_clear_removes_graph_and_marker(server: Server) -> None:
    store = tcp_store(server)
    store.clear()  # nothing there yet: not an error
    store.ensure_schema()
    marker = store._resp.execute("GET", "ursprung:schema:g")
    assert marker is not None
    store.ensure_schema()  # the marker says it is there
    store.write(statements(2))
    # reads resolve labels by the ids the graph has: after clear they start again
    assert store.read("MATCH (f:File) RETURN f LIMIT 1")[0]["f"]["_labels"] == ["File"]
    store.clear()
    assert store._resp.execute("GET", "ursprung:schema:g") is None
    assert store.read(COUNT_FILES) == []  # the graph is gone (a read of an empty key)
    store._query(b"CREATE (:Other {x: 1})")
    assert store.read("MATCH (o) RETURN o")[0]["o"]["_labels"] == ["Other"]
    store.close()


def test_a_refused_statement_is_a_store_error_not_unavailable(server: Server) -> None:
    store = tcp_store(server)
    with pytest.raises(StoreError, match="Invalid input") as bad:
        store.write([(Cypher("UNWIND $rows AS r MERG (n {k: r})"), {"rows": [1]})])
    assert not isinstance(bad.value, StoreUnavailable)
    store.close()


def test_a_wrong_password_is_unavailable(server: Server) -> None:
    store = FalkorDBStore(host="127.0.0.1", port=server.port, password="wrong", graph="g")
    with pytest.raises(StoreUnavailable, match="refused the password"):
        store.ensure_schema()
