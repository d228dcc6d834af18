"""`ursprung collect auditd` on stdin (an audisp plugin: never a checkpoint) says that it
started again: a gap from the host's last known time in the store to the first record read
after the restart."""

from __future__ import annotations

from pathlib import Path

from tests.runs.helpers import ursprung
from ursprung_graph.collectors.auditd.source import AuditdSource
from ursprung_graph.collectors.source import Chunk
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.schema.event import Kind
from ursprung_graph.store.cypher import Cypher

LOG = Path(__file__).resolve().parent.parent / "data" / "gaps.audit.log"
RESTARTS = Cypher("MATCH (x:Gap {source: 'collector-restart'}) RETURN x.host AS host, "
                  "x.start AS start, x.end AS end, x.reason AS reason")
LAST = Cypher("MATCH (p:Process {host: 'h1'}) RETURN max(p.last) AS last")


def first_record(data: bytes) -> int:
    out = Chunk()
    source = AuditdSource("h1")
    list(source.feed_block(data, 0, "x", out))
    source.flush("x", out)
    return min(e.ts for e in out.events if e.kind is not Kind.GAP)


def test_a_restart_that_reads_what_the_store_has_is_no_gap(store, settings) -> None:
    """A follower without a checkpoint reads its file from the start (killed before its
    first checkpoint, or the checkpoint lost): records the store already has miss nothing."""
    import_file(store, LOG, host="h1")
    done = ursprung(settings, "collect", "auditd", "-", "--host", "h1", "--to", "local",
                    input=LOG.read_bytes())
    assert done.returncode == 0, done.stderr
    assert store.read(RESTARTS) == []


def test_a_stdin_collector_marks_its_restart(store, settings, tmp_path: Path) -> None:
    lines = LOG.read_bytes().splitlines(keepends=True)
    first = tmp_path / "first.log"
    first.write_bytes(b"".join(lines[:521]))
    import_file(store, first, host="h1")
    (known,) = store.read(LAST)
    rest = b"".join(lines[521:])
    done = ursprung(settings, "collect", "auditd", "-", "--host", "h1", "--to", "local",
                    input=rest)
    assert done.returncode == 0, done.stderr
    (gap,) = store.read(RESTARTS)
    assert gap["host"] == "h1" and gap["start"] == known["last"]
    assert gap["end"] == first_record(rest) > known["last"]
    assert gap["reason"] == "auditd collector started without a checkpoint"
    # restarted again on the same records: the same gap, not a second one
    done = ursprung(settings, "collect", "auditd", "-", "--host", "h1", "--to", "local",
                    input=rest)
    assert done.returncode == 0, done.stderr
    assert store.read(RESTARTS) == [gap]
    # a file read once (not the live stream) is not a restart
    again = ursprung(settings, "collect", "auditd", str(first), "--host", "h1", "--to",
                     "local", "--once")
    assert again.returncode == 0, again.stderr
    assert len(store.read(RESTARTS)) == 1
