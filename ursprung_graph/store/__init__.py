"""Graph stores: one interface (`base.GraphStore`), the FalkorDB backend (embedded by
default) and the Neo4j backend (a cluster's store). `open_store` picks one from the settings.

The backends' client libraries are imported when a store is opened, not with this package
(FalkorDB's official client only at a store's first read: its writes go over `resp`):
importing redis-py alone takes ~150 ms, which every command that only needs `Cypher` or
the interface would pay, and `ursprung run` opens its store while the command runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse, urlunparse

from ..home import check_home
from .base import GraphStore, StoreError, StoreUnavailable
from .embedded import EmbeddedServer

if TYPE_CHECKING:  # the settings' type only: the configuration's parser is not needed here
    from ..config import Settings

__all__ = ["GraphStore", "StoreError", "StoreUnavailable", "embedded_server", "open_store"]


def embedded_server(settings: Settings) -> EmbeddedServer:
    return EmbeddedServer.of_home(settings.home)


def open_store(settings: Settings, *, autostart: bool = True, quiet: bool = False) -> GraphStore:
    """Connect to the configured store, starting the embedded server when it is the one."""
    if settings.store_url:
        return _from_url(settings.store_url, settings)
    check_home(settings.home)
    server = embedded_server(settings)
    if not server.is_running():
        if not autostart:
            raise StoreUnavailable("the embedded store is not running (ursprung db start)")
        server.start()
        if not quiet:
            print(f"started the embedded store in {server.root} (ursprung db stop ends it)",
                  file=sys.stderr)
    from .falkordb import FalkorDBStore

    return FalkorDBStore(unix_socket=str(server.socket), graph=settings.graph,
                         data_dir=server.data_dir)


NEO4J_SCHEMES = ("neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc")


def _from_url(url: str, settings: Settings) -> GraphStore:
    parsed = urlparse(url)
    if parsed.scheme in NEO4J_SCHEMES:
        return _neo4j(url, settings)
    from .falkordb import FalkorDBStore

    if parsed.scheme == "falkordb+unix":
        return FalkorDBStore(unix_socket=parsed.path, graph=settings.graph)
    if parsed.scheme == "falkordb":
        return FalkorDBStore(host=parsed.hostname or "127.0.0.1", port=parsed.port or 6379,
                             password=unquote(parsed.password) if parsed.password else None,
                             graph=settings.graph)
    raise StoreError(f"unsupported store URL {url!r}: use falkordb://HOST:PORT, "
                     "falkordb+unix:///PATH, neo4j://HOST:PORT or bolt://HOST:PORT")


def _neo4j(url: str, settings: Settings) -> GraphStore:
    """Credentials from the settings (store.user / store.password), else from the URL
    (``bolt://user:password@host:7687``); none when neither has them."""
    from .neo4j import Neo4jStore

    parsed = urlparse(url)
    user = settings.store_user or (unquote(parsed.username) if parsed.username else None)
    password = settings.store_password or (
        unquote(parsed.password) if parsed.password else None)
    if parsed.username or parsed.password:  # the driver must not see them in the URL
        netloc = parsed.hostname or ""
        if parsed.port:
            netloc += f":{parsed.port}"
        url = urlunparse(parsed._replace(netloc=netloc))
    auth = (user, password or "") if user else None
    return Neo4jStore(url, auth=auth, database=settings.store_database,
                      ca_file=settings.store_ca_file)
