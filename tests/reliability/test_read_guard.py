"""Read-only Cypher never reaches outside the store: LOAD CSV and procedures that are not
local reads are refused by the store itself, so every read path (CLI, API, reports) gets
the rule; the server never connects out."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from ursprung_graph.cli import main
from ursprung_graph.store.base import ReadRefused
from ursprung_graph.store.readguard import check_read


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # the stdlib's name
        _Counting.hits.append(self.path)
        body = b"a,b\n1,2\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def web() -> Iterator[str]:
    """A web server on a free loopback port that counts what it is asked for."""
    _Counting.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_load_csv_is_refused_and_never_connects(store, web: str) -> None:
    for query in (f"LOAD CSV FROM '{web}/x.csv' AS row RETURN row",
                  f"load /* comment */ csv with headers from '{web}/y.csv' AS r RETURN r",
                  f"MATCH (n) WITH count(n) AS c LOAD CSV FROM '{web}/z' AS r RETURN r, c"):
        result = CliRunner().invoke(main, ["cypher", query])
        assert result.exit_code == 11, result.output
        assert "LOAD CSV is refused" in result.output and "Traceback" not in result.output
        with pytest.raises(ReadRefused):  # the store's own guard: the API and reports too
            store.read(query)
    assert _Counting.hits == []


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
