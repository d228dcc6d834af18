"""A small synchronous RESP client: what the FalkorDB backend writes through.

Commands go over a unix socket or TCP (``AUTH`` when a password is given, one socket
timeout for connecting and for each reply) and replies are parsed by ``hiredis.Reader``
(C). It imports in a few milliseconds, where the official client (`falkordb`, which imports
all of redis-py) takes ~0.16 s of CPU: every command that opens the store and writes would
pay that, and `ursprung run` pays it beside the command it traces.

Errors: a server's error reply is :class:`ReplyError` (a :class:`StoreError`); the replies
that mean "not now" (``LOADING``, the password refused or missing, too many clients) and
every failure to connect, send or receive are :class:`StoreUnavailable`, the meaning
redis-py gives them. A timeout closes the connection (its reply may still come) and is not
retried.

Resending. A connection that was idle in the pool and turns out dropped (the server
restarted, or closed it) is replaced once and the commands sent again. That is only safe
for commands that may run twice: the store sends its writes, which are idempotent upserts
(``MERGE``), its schema marker and index creation, and ``clear``, and `db stop` its
``INFO`` and ``BGREWRITEAOF``; nothing that must not run twice may be sent through
:meth:`Resp.execute` or :meth:`Resp.pipeline`.

A :class:`Resp` is safe to share between threads: each call takes a connection of its own
from a small pool (two writers on one store write at the same time, as with redis-py).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from typing import Any

import hiredis

from .base import StoreError, StoreUnavailable

Arg = bytes | str | int
Command = Sequence[Arg]

#: Error replies that mean the server cannot take the command now (redis-py's
#: ConnectionError subclasses: BusyLoadingError, AuthenticationError, ...).
UNAVAILABLE = (b"LOADING", b"NOAUTH", b"WRONGPASS", b"ERR max number of clients",
               b"ERR invalid password")
#: Bytes asked of the socket per ``recv``.
READ_BYTES = 1 << 16


class ReplyError(StoreError):
    """The server answered a command with an error."""


def pack(command: Command) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


class Dropped(StoreUnavailable):
    """A connection failed while a command was on it."""


class Connection:
    """One socket to the server and the parser of its replies."""

    def __init__(self, sock: socket.socket, where: str) -> None:
        self._sock = sock
        self._where = where
        self._reader = hiredis.Reader()

    @classmethod
    def open(cls, *, unix_socket: str | None, host: str, port: int, password: str | None,
             timeout: float | None) -> Connection:
        where = unix_socket or f"{host}:{port}"
        try:
            if unix_socket is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                try:
                    sock.connect(unix_socket)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((host, port), timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise StoreUnavailable(f"FalkorDB is not reachable at {where}: {exc}") from exc
        conn = cls(sock, where)
        if password is not None:
            try:
                reply = conn.call([(b"AUTH", password)])[0]
            except BaseException:
                conn.close()
                raise
            if isinstance(reply, hiredis.ReplyError):
                conn.close()
                raise StoreUnavailable(f"FalkorDB at {where} refused the password: {reply}")
        return conn

    def call(self, commands: Sequence[Command]) -> list[Any]:
        """Send all the commands, then read one reply each (error replies as values)."""
        try:
            self._sock.sendall(b"".join(map(pack, commands)))
            return [self._reply() for _ in commands]
        except TimeoutError as exc:
            self.close()
            raise StoreUnavailable(f"FalkorDB at {self._where} did not answer within "
                                   f"{self._sock.gettimeout()} s") from exc
        except OSError as exc:
            self.close()
            raise Dropped(f"the connection to FalkorDB at {self._where} failed: "
                          f"{exc}") from exc
        except hiredis.ProtocolError as exc:
            self.close()
            raise StoreError(f"FalkorDB at {self._where} sent what is not RESP: {exc}") from exc
        except BaseException:
            self.close()  # interrupted between a command and its reply: out of step
            raise

    def _reply(self) -> Any:
        reply = self._reader.gets()
        while reply is False:
            data = self._sock.recv(READ_BYTES)
            if not data:
                raise ConnectionResetError("the server closed the connection")
            self._reader.feed(data)
            reply = self._reader.gets()
        return reply

    def close(self) -> None:
        self._sock.close()


class Resp:
    """Connections to one server, opened when needed and kept for the next call."""

    def __init__(self, *, unix_socket: str | None = None, host: str = "127.0.0.1",
                 port: int = 6379, password: str | None = None,
                 timeout: float | None = None) -> None:
        self._unix_socket = unix_socket
        self._host = host
        self._port = port
        self._password = password
        self._timeout = timeout
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def execute(self, *command: Arg) -> Any:
        """The reply to one command; an error reply raises :class:`ReplyError`."""
        return self.pipeline([command])[0]

    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """The replies to the commands, all sent before any reply is read. An error reply
        raises after all replies were read (the connection stays in step); the first one
        if several, and the commands after it have run."""
        replies = self._call(commands)
        for reply in replies:
            check(reply)
        return replies

    def _call(self, commands: Sequence[Command]) -> list[Any]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        else:
            try:
                replies = conn.call(commands)
            except Dropped:  # the server restarted, or closed an idle connection
                conn = self._connect()
            else:
                self._give(conn)
                return replies
        replies = conn.call(commands)
        self._give(conn)
        return replies

    def _connect(self) -> Connection:
        return Connection.open(unix_socket=self._unix_socket, host=self._host,
                               port=self._port, password=self._password,
                               timeout=self._timeout)

    def _give(self, conn: Connection) -> None:
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def check(reply: Any) -> None:
    """Raise the error a reply is or ends with (FalkorDB ends a query's reply with the error
    that stopped it while it ran)."""
    error = reply if isinstance(reply, hiredis.ReplyError) else (
        reply[-1] if isinstance(reply, list) and reply
        and isinstance(reply[-1], hiredis.ReplyError) else None)
    if error is None:
        return
    text = str(error)
    if text.encode().startswith(UNAVAILABLE):
        raise StoreUnavailable(f"FalkorDB cannot answer now: {text}")
    raise ReplyError(text)
