"""Records: what LOGLOAD, CAPTURESOUT, DBLOAD and DBTRANSFER extract, and how a line
becomes one (the original's field specs, or a regex's named groups)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from ..schema.event import Event
from . import model as m
from .fields import getter

#: The original's time format for ``N/H`` field specs.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class BadLine(ValueError):
    """A matching line the rule's field specs cannot take apart (kept as a dead letter)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One extracted record. ``key`` is its identity (a re-read gives the same key);
    ``pos`` orders records of one source; ``proc``, ``file`` and ``version`` are the graph
    keys it is linked from (None: not linked)."""

    key: str
    rule: str
    action: str
    names: tuple[str, ...]
    values: tuple[str, ...]
    ts: int
    host: str
    pos: int = 0
    path: str | None = None
    proc: str | None = None
    file: str | None = None
    version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    step: str | None = None

    @property
    def line(self) -> str:
        """The original's INTO FILE line: values joined by ','."""
        return ",".join(self.values)


def _shift(text: str, hours: int) -> str:
    try:
        when = dt.datetime.strptime(text.strip(), TIME_FORMAT)
    except ValueError:
        raise BadLine(f"{text!r} is not a time {TIME_FORMAT}") from None
    return (when + dt.timedelta(hours=hours)).strftime(TIME_FORMAT)


def _token(tokens: list[str], index: int) -> str:
    if index >= len(tokens):
        raise BadLine(f"field {index} missing: the line has {len(tokens)} field(s)")
    return tokens[index]


def extract(line: str, match: re.Match[str], spec: m.Extract, event: Event) -> tuple[str, ...]:
    """The values of a matching line."""
    if not spec.fields:
        if match.re.groupindex:
            return tuple(match.group(name) or "" for name in match.re.groupindex)
        return (line,)
    tokens = line.split(spec.delim)
    out: list[str] = []
    for f in spec.fields:
        if isinstance(f, m.Token):
            value = _token(tokens, f.index)
            out.append(_shift(value, f.hours) if f.hours is not None else value)
        elif isinstance(f, m.TokenRange):
            last = len(tokens) - 1 if f.last is None else f.last
            _token(tokens, last)
            value = " ".join(tokens[f.first:last + 1])
            out.append(_shift(value, f.hours) if f.hours is not None else value)
        elif isinstance(f, m.Composite):
            out.append("".join(_token(tokens, i) for i in f.indexes))
        else:
            got = getter(f.field)(event)
            out.append("" if got is None else str(got))
    return tuple(out)


def metrics_of(spec: m.Extract, values: tuple[str, ...]) -> tuple[dict[str, float], str | None]:
    """The numeric values named as metrics, and the step value (None without STEP)."""
    named = dict(zip(spec.names, values, strict=True))
    found: dict[str, float] = {}
    for name in spec.metrics:
        try:
            found[name] = float(named[name])
        except ValueError:
            continue
    return found, (named[spec.step] if spec.step else None)


def metric_name(name: str, step_name: str | None, step: str | None) -> str:
    """A run metric's name: ``loss`` (the last value) or ``loss[epoch=3]``."""
    return f"{name}[{step_name}={step}]" if step_name and step is not None else name
