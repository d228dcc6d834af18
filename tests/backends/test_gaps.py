"""Capture gaps in the store, on both backends: the real log with an auditd restart and
kernel losses becomes Gap nodes; replays change nothing; a gap left open by one batch is
ended by the resume in a later one; restarts, dead letters, counts and runs merge the same
whatever the order of batches; lineage and runs say where they cross gaps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.backends.conftest import Backend
from tests.graphdump import dump
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.pipeline.sinks import write_events
from ursprung_graph.query.gaps import gap_summary
from ursprung_graph.query.lineage import find_file, lineage
from ursprung_graph.schema.event import (
    SCHEMA_VERSION,
    DeadLetter,
    Event,
    FileRef,
    GapWindow,
    Kind,
    ProcessInfo,
)
from ursprung_graph.store.base import GraphStore
from ursprung_graph.store.cypher import Cypher

DATA = Path(__file__).resolve().parents[1] / "data"
LOG = DATA / "gaps.audit.log"
URSPRUNG = str(Path(sys.executable).parent / "ursprung")
WORK = "/tmp/ursprung-gaps"
STOPPED, RESUMED = 1796127675_250_000_000, 1796127675_825_000_000
LAST_END = 1796127679_124_000_000

GAPS = Cypher("MATCH (x:Gap) RETURN x.key AS key, x.host AS host, x.source AS source, "
              "x.start AS start, x.end AS end, x.count AS count, x.run AS run, "
              "x.reason AS reason ORDER BY key")


def gaps(store: GraphStore, source: str | None = None) -> list[dict]:
    return [r for r in store.read(GAPS) if source is None or r["source"] == source]


def test_the_real_log_becomes_gap_nodes_and_a_replay_changes_nothing(backend: Backend) -> None:
    store = backend.store
    import_file(store, LOG, host="h1")
    daemon = [(r["start"], r["end"]) for r in gaps(store, "auditd-daemon")]
    assert sorted(daemon, key=str) == sorted([(STOPPED, RESUMED), (LAST_END, None)], key=str)
    cut = gaps(store, "truncated-event")
    assert len(cut) == 208  # 286 cut-off events in 208 distinct milliseconds
    assert all(r["start"] == r["end"] and r["host"] == "h1" for r in cut)
    once = dump(store)
    import_file(store, LOG, host="h1", from_start=True)
    assert dump(store) == once
    summary = {(s.host, s.source): (s.gaps, s.open) for s in gap_summary(store)}
    assert summary == {("h1", "auditd-daemon"): (2, 1), ("h1", "truncated-event"): (208, 0)}


def test_a_gap_left_open_is_ended_by_the_resume_in_a_later_batch(backend: Backend,
                                                                   tmp_path: Path) -> None:
    lines = LOG.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_bytes(b"".join(lines[:521]))  # up to the DAEMON_END
    second.write_bytes(b"".join(lines[521:]))  # from the DAEMON_START of the restart
    store = backend.store
    import_file(store, first, host="h1")
    assert [(r["start"], r["end"]) for r in gaps(store, "auditd-daemon")] == [(STOPPED, None)]
    import_file(store, second, host="h1")
    ended = sorted((r["start"], r["end"]) for r in gaps(store, "auditd-daemon")
                   if r["end"] is not None)
    assert ended == [(STOPPED, RESUMED)]
    once = dump(store)
    import_file(store, first, host="h1", from_start=True)  # the open gap again: still ended
    import_file(store, second, host="h1", from_start=True)
    assert dump(store) == once


def _event(host: str, ts: int, kind: Kind, **kw) -> Event:
    return Event(v=SCHEMA_VERSION, source="auditd", host=host, ts=ts, seq=f"s{ts}",
                 kind=kind, proc=ProcessInfo(pid=7, start=1), **kw)


def test_restart_gaps_start_at_the_hosts_last_known_time(backend: Backend) -> None:
    store = backend.store
    write_events(store, [_event("h1", 100, Kind.READ, file=FileRef("/a")),
                         _event("h1", 250, Kind.READ, file=FileRef("/b"))])
    restart = [_event(h, 1000, Kind.GAP, gap="restarted",
                      window=GapWindow(source="collector-restart", since_last_seen=True))
               for h in ("h1", "unknown")]
    # the restart comes first in its batch, before events that move the host's last time
    write_events(store, [*restart, _event("h1", 1200, Kind.READ, file=FileRef("/c"))])
    (row,) = gaps(store, "collector-restart")
    assert (row["host"], row["start"], row["end"]) == ("h1", 250, 1000)
    once = dump(store)
    write_events(store, [*restart, _event("h1", 1200, Kind.READ, file=FileRef("/c"))])
    assert dump(store) == once


def test_counts_runs_and_ends_merge_the_same_in_any_order(backend: Backend) -> None:
    def lost(count: int, run: str, end: int | None) -> Event:
        return _event("h1", 500, Kind.GAP, gap="lost",
                      window=GapWindow(source="ebpf-lost", end=end, count=count, run=run))

    store = backend.store
    for batch in ([lost(3, "b", 600)], [lost(5, "a", None)], [lost(4, "c", 550)]):
        write_events(store, batch)
    forward = gaps(store)
    store.clear()
    store.ensure_schema()
    for batch in ([lost(4, "c", 550)], [lost(5, "a", None)], [lost(3, "b", 600)]):
        write_events(store, batch)
    assert gaps(store) == forward
    (row,) = forward
    assert (row["count"], row["run"], row["end"]) == (5, "a", 550)


def test_a_dead_letter_with_a_time_is_a_gap_then(backend: Backend) -> None:
    store = backend.store
    write_events(store, [], [DeadLetter(source="auditd", reason="malformed SYSCALL record",
                                        raw="type=SYSCALL msg=audit(5.000:1): x", where="f:0",
                                        ts=5_000_000_000),
                             DeadLetter(source="auditd", reason="not an audit record",
                                        raw="junk", where="f:9")], host="h1")
    (row,) = gaps(store)
    assert (row["source"], row["start"], row["end"], row["host"]) == (
        "dead-letter", 5_000_000_000, 5_000_000_000, "h1")
    assert row["reason"] == "unreadable record: malformed SYSCALL record"
    assert len(store.read(Cypher("MATCH (d:DeadLetter) RETURN d.key AS k"))) == 2


def test_lineage_through_the_gap_is_incomplete_and_elsewhere_complete(backend: Backend
                                                                        ) -> None:
    """The issue's acceptance: a recorded log with auditd's restart and cut-off events; the
    lineage through that window says incomplete and names the gaps; a lineage of the same
    host before the window, and one of another host, stay complete."""
    store = backend.store
    import_file(store, LOG, host="h1")
    import_file(store, DATA / "pipeline.audit.log", host="h2")
    out = lineage(store, find_file(store, f"{WORK}/final/out.txt", "h1"))
    assert not out.complete
    daemon = [g for g in out.gaps if g.source == "auditd-daemon"]
    assert [(g.start, g.end, g.host) for g in daemon] == [(STOPPED, RESUMED, "h1")]
    assert {g.source for g in out.gaps} == {"auditd-daemon", "truncated-event"}
    before = lineage(store, find_file(store, f"{WORK}/work/a.txt", "h1"))
    assert before.complete and before.gaps == [] and before.edges
    # as of a time after the restart, a write of a.txt in the gap would count: incomplete
    later = lineage(store, find_file(store, f"{WORK}/work/a.txt", "h1"), as_of=RESUMED + 1)
    assert not later.complete and "auditd-daemon" in {g.source for g in later.gaps}
    other = lineage(store, find_file(store, "/tmp/ursprung-fixture/final/result.txt", "h2"))
    assert other.complete and other.edges
    # the CLI: text names the gap, JSON says complete false
    run = subprocess.run([URSPRUNG, "lineage", f"{WORK}/final/out.txt", "--host", "h1"],
                         capture_output=True, text=True, env=backend.env(), timeout=120)
    assert run.returncode == 0, run.stderr
    assert "INCOMPLETE: this lineage crosses 209 capture gaps" in run.stdout
    assert "h1 auditd-daemon: 2026-12-01 12:21:15.250 .. 2026-12-01 12:21:15.825: auditd end" \
        in run.stdout
    as_json = subprocess.run([URSPRUNG, "lineage", f"{WORK}/work/a.txt", "--json"],
                             capture_output=True, text=True, env=backend.env(), timeout=120)
    assert json.loads(as_json.stdout)["complete"] is True
    status = subprocess.run([URSPRUNG, "db", "status"], capture_output=True, text=True,
                            env=backend.env(), timeout=120)
    assert "h1 auditd-daemon: 2 gaps" in status.stdout, status.stdout + status.stderr
