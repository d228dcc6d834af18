"""Nodes by key: the typed node of any key (files, processes, pipes, endpoints), many at a
time (what the API's loaders batch), and a file by path and host."""

from __future__ import annotations

from collections.abc import Iterable

from ..store.base import GraphStore
from ..store.cypher import Cypher
from .lineage import find_file, label_of_key, load_nodes
from .types import FileNode, LineageNode


def nodes_by_key(store: GraphStore, keys: Iterable[str]) -> dict[str, LineageNode]:
    """The nodes the graph holds among ``keys`` (one statement per label)."""
    return {n.id: n for n in load_nodes(store, {k: label_of_key(k) for k in keys})}


def file_node(store: GraphStore, path: str, host: str | None = None) -> FileNode:
    """The file at ``path`` (on ``host`` when several hosts have it); LookupError if
    none, :class:`~.lineage.AmbiguousPath` if several."""
    key = find_file(store, path, host)
    node = nodes_by_key(store, [key])[key]
    assert isinstance(node, FileNode)
    return node


PING = Cypher("RETURN 1 AS ok")


def ping(store: GraphStore) -> bool:
    """Whether the store answers a read."""
    return bool(store.read(PING))
