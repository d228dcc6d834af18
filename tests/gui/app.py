"""The GUI in a Starlette app of its own, as the API's app includes it."""

from __future__ import annotations

from starlette.applications import Starlette

from ursprung_graph.api.gui import routes
from ursprung_graph.content.store import ContentStore
from ursprung_graph.store.base import GraphStore


def gui_app(store: GraphStore, content: ContentStore | None = None,
            cap: int | None = None) -> Starlette:
    app = Starlette(routes=routes() if cap is None else routes(cap=cap))
    app.state.store = store
    app.state.content = content
    return app
