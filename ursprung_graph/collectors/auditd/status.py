"""The kernel audit status (``auditctl -s``): its ``lost`` counter says how many records the
kernel dropped (backlog full, rate limit, no daemon), counted since boot.

``auditctl -s`` prints one ``name value`` line per field (``enabled 1``, ``pid 4242``,
``lost 3``, ``loginuid_immutable 0 unlocked``); :func:`parse_status` reads that text.
"""

from __future__ import annotations

from dataclasses import dataclass


class StatusError(ValueError):
    """Text that is not ``auditctl -s`` output."""


@dataclass(frozen=True, slots=True)
class AuditStatus:
    """The fields of the status that say whether records are being lost."""

    enabled: int
    pid: int
    lost: int
    backlog: int
    backlog_limit: int


def parse_status(text: str) -> AuditStatus:
    """``auditctl -s`` output -> its status; StatusError when ``lost`` is missing."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.strip().partition(" ")
        if name and value:
            fields[name] = value.split()[0]
    if "lost" not in fields:
        raise StatusError("no 'lost' field: not the output of auditctl -s")

    def number(name: str) -> int:
        try:
            return int(fields.get(name, "0"))
        except ValueError as exc:
            raise StatusError(f"{name} is not a number: {fields[name]!r}") from exc

    return AuditStatus(enabled=number("enabled"), pid=number("pid"), lost=number("lost"),
                       backlog=number("backlog"), backlog_limit=number("backlog_limit"))
