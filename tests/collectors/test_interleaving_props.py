"""Property: the records of concurrent events may interleave in any way the kernel and
auditd produce (a record of an event written before the last record of an earlier one,
within the parser's window); the graph is the same as from the ordered log.

The log is a real recording (tests/data/fidelity.audit.log). An event is emitted at its
last record (PROCTITLE), so the interleavings keep the order of last records, which is the
order in which the syscalls finished, and move every other record of an event earlier, up
to ``SPREAD`` events back, keeping the order of each event's own records. The graph is what
ingest makes of the events (``Batch``): nodes, edges and their first/last times."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ursprung_graph.collectors.auditd.records import AuditParser
from ursprung_graph.collectors.auditd.source import AuditdSource
from ursprung_graph.ingest.upserts import Batch

LOG = Path(__file__).resolve().parents[1] / "data" / "fidelity.audit.log"
WINDOW = AuditParser().window
SPREAD = 24  # events a record may move back; well within the window


def _events() -> list[list[bytes]]:
    """The log's records grouped by event, in the order of each event's last record."""
    by_stamp: dict[bytes, list[bytes]] = {}
    last: dict[bytes, int] = {}
    for i, line in enumerate(LOG.read_bytes().splitlines(keepends=True)):
        stamp = line.split(b"msg=audit(", 1)[1].split(b")", 1)[0]
        by_stamp.setdefault(stamp, []).append(line)
        last[stamp] = i
    return [by_stamp[s] for s in sorted(by_stamp, key=last.__getitem__)]


EVENTS = _events()


def graph(lines: list[bytes]) -> tuple:
    source = AuditdSource("h")
    batch = Batch()
    for chunk in source.chunks(iter([b"".join(lines)]), 0, "log", min_events=10**9):
        assert chunk.dead == []
        for ev in chunk.events:
            batch.add(ev)
    return (batch.processes, batch.info, batch.ends, batch.files, batch.pipes,
            batch.endpoints, batch.edges)


ORDERED = graph([line for ev in EVENTS for line in ev])


def interleaved(rnd: random.Random, start: int, count: int) -> list[bytes]:
    """Events ``start .. start+count`` interleaved, the rest of the log in order."""
    slots: dict[int, list[tuple[float, int, int, bytes]]] = {}
    for i in range(start, min(start + count, len(EVENTS))):
        *early, final = EVENTS[i]
        picks = sorted(rnd.randint(max(start, i - SPREAD), i) for _ in early)
        for k, (slot, line) in enumerate(zip(picks, early, strict=True)):
            # keys keep an event's own records in order within a slot
            slots.setdefault(slot, []).append((rnd.random(), i, k, line))
    out: list[bytes] = []
    for j, ev in enumerate(EVENTS):
        if start <= j < start + count:
            moved = sorted(slots.get(j, []))
            seen: dict[int, list[tuple[int, bytes]]] = {}
            for _, i, k, line in moved:
                seen.setdefault(i, []).append((k, line))
            order = [i for _, i, _, _ in moved]
            queues = {i: sorted(v) for i, v in seen.items()}
            out += [queues[i].pop(0)[1] for i in order]  # random interleaving, own order kept
            out.append(ev[-1])
        else:
            out += ev
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.integers(0, len(EVENTS) - 1),
       st.integers(2, 200))
def test_any_interleaving_within_the_window_gives_the_same_graph(
        rnd: random.Random, start: int, count: int) -> None:
    lines = interleaved(rnd, start, count)
    assert sorted(lines) == sorted(line for ev in EVENTS for line in ev)
    assert graph(lines) == ORDERED


def test_the_interleavings_do_interleave() -> None:
    """The generator really moves records across events (else the property is empty)."""
    lines = interleaved(random.Random(1), 0, len(EVENTS))
    ordered = [line for ev in EVENTS for line in ev]
    assert lines != ordered
    stamps = [ln.split(b"msg=audit(", 1)[1].split(b")", 1)[0] for ln in lines]
    changes = sum(a != b for a, b in zip(stamps, stamps[1:], strict=False))
    assert changes > 2 * len(EVENTS)  # far more switches between events than in order
    assert WINDOW > SPREAD
