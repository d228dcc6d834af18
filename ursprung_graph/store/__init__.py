"""Graph stores: one interface (`base.GraphStore`), the FalkorDB backend (embedded by
default), and later Neo4j. `open_store` picks one from the settings.

The backends' client libraries are imported when a store is opened, not with this package:
importing redis-py alone takes ~150 ms, which every command that only needs `Cypher` or
the interface would pay, and `ursprung run` opens its store while the command runs."""

from __future__ import annotations

import sys
from urllib.parse import urlparse

from ..config import Settings
from .base import GraphStore, StoreError, StoreUnavailable
from .embedded import EmbeddedServer

__all__ = ["GraphStore", "StoreError", "StoreUnavailable", "embedded_server", "open_store"]


def embedded_server(settings: Settings) -> EmbeddedServer:
    return EmbeddedServer(settings.home / "falkordb")


def open_store(settings: Settings, *, autostart: bool = True, quiet: bool = False) -> GraphStore:
    """Connect to the configured store, starting the embedded server when it is the one."""
    if settings.store_url:
        return _from_url(settings.store_url, settings.graph)
    server = embedded_server(settings)
    if not server.is_running():
        if not autostart:
            raise StoreUnavailable("the embedded store is not running (ursprung db start)")
        server.start()
        if not quiet:
            print(f"started the embedded store in {server.root} (ursprung db stop ends it)",
                  file=sys.stderr)
    from .falkordb import FalkorDBStore

    return FalkorDBStore(unix_socket=str(server.socket), graph=settings.graph)


def _from_url(url: str, graph: str) -> GraphStore:
    from .falkordb import FalkorDBStore

    parsed = urlparse(url)
    if parsed.scheme == "falkordb+unix":
        return FalkorDBStore(unix_socket=parsed.path, graph=graph)
    if parsed.scheme == "falkordb":
        return FalkorDBStore(host=parsed.hostname or "127.0.0.1", port=parsed.port or 6379,
                             password=parsed.password, graph=graph)
    raise StoreError(f"unsupported store URL {url!r}: use falkordb://HOST:PORT "
                     "or falkordb+unix:///PATH")
