"""The store's own RESP connection (`store/resp.py`) against a real FalkorDB server: over
TCP and a unix socket, with its password, error replies, its socket timeout, and a server
that restarts under a connection."""

from __future__ import annotations

import threading
import time

import pytest

from tests.store.conftest import PASSWORD, Server
from ursprung_graph.store.base import StoreError, StoreUnavailable
from ursprung_graph.store.resp import ReplyError, Resp


def tcp(server: Server, **kw) -> Resp:
    return Resp(host="127.0.0.1", port=server.port,
                **{"password": server.password, "timeout": 5.0, **kw})


def unix(server: Server, **kw) -> Resp:
    return Resp(unix_socket=server.socket, **{"password": server.password, "timeout": 5.0, **kw})


@pytest.mark.parametrize("connect", [tcp, unix], ids=["tcp", "unix"])
def test_commands_and_graph_queries_answer(server: Server, connect) -> None:
    resp = connect(server)
    try:
        assert resp.execute("SET", "k", "v\r\n$3\r\nnot a command") == b"OK"
        assert resp.execute(b"GET", b"k") == b"v\r\n$3\r\nnot a command"
        assert resp.execute("GET", "missing") is None
        stats = resp.execute("GRAPH.QUERY", "g", "UNWIND range(1, 3) AS i CREATE (:N {i: i})",
                             "--compact")
        assert b"Nodes created: 3" in stats[0]
        header, rows, _ = resp.execute("GRAPH.RO_QUERY", "g", "MATCH (n:N) RETURN sum(n.i)")
        assert rows == [[b"6"]]  # the verbose format: values as text
    finally:
        resp.close()


def test_a_big_command_and_reply_go_through_whole(server: Server) -> None:
    """Megabytes each way: sent whole, the reply read over many receives."""
    resp = tcp(server)
    value = b"x" * (3 << 20)
    assert resp.execute("SET", "big", value) == b"OK"
    assert resp.execute("GET", "big") == value
    resp.close()


def test_error_replies_are_store_errors_and_the_connection_stays_in_step(
        server: Server) -> None:
    resp = tcp(server)
    with pytest.raises(ReplyError, match="Invalid input") as bad:
        resp.execute("GRAPH.QUERY", "g", "RETUR 1", "--compact")
    assert not isinstance(bad.value, StoreUnavailable)  # not retryable: the statement is wrong
    with pytest.raises(ReplyError, match="Division by zero"):  # an error while it ran
        resp.execute("GRAPH.QUERY", "g", "UNWIND [1, 0] AS x RETURN 1 / x", "--compact")
    with pytest.raises(ReplyError, match="empty key"):
        resp.execute("GRAPH.DELETE", "never-written")
    # several at once: all replies are read, the first error raised, later commands ran
    with pytest.raises(ReplyError, match="WRONGTYPE|wrong kind"):
        resp.pipeline([("SET", "a", "1"), ("LPUSH", "a", "x"), ("SET", "b", "2")])
    assert resp.execute("GET", "b") == b"2"
    assert resp.pipeline([("GET", "a"), ("GET", "b")]) == [b"1", b"2"]
    resp.close()


@pytest.mark.parametrize("connect", [tcp, unix], ids=["tcp", "unix"])
def test_the_password_is_sent_and_a_wrong_or_missing_one_is_unavailable(
        server: Server, connect) -> None:
    ok = connect(server)
    assert ok.execute("PING") == b"PONG"
    ok.close()
    wrong = connect(server, password="not " + PASSWORD)
    with pytest.raises(StoreUnavailable, match="refused the password"):
        wrong.execute("PING")
    missing = connect(server, password=None)
    with pytest.raises(StoreUnavailable, match="NOAUTH"):
        missing.execute("PING")


def test_a_reply_that_does_not_come_in_time_is_unavailable_and_not_resent(
        server: Server) -> None:
    """BLPOP on an empty list blocks in the server: the socket timeout ends the wait once
    (no second wait from a resend), and the next command gets its own reply."""
    resp = tcp(server, timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable, match="did not answer within 0.3"):
        resp.execute("BLPOP", "empty", "5")
    assert time.monotonic() - t0 < 1.5
    assert resp.execute("PING") == b"PONG"  # not the late BLPOP reply: a new connection
    resp.close()


@pytest.mark.parametrize("connect", [tcp, unix], ids=["tcp", "unix"])
def test_a_connection_dropped_by_a_restart_is_opened_again_once(
        server: Server, connect) -> None:
    resp = connect(server)
    assert resp.execute("INCR", "n") == 1
    server.stop()
    with pytest.raises(StoreUnavailable):  # down: the one reconnection fails too
        resp.execute("INCR", "n")
    server.start()  # no data kept: the counter starts again
    assert resp.execute("INCR", "n") == 1
    server.stop()
    server.start()
    assert resp.execute("INCR", "n") == 1  # the idle connection was dead: resent once
    assert resp.execute("INCR", "n") == 2
    resp.close()


def test_a_server_that_is_not_there_is_unavailable(tmp_path) -> None:
    with pytest.raises(StoreUnavailable, match="not reachable"):
        Resp(unix_socket=str(tmp_path / "none.sock"), timeout=1).execute("PING")
    closed = Server(tmp_path)  # a free port nobody listens on
    with pytest.raises(StoreUnavailable, match="not reachable"):
        Resp(host="127.0.0.1", port=closed.port, timeout=1).execute("PING")
    assert issubclass(StoreUnavailable, StoreError)


def test_threads_each_get_a_connection(server: Server) -> None:
    """A command blocked in the server holds its connection only: another thread's command
    on the same ``Resp`` is answered meanwhile."""
    resp = tcp(server)
    resp.execute("PING")  # one idle connection, which the blocked thread takes
    started = threading.Event()
    done: list[object] = []

    def blocked() -> None:
        started.set()
        done.append(resp.execute("BLPOP", "q", "5"))

    thread = threading.Thread(target=blocked)
    thread.start()
    started.wait()
    time.sleep(0.2)
    t0 = time.monotonic()
    assert resp.execute("SET", "x", "1") == b"OK"
    assert time.monotonic() - t0 < 1
    assert resp.execute("RPUSH", "q", "item") == 1  # releases the blocked one
    thread.join(10)
    assert done == [[b"q", b"item"]]
    resp.close()
