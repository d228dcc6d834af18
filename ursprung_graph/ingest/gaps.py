"""Capture gaps -> idempotent ``Gap`` upserts.

A gap is a host and time window in which events may be missing (``schema.event.GapWindow``
says where each kind comes from). Every update is idempotent and independent of the order
of batches: a gap's ``end`` is the earliest known end (None while it is still open), its
``count`` the largest reported, its ``run`` the least run id named. A ``resumes`` event
(auditd's DAEMON_START) makes no node: it ends the open gaps of its host and source that
began at or before it. A dead letter whose time is known is a gap at that time as well
(the record it stood for is lost); one without a time stays only a dead letter.
"""

from __future__ import annotations

from typing import Any

from ..schema import graph as g
from ..schema.event import DeadLetter, Event, GapWindow
from ..store.cypher import Cypher
from .rows import Statements, chunked

_ENDS_EARLIEST = ("CASE WHEN r.end IS NULL THEN x.end WHEN x.end IS NULL OR r.end < x.end "
                  "THEN r.end ELSE x.end END")

UPSERT_GAPS = Cypher(
    "UNWIND $rows AS r "
    f"MERGE (x:{g.GAP} {{key: r.key}}) "
    "ON CREATE SET x.host = r.host, x.source = r.source, x.start = r.start, "
    "x.reason = r.reason, x.note = r.note, x.origin = r.origin "
    f"SET x.end = {_ENDS_EARLIEST}, "
    "x.count = CASE WHEN r.count IS NULL OR (x.count IS NOT NULL AND x.count >= r.count) "
    "THEN x.count ELSE r.count END, "
    "x.run = CASE WHEN r.run IS NULL OR (x.run IS NOT NULL AND x.run <= r.run) "
    "THEN x.run ELSE r.run END"
)

#: A collector that started again without a checkpoint: the gap runs from the host's last
#: known time (its processes' last events before the restart) to the restart; a host the
#: store does not know yet has no gap. Once created, a replay changes nothing.
UPSERT_RESTART_GAPS = Cypher(
    "UNWIND $rows AS r "
    f"MATCH (p:{g.PROCESS} {{host: r.host}}) WHERE p.last < r.end "
    "WITH r.key AS key, r.host AS host, r.source AS source, r.end AS end, "
    "r.reason AS reason, r.origin AS origin, max(p.last) AS since "
    f"MERGE (x:{g.GAP} {{key: key}}) "
    "ON CREATE SET x.host = host, x.source = source, x.start = since, x.end = end, "
    "x.reason = reason, x.note = false, x.origin = origin"
)

#: One row per (host, source) and batch (its earliest resume), so that no two rows of a
#: statement end the same gap.
CLOSE_GAPS = Cypher(
    "UNWIND $rows AS r "
    f"MATCH (x:{g.GAP} {{host: r.host}}) "
    "WHERE x.source = r.source AND x.start <= r.ts AND (x.end IS NULL OR r.ts < x.end) "
    "SET x.end = r.ts"
)


def _earlier(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


class GapRows:
    """The gap rows of one batch."""

    def __init__(self) -> None:
        self.gaps: dict[str, dict[str, Any]] = {}
        self.restarts: dict[str, dict[str, Any]] = {}
        self.resumes: dict[tuple[str, str], list[int]] = {}

    def __len__(self) -> int:
        return len(self.gaps) + len(self.restarts) + len(self.resumes)

    def add(self, ev: Event) -> None:
        window = ev.window or GapWindow(source=legacy_source(ev.source), end=ev.ts)
        host = ev.host
        if window.resumes:
            self.resumes.setdefault((host, window.source), []).append(ev.ts)
            return
        reason = ev.gap or window.source
        if window.since_last_seen:
            key = g.gap_key(host, window.source, ev.ts)
            self.restarts[key] = {"key": key, "host": host, "source": window.source,
                                  "end": ev.ts, "reason": reason, "origin": ev.source}
            return
        self._gap(host, window.source, ev.ts, window.end, reason, ev.source,
                  count=window.count, run=window.run, note=window.note)

    def add_dead(self, dead: DeadLetter, host: str) -> None:
        if dead.ts is not None:
            self._gap(host, "dead-letter", dead.ts, dead.ts, f"unreadable record: {dead.reason}",
                      dead.source)

    def _gap(self, host: str, source: str, start: int, end: int | None, reason: str,
             origin: str, *, count: int | None = None, run: str | None = None,
             note: bool = False) -> None:
        key = g.gap_key(host, source, start)
        row = self.gaps.get(key)
        if row is None:
            self.gaps[key] = {"key": key, "host": host, "source": source, "start": start,
                              "end": end, "count": count, "reason": reason, "run": run,
                              "note": note, "origin": origin}
            return
        row["end"] = _earlier(row["end"], end)
        if count is not None and (row["count"] is None or count > row["count"]):
            row["count"] = count
        if run is not None and (row["run"] is None or run < row["run"]):
            row["run"] = run

    def statements(self) -> Statements:
        """Restart gaps (before the batch's processes move the host's last known time),
        gaps, then the ends of gaps left open by earlier batches."""
        for row in self.gaps.values():  # a resume of this batch ends its gaps here
            later = [t for t in self.resumes.get((row["host"], row["source"]), ())
                     if t >= row["start"]]
            if later:
                row["end"] = _earlier(row["end"], min(later))
        out: Statements = []
        chunked(out, UPSERT_RESTART_GAPS, list(self.restarts.values()))
        chunked(out, UPSERT_GAPS, list(self.gaps.values()))
        chunked(out, CLOSE_GAPS, [{"host": h, "source": s, "ts": min(ts)}
                                  for (h, s), ts in self.resumes.items()])
        return out


def legacy_source(event_source: str) -> str:
    """The gap source of a ``gap`` event without a window (written before gaps had one)."""
    return {"auditd": "truncated-event", "ebpf": "ebpf-lost"}.get(event_source, "trace-lost")
