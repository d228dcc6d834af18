"""What guards every route: the bearer token (checked in constant time on every request
but ``/healthz``), the size of request bodies, and the rule that only a loopback bind may
go without a token."""

from __future__ import annotations

import hmac
import ipaddress
import json
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import UrsprungError
from .errors import error_body

#: Routes anyone may ask (a load balancer's health check carries no token).
OPEN_PATHS = frozenset({"/healthz"})


class InsecureBind(UrsprungError):
    """A non-loopback bind without a token."""

    exit_code = 2


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token."""
    if not token and not is_loopback(host):
        raise InsecureBind(f"refusing to bind {host} without a token: other machines could "
                           "read the whole graph; give --token-file (or bind 127.0.0.1)")


def read_token(path: str | Path) -> str:
    """The token in ``path`` (surrounding white space removed); it must not be empty."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UrsprungError(f"cannot read the token file {path}: {exc.strerror}") from exc
    if len(token) < 16:
        raise UrsprungError(f"the token in {path} is shorter than 16 characters")
    return token


async def _refuse(send: Send, status: int, message: str, code: str,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(error_body(message, code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class TokenMiddleware:
    """``Authorization: Bearer TOKEN`` (or the cookie ``ursprung_token``, for browsers) on
    every HTTP request except :data:`OPEN_PATHS`; no token configured: nothing checked."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket") \
                or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
            elif name == b"cookie" and not given:
                for part in value.split(b";"):
                    k, _, v = part.strip().partition(b"=")
                    if k == b"ursprung_token":
                        given = v
        if not hmac.compare_digest(given, self.token):
            await _refuse(send, 401, "a valid bearer token is required", "UNAUTHENTICATED",
                          [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes (413), by Content-Length or as they
    stream in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._too_large(send)
                return
        seen = 0
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, guarded_send)
        except _TooLarge:
            if not started:
                await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        await _refuse(send, 413, f"request body over {self.limit} bytes",
                      "PAYLOAD_TOO_LARGE")


class _TooLarge(Exception):
    pass
