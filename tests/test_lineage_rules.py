"""Every time rule of lineage, pinned on a recorded log (tests/data/fidelity.audit.log, made
by tests/realaudit/fidelity.sh) in a real FalkorDB: exclusions that only time rules out
(the graph's shape alone would let them through)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ursprung_graph.collectors.auditd.source import normalize_file
from ursprung_graph.ingest.upserts import Batch
from ursprung_graph.query.lineage import find_file, lineage
from ursprung_graph.schema.event import Event, Kind

LOG = Path(__file__).resolve().parent / "data" / "fidelity.audit.log"
W = "/tmp/ursprung-fixture"  # the recording's workdir
HOST = "fid"


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return [e for e in normalize_file(str(LOG), HOST) if isinstance(e, Event)]


@pytest.fixture()
def graph(store, events: list[Event]):  # type: ignore[no-untyped-def]
    batch = Batch()
    for ev in events:
        batch.add(ev)
    store.write(batch.statements())
    return store


def files(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {n.path.removeprefix(W + "/") for n in result.nodes if n.kind == "file"}


def writes(events: list[Event], rel: str) -> list[int]:
    return sorted(e.ts for e in events if e.kind is Kind.WRITE and e.file is not None
                  and e.file.path == f"{W}/{rel}")


def test_downstream_of_a_version_excludes_readers_of_the_old_one(graph, events) -> None:
    """out/x.txt is read (-> early.txt), rewritten, read again (-> late.txt): downstream of
    x as of its rewrite holds late.txt only. Both readers are readers of x: only time tells
    them apart."""
    rewrite = writes(events, "out/x.txt")[0]
    result = lineage(graph, find_file(graph, f"{W}/out/x.txt"), direction="down", as_of=rewrite)
    assert "out/late.txt" in files(result)
    assert "out/early.txt" not in files(result)
    everything = files(lineage(graph, find_file(graph, f"{W}/out/x.txt"), direction="down"))
    assert {"out/late.txt", "out/early.txt"} <= everything


def test_downstream_bound_moves_forward_along_the_path(graph, events) -> None:
    """P reads a.txt, later writes b.txt; R reads b.txt between the two (-> c.txt): c.txt
    is not downstream of a.txt, though a path a -> P -> b -> R -> c exists."""
    result = lineage(graph, find_file(graph, f"{W}/raw/a.txt"), direction="down")
    assert "out/b.txt" in files(result)
    assert "out/c.txt" not in files(result)


def test_upstream_writer_holding_the_file_open_across_two_writes(graph, events) -> None:
    """held.txt is open for writing from before its first write to after its second; as of
    a moment between them, its writer counts (its interval began before), with what it read
    before that moment (early_in) and not what it read after (late_in)."""
    opened, closed = writes(events, "out/held.txt")[0], writes(events, "out/held.txt")[-1]
    assert closed - opened > 5 * 10**8  # two writes 0.4 s apart, then 0.4 s to the close
    between = opened + 2 * 10**8
    result = lineage(graph, find_file(graph, f"{W}/out/held.txt"), as_of=between)
    assert "raw/early_in.txt" in files(result)
    assert "raw/late_in.txt" not in files(result)
    assert "raw/late_in.txt" in files(lineage(graph, find_file(graph, f"{W}/out/held.txt")))


def test_a_read_write_open_reads(graph, events) -> None:
    """sqlite opens its database O_RDWR: the second program only reads it (a select), and
    what it writes (db_dump.txt) comes from the database."""
    result = lineage(graph, find_file(graph, f"{W}/out/db_dump.txt"))
    assert "out/db.sqlite" in files(result)
    writers = {e.proc.pid for e in events if e.kind is Kind.WRITE and e.file is not None
               and e.file.path == f"{W}/out/db.sqlite"}
    readers = {e.proc.pid for e in events if e.kind is Kind.READ and e.file is not None
               and e.file.path == f"{W}/out/db.sqlite"}
    assert writers and writers <= readers  # every O_RDWR open is a read and a write


def test_mv_into_a_directory_names_the_target_by_its_descriptor(events) -> None:
    """`mv out/f.txt out/moved/`: renameat2(AT_FDCWD, "out/f.txt", fd of out/moved/,
    "f.txt"). The new name is relative to that descriptor, not to the source's."""
    (rename,) = [e for e in events if e.kind is Kind.RENAME]
    assert rename.file is not None and rename.dst is not None
    assert (rename.file.path, rename.dst.path) == (f"{W}/out/f.txt", f"{W}/out/moved/f.txt")
