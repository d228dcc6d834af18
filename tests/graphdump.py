"""A canonical dump of a graph, to compare two graphs for equality (ids left out)."""

from __future__ import annotations

import json
from typing import Any

from ursprung_graph.store.base import GraphStore
from ursprung_graph.store.cypher import Cypher

DUMP_NODES = Cypher("MATCH (n) RETURN labels(n) AS labels, properties(n) AS props")
DUMP_EDGES = Cypher(
    "MATCH (a)-[e]->(b) RETURN a.key AS a, a.name AS a_name, type(e) AS type, "
    "properties(e) AS props, b.key AS b, b.name AS b_name"
)


def dump(store: GraphStore) -> tuple[list[str], list[str]]:
    """Sorted JSON lines of every node and every edge, independent of internal ids."""
    nodes = sorted(json.dumps(r, sort_keys=True) for r in store.read(DUMP_NODES))
    edges: list[Any] = sorted(json.dumps(r, sort_keys=True) for r in store.read(DUMP_EDGES))
    return nodes, edges
