"""GraphQL errors with codes, never stack traces.

Every error in an answer has ``extensions.code``. Resolvers raise :class:`ApiError` (or an
:class:`~ursprung_graph.errors.UrsprungError` from the layers below, which keep their
message); anything else is logged on the server and answered as ``INTERNAL_SERVER_ERROR``
without its text. Codes: ``BAD_USER_INPUT``, ``NOT_FOUND``, ``AMBIGUOUS``, ``TIME_BUDGET``,
``STORE_UNAVAILABLE``, ``STORE_ERROR``, ``DEPTH_LIMIT``, ``ALIAS_LIMIT``, ``COST_LIMIT``,
``TOKEN_LIMIT``, ``GRAPHQL_PARSE_FAILED``, ``GRAPHQL_VALIDATION_FAILED``,
``INTERNAL_SERVER_ERROR``; over HTTP also ``BAD_REQUEST``, ``UNAUTHENTICATED``,
``PAYLOAD_TOO_LARGE``.
"""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from ..errors import NotFound, UrsprungError
from ..store.base import StoreError, StoreUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error for the client: a message and a code."""

    def __init__(self, message: str, code: str = "BAD_USER_INPUT") -> None:
        super().__init__(message)
        self.code = code


def _code(error: GraphQLError) -> tuple[str, str]:
    """(code, message) of one error."""
    original = error.original_error
    if error.path is None and error.message.startswith("Variable '$"):
        return "BAD_USER_INPUT", error.message  # a variable of the wrong type or form
    if isinstance(original, ApiError):
        return original.code, str(original)
    if isinstance(original, StoreUnavailable):
        return "STORE_UNAVAILABLE", str(original)
    if isinstance(original, StoreError):
        return "STORE_ERROR", "the store refused the query (logged on the server)"
    if isinstance(original, NotFound):
        return "NOT_FOUND", str(original)
    if isinstance(original, UrsprungError):
        return "BAD_USER_INPUT", str(original)
    if original is not None:
        log.error("internal error in %s", error.path, exc_info=original)
        return "INTERNAL_SERVER_ERROR", "internal error (logged on the server)"
    given = (error.extensions or {}).get("code")
    if isinstance(given, str):
        return given, error.message
    if "more than" in error.message and "tokens" in error.message:
        return "TOKEN_LIMIT", error.message
    if error.message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED", error.message
    return "GRAPHQL_VALIDATION_FAILED", error.message


def format_error(error: GraphQLError) -> dict[str, Any]:
    """The JSON of one error: message, locations, path and ``extensions.code``."""
    code, message = _code(error)
    out: dict[str, Any] = {"message": message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column}
                            for loc in error.locations]
    if error.path:
        out["path"] = list(error.path)
    out["extensions"] = {"code": code}
    return out


def error_body(message: str, code: str) -> dict[str, Any]:
    """A whole answer holding one error (HTTP-level refusals)."""
    return {"errors": [{"message": message, "extensions": {"code": code}}]}
