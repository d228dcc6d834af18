"""What every command needs: the configured store, opened with a clear error."""

from __future__ import annotations

import click

from ..config import Settings, load_settings
from ..store import StoreError, open_store
from ..store.base import GraphStore


def open_graph(settings: Settings | None = None) -> GraphStore:
    """The configured store with its schema in place, or a click error saying why not."""
    try:
        store = open_store(settings or load_settings())
        store.ensure_schema()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    return store
