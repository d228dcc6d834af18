"""Times: every time in the project is an integer of epoch nanoseconds (UTC)."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime

#: Later than any time an event can carry: the open end of a time window.
FOREVER = 2**62

_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[_T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    r"\s*(Z|UTC|[+-]\d{2}:?\d{2})?$"
)


class TimeError(ValueError):
    """Text that is not a time this project reads."""


def parse_time(text: object) -> int:
    """Epoch nanoseconds from text: a number (epoch nanoseconds); ISO 8601 with ``T``, a
    space or Spectrum Scale's ``_`` between date and time (``2020-08-03_09:06:36-0700``,
    fractions up to nanoseconds, ``Z``, ``UTC`` or an offset); or anything else
    ``datetime.fromisoformat`` reads (``2026-11-21T10:00``). Without a zone a time is UTC."""
    if not isinstance(text, str):
        raise TimeError(f"not a time: {text!r} is not text")
    text = text.strip()
    if text.isdigit():
        return int(text)
    m = _TIME.match(text)
    if m is None:
        return _iso(text)
    y, mo, d, h, mi, s, frac, zone = m.groups()
    if not (1 <= int(mo) <= 12 and 1 <= int(d) <= 31 and int(h) < 24 and int(mi) < 60
            and int(s) <= 60):
        raise TimeError(f"impossible time {text!r}")
    secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
    if zone and zone not in ("Z", "UTC"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        if int(digits[:2]) > 18 or int(digits[2:]) >= 60:
            raise TimeError(f"impossible zone offset in {text!r}")
        secs -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    ns = int(frac.ljust(9, "0")) if frac else 0
    return secs * 1_000_000_000 + ns


def _iso(text: str) -> int:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise TimeError(f"unrecognised time {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return calendar.timegm(when.utctimetuple()) * 1_000_000_000 + when.microsecond * 1000
