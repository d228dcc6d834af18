"""Scalar types the schema's modules share (the ``Time`` scalar's Python type; its
serialization is registered in :func:`.schema.build_schema`)."""

from __future__ import annotations

from typing import NewType

#: Epoch nanoseconds; GraphQL ``Time`` (a decimal string: JSON numbers lose precision).
Time = NewType("Time", int)
