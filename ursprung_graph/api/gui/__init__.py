"""The interactive GUI: server-rendered pages over the query layer, with vis-network graphs.

:func:`routes` gives the pages, their JSON endpoints and the static assets (the project's
own CSS and script, and the vis-network build that pyvis ships), for the API's Starlette
app to include. Pages read the store from ``request.app.state.store`` (:func:`store_of`)
and file contents from ``request.app.state.content`` when the app has a content store.
Nothing is loaded from outside the server.
"""

from __future__ import annotations

from pathlib import Path

import pyvis
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .graphview import DEFAULT_CAP
from .pages import Gui, content_of, guarded, store_of

__all__ = ["DEFAULT_CAP", "content_of", "routes", "store_of"]

STATIC_DIR = Path(__file__).parent / "static"
#: The vis-network build bundled with pyvis (its own templates are not used: they link CDNs).
VIS_DIR = Path(pyvis.__file__).parent / "lib" / "vis-9.1.2"


def _home(request: Request) -> Response:
    return RedirectResponse("/gui/explore")


def routes(cap: int = DEFAULT_CAP) -> list[BaseRoute]:
    """The GUI under ``/gui``; ``cap``: the node count past which graphs are clustered."""
    gui = Gui(cap=cap)
    return [
        Route("/gui", _home),
        Route("/gui/explore", guarded(gui.explore)),
        Route("/gui/explore/script.sh", guarded(gui.script)),
        Route("/gui/api/expand", guarded(gui.expand)),
        Route("/gui/api/cluster", guarded(gui.cluster)),
        Route("/gui/runs", guarded(gui.runs)),
        Route("/gui/runs/{run:path}", guarded(gui.run)),
        Route("/gui/compare", guarded(gui.compare)),
        Route("/gui/diff", guarded(gui.diff)),
        Route("/gui/reports", guarded(gui.reports)),
        Route("/gui/reports/{name}.csv", guarded(gui.report_csv)),
        Route("/gui/reports/{name}", guarded(gui.report)),
        Mount("/gui/static/vis", StaticFiles(directory=VIS_DIR), name="gui-vis"),
        Mount("/gui/static", StaticFiles(directory=STATIC_DIR), name="gui-static"),
    ]
