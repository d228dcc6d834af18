"""A marker type for Cypher statements.

Every statement the project sends to a graph store is a module-level ``Cypher`` constant,
so the grammar test can find them all and check each one against Neo4j's parser.
"""

from __future__ import annotations


class Cypher(str):
    """A Cypher statement in the openCypher subset shared by Neo4j 5 and FalkorDB."""

    __slots__ = ()
