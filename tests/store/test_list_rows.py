"""FalkorDB gets an ``UNWIND $rows`` write's rows as lists (`store/falkordb.list_rows`):
every write statement of the project has that form, it writes the graph the map form
writes, and a statement that uses its row as a map, or rows without every field, is
sent as it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cypher_grammar import collect_module_statements
from tests.graphdump import dump
from tests.test_real_logs import HOST
from ursprung_graph.ingest.upserts import Batch
from ursprung_graph.pipeline.define import define_runs
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.schema.event import (
    SCHEMA_VERSION,
    Event,
    FileRef,
    Kind,
    ProcessInfo,
    RunInfo,
    VersionInfo,
)
from ursprung_graph.store import falkordb
from ursprung_graph.store.cypher import Cypher
from ursprung_graph.store.falkordb import FalkorDBStore, as_lists, list_rows

DATA = Path(__file__).resolve().parents[1] / "data"


def test_every_row_write_of_the_project_takes_lists() -> None:
    statements, failures = collect_module_statements()
    assert not failures
    writes = [(name, Cypher(text)) for name, text in statements
              if text.startswith("UNWIND $rows AS r ")]
    assert len(writes) > 20  # processes, files, edges of each type, runs, versions, gaps...
    assert [name for name, text in writes if list_rows(text) is None] == []


def test_fields_become_positions_in_order_of_first_use() -> None:
    form = list_rows(Cypher(
        "UNWIND $rows AS r MATCH (p:Process {key: r.key}) WITH p, r WHERE p.end IS NULL "
        "OR r.end >= p.end SET p.end = r.end, p.exit_code = r.exit_code"))
    assert form is not None and form.fields == ("key", "end", "exit_code")
    assert form.text == (b"UNWIND $rows AS r MATCH (p:Process {key: r[0]}) WITH p, r WHERE "
                         b"p.end IS NULL OR r[1] >= p.end SET p.end = r[1], p.exit_code = r[2]")
    text, params = as_lists(Cypher(form.text.decode().replace("r[0]", "r.key")
                                   .replace("r[1]", "r.end").replace("r[2]", "r.exit_code")),
                            {"rows": [{"key": "k", "end": 3, "exit_code": None, "more": 1}]})
    assert text == form.text and params == {"rows": [("k", 3, None)]}


@pytest.mark.parametrize("text", [
    "UNWIND $rows AS r CREATE (n:Echo) SET n = r",  # the row as a map
    "UNWIND $rows AS r MERGE (n:Echo {key: r.key}) SET n += r",
    "UNWIND $rows AS r MERGE (n:Echo {key: r.key}) RETURN keys(r)",
    "UNWIND $rows AS r MERGE (n:Echo {key: r.key, note: 'r.key'})",  # text in quotes
    "UNWIND $items AS r MERGE (n:Echo {key: r.key})",  # not $rows
    "MATCH (n:Echo) RETURN n",
])
def test_a_statement_that_needs_maps_keeps_them(text: str) -> None:
    assert list_rows(Cypher(text)) is None
    params = {"rows": [{"key": "a"}]}
    assert as_lists(Cypher(text), params) == (text.encode(), params)


def test_rows_without_every_field_are_sent_as_maps(store: FalkorDBStore) -> None:
    statement = Cypher("UNWIND $rows AS r MERGE (n:Echo {key: r.key}) SET n.note = r.note")
    params = {"rows": [{"key": "a", "note": "x"}, {"key": "b"}]}
    assert as_lists(statement, params) == (statement.encode(), params)
    store.write([(statement, params)])
    got = store.read(Cypher("MATCH (n:Echo) RETURN n.key AS key, n.note AS note "
                            "ORDER BY key"))
    assert got == [{"key": "a", "note": "x"}, {"key": "b", "note": None}]


def _runs_and_versions() -> list[Event]:
    root = ProcessInfo(pid=10, start=5)

    def ev(kind: Kind, ts: int, **kw: object) -> Event:
        return Event(v=SCHEMA_VERSION, source="strace", host="h", ts=ts, seq=str(ts),
                     kind=kind, proc=root, **kw)  # type: ignore[arg-type]

    return [
        ev(Kind.EXEC, 5, file=FileRef("/bin/x")),
        ev(Kind.WRITE, 6, file=FileRef('/w/out "<b>"\\n')),
        ev(Kind.RUN, 9, run=RunInfo(id="r1", pipeline="p", argv=["x", "a'b"], cwd="/w",
                                    start=5, end=9, exit_code=0, members=[(10, 5)])),
        ev(Kind.VERSION, 9, file=FileRef('/w/out "<b>"\\n'),
           version=VersionInfo(run="r1", size=3, mtime=8, sha256="ab" * 32, stored=True)),
        ev(Kind.VERSION, 9, file=FileRef("/w/in", fs="gpfs1"),
           version=VersionInfo(run="r1", size=30, mtime=4)),
    ]


def test_lists_write_the_graph_maps_write(store: FalkorDBStore,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorded pipeline's audit log (processes, files, pipes, sockets, renames),
    runs defined over it, and a traced run's versions: the same dump either way."""

    def write_all() -> tuple[list[str], list[str]]:
        import_file(store, DATA / "pipeline.audit.log", host=HOST)
        define_runs(store, "train", r"python3(\.[0-9]+)? .*", host=HOST)
        batch = Batch()
        for event in _runs_and_versions():
            batch.add(event)
        store.write(batch.statements())
        return dump(store)

    as_lists_dump = write_all()
    store.clear()
    store.ensure_schema()
    monkeypatch.setattr(falkordb, "list_rows", lambda statement: None)
    assert write_all() == as_lists_dump
    assert len(as_lists_dump[0]) > 100 and len(as_lists_dump[1]) > 100
