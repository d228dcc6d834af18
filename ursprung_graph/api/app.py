"""The Starlette app behind ``ursprung serve``: ``/graphql`` (POST: the API; GET: GraphiQL),
``/graphiql/*`` (its files), ``/healthz``, ``/metrics``, and the GUI's routes
(:mod:`ursprung_graph.api.gui`).

Every route, the GUI's included, passes the same guards: the body limit, the bearer token
(except ``/healthz``) and the metrics. GUI handlers find the store, the classifier and the
limits on ``request.app.state`` (``store``, ``classifier``, ``limits``, and ``content``:
the content store, for diffs).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from ..content import ContentStore
from ..query.classify import Classifier
from ..query.nodes import ping
from ..store.base import GraphStore
from . import graphiql
from .context import Context
from .errors import error_body, format_error
from .gui import routes as gui_routes
from .limits import Limits
from .metrics import ApiMetrics
from .schema import build_schema
from .security import BodyLimitMiddleware, TokenMiddleware


class GraphQLApp(GraphQL[Context, None]):
    """strawberry's ASGI view with our context, error format and metrics."""

    def __init__(self, store: GraphStore, classifier: Classifier, limits: Limits,
                 metrics: ApiMetrics) -> None:
        super().__init__(build_schema(limits), graphql_ide=None, allow_queries_via_get=False)
        self.store = store
        self.classifier = classifier
        self.limits = limits
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await Response("websockets are not served", status_code=404)(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        if request.method in ("GET", "HEAD"):  # a browser: GraphiQL
            await (await graphiql.page(request))(scope, receive, send)
            return
        refusal = await _malformed(request)
        if refusal is not None:
            await JSONResponse(error_body(refusal, "BAD_REQUEST"), status_code=400)(
                scope, receive, send)
            return
        try:
            response = await self.run(request)
        except HTTPException as exc:
            response = JSONResponse(error_body(exc.reason, "BAD_REQUEST"),
                                    status_code=exc.status_code)
        await response(scope, receive, send)

    async def get_context(self, request: Any, response: Any) -> Context:
        ctx = Context(store=self.store, classifier=self.classifier, limits=self.limits,
                      deadline=time.monotonic() + self.limits.time_budget)
        request.state.ctx = ctx
        return ctx

    async def process_result(self, request: Any, result: ExecutionResult
                             ) -> GraphQLHTTPResponse:
        out: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            errors: list[object] = []
            for error in result.errors:
                formatted = format_error(error)
                self.metrics.errors.labels(formatted["extensions"]["code"]).inc()
                errors.append(formatted)
            out["errors"] = errors
        ctx = getattr(request.state, "ctx", None)
        if ctx is not None and ctx.truncated:
            self.metrics.truncated.inc(ctx.truncated)
        return out


async def _malformed(request: Request) -> str | None:
    """Why a JSON body is not one GraphQL request (None when it is one, or not JSON)."""
    if "json" not in request.headers.get("content-type", ""):
        return None
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return "the body is not JSON"
    if not isinstance(body, dict):
        return "the body must be a JSON object with a query (batches are not served)"
    if not isinstance(body.get("query"), str):
        return "the body has no query string"
    if not isinstance(body.get("variables") or {}, dict):
        return "variables must be a JSON object"
    return None


class MetricsMiddleware:
    """Counts requests by route and status, and times them."""

    ROUTES = ("/graphql", "/healthz", "/metrics", "/graphiql")

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        route = next((r for r in self.ROUTES if path.startswith(r)), "other")
        status = 500
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.seconds.labels(route).observe(time.perf_counter() - started)


def create_app(store: GraphStore, *, token: str | None = None, limits: Limits | None = None,
               content: ContentStore | None = None,
               classifier: Classifier | None = None,
               metrics: ApiMetrics | None = None) -> Starlette:
    """The app over ``store``; with ``token``, every request but ``/healthz`` must carry
    it (the caller decides whether the bind needs one: :func:`.security.check_bind`)."""
    limits = limits or Limits()
    classifier = classifier or Classifier()
    metrics = metrics or ApiMetrics()
    view = GraphQLApp(store, classifier, limits, metrics)

    async def healthz(request: Request) -> Response:
        try:
            ok = await asyncio.wait_for(asyncio.to_thread(ping, store), timeout=5)
        except Exception:
            ok = False
        return JSONResponse({"status": "ok" if ok else "unhealthy", "store_ok": ok},
                            status_code=200 if ok else 503)

    async def metrics_page(request: Request) -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        *graphiql.routes(),
        Route("/graphql", view, methods=["GET", "HEAD", "POST"]),
        *gui_routes(),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    app.state.classifier = classifier
    app.state.limits = limits
    app.state.metrics = metrics
    app.state.content = content
    app.add_middleware(BodyLimitMiddleware, limit=limits.max_body_bytes)
    app.add_middleware(TokenMiddleware, token=token)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts refusals
    return app
