"""The API under test: the real app on uvicorn in a thread, on a free loopback port (or
another address), and a real GraphQL client (`gql` over HTTP) talking to it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
import uvicorn
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport

from ursprung_graph.api.app import create_app
from ursprung_graph.api.limits import Limits

#: For tests of answers rather than limits: a time budget no loaded machine runs out of.
PATIENT = Limits(time_budget=120.0)


class Api:
    """A running app: its base URL and a gql client (``query``) with an optional token."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token

    def client(self, token: str | None = None) -> Client:
        headers = {"Authorization": f"Bearer {token or self.token}"} if (
            token or self.token) else {}
        transport = RequestsHTTPTransport(url=f"{self.url}/graphql", headers=headers,
                                          timeout=60, retries=0)
        return Client(transport=transport, fetch_schema_from_transport=False)

    def query(self, text: str, **variables: Any) -> dict[str, Any]:
        with self.client() as session:
            request = gql(text)
            request.variable_values = variables
            result: dict[str, Any] = session.execute(request)
        return result

    def errors(self, text: str, **variables: Any) -> list[dict[str, Any]]:
        """The errors of a query that must fail."""
        try:
            self.query(text, **variables)
        except TransportQueryError as exc:
            return list(exc.errors or [])
        raise AssertionError("the query did not fail")

    def post(self, body: bytes | str, **headers: str) -> requests.Response:
        h = {"Content-Type": "application/json", **headers}
        if self.token and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        return requests.post(f"{self.url}/graphql", data=body, headers=h, timeout=60)


@contextmanager
def serving(store: Any, *, host: str = "127.0.0.1", token: str | None = None,
            limits: Limits | None = None, connect: str = "127.0.0.1") -> Iterator[Api]:
    """The app over ``store`` on uvicorn in a thread, bound to (``host``, a free port)."""
    app = create_app(store, token=token, limits=limits)
    # IPPROTO_TCP, as uvicorn's own bind (`ursprung serve`) makes it: asyncio turns Nagle
    # off only on sockets that say they are TCP, and with it on every answer waits ~40 ms
    # for the client's delayed ACK before its body is sent.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield Api(f"http://{connect}:{port}", token)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture()
def serve(store) -> Iterator[Callable[..., Any]]:
    """``serve(**options)`` -> a context manager serving the test's store."""
    def start(**options: Any) -> Any:
        return serving(store, **options)
    yield start
