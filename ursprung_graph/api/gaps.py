"""GraphQL types of capture gaps: where an answer may be incomplete (``query/gaps.py``)."""

from __future__ import annotations

import strawberry

from ..query.types import GapInfo
from .scalars import Time


@strawberry.type(description="A capture gap: on `host`, from `start` to `end` (null: still "
                             "open), events may be missing from the graph.")
class CaptureGap:
    key: str = strawberry.field(description="The gap's graph key.")
    host: str = strawberry.field(description="Host it is on.")
    source: str = strawberry.field(
        description="How it is known: auditd-lost-counter, auditd-daemon, truncated-event, "
                    "dead-letter, collector-restart, ebpf-lost or trace-lost.")
    start: int = strawberry.field(description="Start of the window.", graphql_type=Time)
    end: int | None = strawberry.field(description="End of the window (null: still open).",
                                       graphql_type=Time | None)
    count: int | None = strawberry.field(description="Events lost, where counted.")
    reason: str | None = strawberry.field(description="What was lost, and why it is known.")
    run_id: str | None = strawberry.field(description="The run it happened in, if known.")

    @classmethod
    def of(cls, gap: GapInfo) -> CaptureGap:
        return cls(key=gap.key, host=gap.host, source=gap.source, start=gap.start, end=gap.end,
                   count=gap.count, reason=gap.reason, run_id=gap.run)


def capture_gaps(gaps: list[GapInfo]) -> list[CaptureGap]:
    return [CaptureGap.of(g) for g in gaps]
