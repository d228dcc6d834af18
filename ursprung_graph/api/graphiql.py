"""GraphiQL from the machine itself: the page at ``GET /graphql`` and its assets at
``/graphiql/NAME``, read from the npm packages the Makefile installs into
``tools/graphiql/node_modules`` (GraphiQL 3.8.3 and React 18.2.0, the versions
strawberry's own page loads from a CDN). Nothing is fetched from elsewhere at run time.
``URSPRUNG_GRAPHIQL_DIR`` points at another ``node_modules`` holding the same packages.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

#: Served names -> their file under node_modules (nothing else is served).
ASSETS = {
    "graphiql.min.css": "graphiql/graphiql.min.css",
    "graphiql.min.js": "graphiql/graphiql.min.js",
    "react.production.min.js": "react/umd/react.production.min.js",
    "react-dom.production.min.js": "react-dom/umd/react-dom.production.min.js",
}

_TYPES = {".css": "text/css", ".js": "text/javascript"}

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>ursprung-graph GraphiQL</title>
  <link rel="stylesheet" href="/graphiql/graphiql.min.css">
  <style>html, body, #graphiql { height: 100%; margin: 0; }</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL...</div>
  <script src="/graphiql/react.production.min.js"></script>
  <script src="/graphiql/react-dom.production.min.js"></script>
  <script src="/graphiql/graphiql.min.js"></script>
  <script>
    const fetcher = GraphiQL.createFetcher({ url: "/graphql" });
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, { fetcher, isHeadersEditorEnabled: true,
        defaultQuery: "{ pipelines { name runCount lastRun { runId start } } }" }));
  </script>
</body>
</html>
"""


def assets_dir() -> Path:
    given = os.environ.get("URSPRUNG_GRAPHIQL_DIR")
    if given:
        return Path(given)
    return Path(__file__).resolve().parents[2] / "tools" / "graphiql" / "node_modules"


def missing() -> list[str]:
    root = assets_dir()
    return [name for name, rel in ASSETS.items() if not (root / rel).is_file()]


async def page(request: Request) -> Response:
    if missing():
        return HTMLResponse(
            "<p>GraphiQL's files are not installed here: run <code>make graphiql</code> "
            f"(they go to {assets_dir()}). POST queries to /graphql work without them.</p>",
            status_code=503)
    return HTMLResponse(PAGE)


async def asset(request: Request) -> Response:
    rel = ASSETS.get(request.path_params["name"])
    path = assets_dir() / rel if rel else None
    if path is None or not path.is_file():
        return Response("not found\n", status_code=404, media_type="text/plain")
    return FileResponse(path, media_type=_TYPES[path.suffix],
                        headers={"cache-control": "max-age=86400"})


def routes() -> list[Route]:
    """The assets' route (the page itself is answered by the GraphQL route on GET)."""
    return [Route("/graphiql/{name}", asset, methods=["GET"])]
