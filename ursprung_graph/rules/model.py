"""Typed rule objects: what a rules file means once it is loaded.

A :class:`Rule` holds its condition (a tree of :class:`Compare`, :class:`And`, :class:`Or`,
:class:`Not`), the compiled test of that condition, the event kinds it can match at all,
and its actions. Actions are plain frozen dataclasses; what they do is in
:mod:`ursprung_graph.rules.actions`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..schema.event import Event, Kind
from .fields import Field


@dataclass(frozen=True, slots=True)
class Position:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value``. ``value`` is a float for a numeric comparison, a str for text
    equality, and ``regex`` is set for ``@`` (full match). ``field`` is None for one of the
    original's fields that normalized events lack (never true)."""

    name: str
    field: Field | None
    op: str
    value: float | str
    regex: re.Pattern[str] | None
    at: Position


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition


Condition = Compare | And | Or | Not


# ------------------------------------------------------------------ field specs


@dataclass(frozen=True, slots=True)
class Token:
    """``N``: the Nth token (0-based); ``N/H``: a time ``YYYY-mm-dd HH:MM:SS`` shifted by
    H hours."""

    index: int
    hours: int | None = None


@dataclass(frozen=True, slots=True)
class TokenRange:
    """``N-M`` tokens N to M joined by a space (``N-e``: to the end, ``last`` None)."""

    first: int
    last: int | None
    hours: int | None = None


@dataclass(frozen=True, slots=True)
class Composite:
    """``A+B+...``: the tokens concatenated."""

    indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EventValue:
    """An event field's value (``pid``, ``path``...)."""

    field: Field


FieldSpec = Token | TokenRange | Composite | EventValue


# ------------------------------------------------------------------ destinations


@dataclass(frozen=True, slots=True)
class IntoGraph:
    pass


@dataclass(frozen=True, slots=True)
class IntoFile:
    path: str


@dataclass(frozen=True, slots=True)
class IntoDb:
    """Rows into ``table`` (``columns`` in order) of the database at ``url`` (SQLAlchemy)."""

    url: str
    table: str
    columns: tuple[str, ...]


Destination = IntoGraph | IntoFile | IntoDb


# ------------------------------------------------------------------ actions


@dataclass(frozen=True, slots=True)
class Extract:
    """How a matching line becomes a record: split on ``delim`` and pick ``fields``; or,
    without fields, the regex's named groups (else the whole line). ``names`` name the
    values (default: the spec's text or group name); ``metrics`` are the names whose
    numeric values become run metrics, per ``step`` (a name) when given."""

    fields: tuple[FieldSpec, ...]
    specs: tuple[str, ...]
    delim: str
    names: tuple[str, ...]
    metrics: tuple[str, ...]
    step: str | None


@dataclass(frozen=True, slots=True)
class Track:
    path: re.Pattern[str]
    repo: str | None
    into: Destination


@dataclass(frozen=True, slots=True)
class LogLoad:
    event_field: Field
    match: re.Pattern[str]
    extract: Extract
    into: Destination


@dataclass(frozen=True, slots=True)
class CaptureStdout:
    match: re.Pattern[str]
    extract: Extract
    into: Destination


@dataclass(frozen=True, slots=True)
class DbLoad:
    event_field: Field
    header: int  # lines skipped (the original: 1)
    delim: str
    into: Destination


@dataclass(frozen=True, slots=True)
class DbTransfer:
    query: str
    state_column: str
    source: str
    into: Destination


@dataclass(frozen=True, slots=True)
class RunRoot:
    pipeline: str


Action = Track | LogLoad | CaptureStdout | DbLoad | DbTransfer | RunRoot


@dataclass(frozen=True, slots=True)
class Rule:
    """One loaded rule. ``id`` is derived from its text (state survives a restart and
    belongs to this rule only); ``kinds`` are the event kinds it can match (None: any)."""

    id: str
    text: str
    at: Position
    condition: Condition
    test: Callable[[Event], bool]
    kinds: frozenset[Kind] | None
    actions: tuple[Action, ...]
    warnings: tuple[str, ...] = field(default=())

    def matches(self, event: Event) -> bool:
        return (self.kinds is None or event.kind in self.kinds) and self.test(event)
