"""`ursprung collect auditd` on stdin (an audisp plugin: never a checkpoint) says that it
started again: a gap from the host's last known time in the store to the restart."""

from __future__ import annotations

import time
from pathlib import Path

from tests.runs.helpers import ursprung
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.store.cypher import Cypher

LOG = Path(__file__).resolve().parent.parent / "data" / "gaps.audit.log"
RESTARTS = Cypher("MATCH (x:Gap {source: 'collector-restart'}) RETURN x.host AS host, "
                  "x.start AS start, x.end AS end, x.reason AS reason")
LAST = Cypher("MATCH (p:Process {host: 'h1'}) RETURN max(p.last) AS last")


def test_a_stdin_collector_marks_its_restart(store, settings, tmp_path: Path) -> None:
    lines = LOG.read_bytes().splitlines(keepends=True)
    first = tmp_path / "first.log"
    first.write_bytes(b"".join(lines[:521]))
    import_file(store, first, host="h1")
    (known,) = store.read(LAST)
    before = time.time_ns()
    done = ursprung(settings, "collect", "auditd", "-", "--host", "h1", "--to", "local",
                    input=b"".join(lines[521:]))
    assert done.returncode == 0, done.stderr
    (gap,) = store.read(RESTARTS)
    assert gap["host"] == "h1" and gap["start"] == known["last"]
    assert before <= gap["end"] <= time.time_ns()
    assert gap["reason"] == "auditd collector started without a checkpoint"
    # a file read once (not the live stream) is not a restart
    again = ursprung(settings, "collect", "auditd", str(first), "--host", "h1", "--to",
                     "local", "--once")
    assert again.returncode == 0, again.stderr
    assert len(store.read(RESTARTS)) == 1
