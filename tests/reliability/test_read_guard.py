"""Read-only Cypher never reaches outside the store: LOAD CSV and procedures that are not
local reads are refused by the store itself, so every read path (CLI, API, reports) gets
the rule; the server never connects out."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from ursprung_graph.cli.group import cli
from ursprung_graph.store.base import ReadRefused
from ursprung_graph.store.cypher import Cypher
from ursprung_graph.store.readguard import check_read

MARKER = Cypher("CREATE (:Marker)")


@pytest.fixture()
def listener() -> Iterator[tuple[str, list[int]]]:
    """A TCP listener on a free loopback port that counts the connections it gets, and its
    https URL (FalkorDB fetches https URIs; what it would send does not matter)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    accepted: list[int] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{sock.getsockname()[1]}", accepted
    done.set()
    thread.join()
    sock.close()


def test_load_csv_is_refused_and_never_connects(store, listener) -> None:
    web, accepted = listener
    store.write([(MARKER, {})])  # a graph that exists: FalkorDB answers reads on it
    for query in (f"LOAD CSV FROM '{web}/x.csv' AS row RETURN row",
                  f"load /* comment */ csv with headers from '{web}/y.csv' AS r RETURN r",
                  f"MATCH (n) WITH count(n) AS c LOAD CSV FROM '{web}/z' AS r RETURN r, c"):
        result = CliRunner().invoke(cli, ["cypher", query])
        assert result.exit_code == 11, result.output
        assert "LOAD CSV is refused" in result.output and "Traceback" not in result.output
        with pytest.raises(ReadRefused):  # the store's own guard: the API and reports too
            store.read(query)
    time.sleep(0.3)
    assert accepted == []


def test_procedures_that_are_not_local_reads_are_refused(store) -> None:
    for query in ("CALL dbms.security.listUsers()", "CALL apoc.load.json('http://x') YIELD v",
                  "CALL `apoc.load.csv`('x')", "MATCH (n) CALL db.idx.fulltext.drop('x')"):
        with pytest.raises(ReadRefused, match="refused"):
            store.read(query)
    assert store.read("CALL db.labels() YIELD label RETURN count(label) AS n")[0]["n"] >= 0
    store.read("CALL db.propertyKeys() YIELD propertyKey RETURN propertyKey")
    store.read("CALL { MATCH (n) RETURN n } RETURN count(*) AS n")


@pytest.mark.parametrize("query", [
    "MATCH (f:File {path: 'LOAD CSV FROM x'}) RETURN f",  # a string
    "MATCH (f:File) WHERE f.name = \"it's LOAD CSV\" RETURN f",
    "MATCH (`LOAD`:File) RETURN `LOAD`.csv",  # a quoted name
    "// LOAD CSV\nMATCH (n) RETURN count(n)",  # a comment
    "MATCH (f:File) WHERE f.path = 'CALL apoc.load.json' RETURN f",
])
def test_words_in_strings_names_and_comments_are_not_statements(query: str) -> None:
    check_read(query)
