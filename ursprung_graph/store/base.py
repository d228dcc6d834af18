"""The store interface both backends implement.

Reads return plain rows (dicts of Python values), so nothing above the store knows which
backend answered. Writes come as a list of (statement, parameters) that the backend applies
durably before returning: a caller may commit a bus offset or a checkpoint right after.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import UrsprungError
from .cypher import Cypher

Row = dict[str, Any]


class StoreError(UrsprungError, RuntimeError):
    """The store refused a statement or could not be reached."""

    exit_code = 5


class StoreUnavailable(StoreError):
    """The store cannot be reached now; the same call may succeed later."""

    retryable = True
    exit_code = 4


class StoreTimeout(StoreError):
    """A read ran past the ``timeout`` it was given and the store stopped it."""


class StoreFull(StoreError):
    """The store's disk is full: a write was refused before it reached the server."""

    exit_code = 10


class ReadRefused(StoreError):
    """A read statement would reach outside the store (``LOAD CSV``, a procedure that
    opens files or connections): refused before it is sent."""

    exit_code = 11


class GraphStore(Protocol):
    def ensure_schema(self) -> None:
        """Create indexes and constraints unless the store's marker says they are there
        (idempotent; writers call it once, reads never)."""

    def read(self, statement: str, params: dict[str, Any] | None = None, *,
             timeout: float | None = None) -> list[Row]:
        """Run a read-only statement; writes are refused by the backend, and anything that
        reaches outside the store by :func:`.readguard.check_read` (``ReadRefused``).
        With ``timeout`` (seconds) the store itself stops a statement that runs longer and
        :class:`StoreTimeout` is raised (a request's time budget reaches into the store)."""

    def write(self, statements: list[tuple[Cypher, dict[str, Any]]]) -> None:
        """Apply the statements in order; return only once they are durable."""

    def clear(self) -> None:
        """Delete the whole graph (tests, `ursprung db reset`)."""

    def close(self) -> None: ...
