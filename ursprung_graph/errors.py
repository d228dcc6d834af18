"""The one exception base: every error ursprung-graph raises on purpose is an
:class:`UrsprungError`, so the CLI and the API can turn it into one clear message (never a
traceback). Each part defines its own subclasses next to its code (``ConfigError`` in
``config``, ``StoreError`` and ``StoreUnavailable`` in ``store.base``, ``BusError`` in
``ingest.bus``, ``NotFound`` below for a name the graph does not hold)."""

from __future__ import annotations


class UrsprungError(Exception):
    """An error with a message meant for the user. ``retryable``: the same call may succeed
    later (a server that is down or busy); ``exit_code``: the CLI's exit status for it
    (click's usage errors are 2; each kind has its own: see the README)."""

    retryable = False
    exit_code = 1


class NotFound(UrsprungError, LookupError):
    """What was asked for is not in the graph (a file, a run)."""

    exit_code = 7
