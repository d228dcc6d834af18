"""Actions against real destinations: INTO FILE, INTO DB and DBTRANSFER on SQLite and on a
real PostgreSQL, LOGLOAD into the graph, and restarts that must not duplicate records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from ursprung_graph.rules import parse_rules
from ursprung_graph.rules.engine import RuleEngine
from ursprung_graph.schema.event import Event, FileRef, Kind, ProcessInfo

CSV = "h1,h2,h3\na1,b1,c1\na2,b2,c2\na3,b3,c3\na4,b4,c4\na5,b5,c5\n"


def ev(path: Path | str, n: int = 1, kind: Kind = Kind.WRITE) -> Event:
    return Event(v=1, source="t", host="h", ts=n, seq=str(n), kind=kind,
                 proc=ProcessInfo(pid=42, start=7), file=FileRef(str(path)))


def engine(text: str, home: Path, store=None) -> RuleEngine:
    return RuleEngine(parse_rules(text), store, home, retry_initial=0.01)


def run_once(text: str, home: Path, events: list[Event], store=None) -> RuleEngine:
    e = engine(text, home, store)
    e.observe(events)
    e.close()
    return e


def test_logload_into_file_is_the_originals(tmp_path: Path) -> None:
    log, out = tmp_path / "test-log-load-action", tmp_path / "logload-out"
    rule = f"kind=write -> LOGLOAD path MATCH some-entry FIELDS 0,1,3-5 DELIM , INTO FILE {out}"
    e = engine(rule, tmp_path / "home")

    def step(text: str, expect: list[str]) -> None:
        with log.open("a") as fh:
            fh.write(text)
        e.observe([ev(log)])
        e.flush()
        assert (out.read_text().splitlines() if out.exists() else []) == expect

    one = "second line,some-entry,3 4 5"
    step("first log line, no match\n", [])
    step("second line,some-entry,matches,3,4,5\n", [one])
    step("third line,some-", [one])  # a partial line waits for its end
    step("entry,matches again,6,7,8\n", [one, "third line,some-entry,6 7 8"])
    log.rename(log.with_suffix(".1"))  # rotation: the new file from its start
    step("first log line, no match\nsecond line,some-entry,matches,3,4,5\n",
         [one, "third line,some-entry,6 7 8", one])
    e.close()
    # a restart (state under home) reads nothing twice
    run_once(rule, tmp_path / "home", [ev(log, 2)])
    assert len(out.read_text().splitlines()) == 3


def test_dbload_into_file_skips_the_header(tmp_path: Path) -> None:
    csv, out = tmp_path / "test-db-load-action", tmp_path / "dbload-out"
    csv.write_text(CSV)
    rule = f"kind=write -> DBLOAD path INTO FILE {out}"
    run_once(rule, tmp_path / "home", [ev(csv)])
    assert out.read_text().splitlines() == [f"a{i},b{i},c{i}" for i in range(1, 6)]
    run_once(rule, tmp_path / "home", [ev(csv, 2)])  # the same version: not again
    assert len(out.read_text().splitlines()) == 5


def test_a_failing_action_is_dead_lettered_and_counted(tmp_path: Path, store) -> None:
    e = run_once(f"kind=write -> LOGLOAD path MATCH x\nkind=write -> DBLOAD path INTO FILE "
                 f"{tmp_path}/o", tmp_path / "home", [ev(tmp_path / "missing")], store)
    assert e.metrics.value("ursprung_rules_actions_total", action="logload",
                           result="dead") == 1
    assert e.metrics.value("ursprung_rules_actions_total", action="dbload", result="dead") == 1
    dead = store.read("MATCH (d:DeadLetter {source: 'rules'}) RETURN d.reason AS reason")
    assert len(dead) == 2 and all("cannot read" in d["reason"] for d in dead)


def test_logload_into_the_graph_restart_mid_log(tmp_path: Path, store) -> None:
    store.write([("CREATE (:Process {key: 'p:h:42:7', host: 'h', pid: 42, start: 7})", {})])
    log = tmp_path / "app.log"
    rule = ('kind=write -> LOGLOAD path MATCH "ERROR (?P<code>\\d+)"')
    log.write_text("ERROR 1\nok\nERROR 2\n")
    run_once(rule, tmp_path / "home", [ev(log)], store)
    # a crash after the records were written but before the offset was saved
    (tmp_path / "home" / "rules" / "state.db").unlink()
    with log.open("a") as fh:
        fh.write("ERROR 3\n")
    run_once(rule, tmp_path / "home", [ev(log, 2)], store)
    rows = store.read("MATCH (p:Process)-[:LOGGED]->(r:Record) RETURN r.fields AS f "
                      "ORDER BY r.pos")
    assert [json.loads(r["f"])["code"] for r in rows] == ["1", "2", "3"]
    files = store.read("MATCH (f:File)-[:HAS_RECORD]->(r:Record) RETURN count(r) AS n")
    assert files[0]["n"] == 3


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/target.db"
    return request.getfixturevalue("postgres_url")


def _reset(url: str, *tables: str) -> sa.Engine:
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        for t in (*tables, "ursprung_rule_state"):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {t}"))
    return eng


def test_into_db(db_url: str, tmp_path: Path) -> None:
    eng = _reset(db_url, "logs")
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE TABLE logs (a TEXT, b TEXT, c TEXT)"))
    log = tmp_path / "app.log"
    log.write_text("second line,some-entry,matches,3,4,5\nno\n")
    rule = (f"kind=write -> LOGLOAD path MATCH some-entry FIELDS 0,1,3-5 DELIM , "
            f"INTO DB {db_url} USING logs/a,b,c")
    run_once(rule, tmp_path / "home", [ev(log)])
    with log.open("a") as fh:
        fh.write("third,some-entry,x,6,7,8\n")
    run_once(rule, tmp_path / "home2", [ev(log, 2)])  # state lives in the target database
    with eng.connect() as conn:
        rows = conn.execute(sa.text("SELECT a, b, c FROM logs ORDER BY a DESC")).all()
    assert [tuple(r) for r in rows] == [("third", "some-entry", "6 7 8"),
                                        ("second line", "some-entry", "3 4 5")]
    eng.dispose()


def test_dbtransfer_is_incremental_and_survives_restarts(db_url: str, tmp_path: Path) -> None:
    eng = _reset(db_url, "steps", "copied")
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE TABLE steps (id INTEGER, name TEXT, status TEXT)"))
        conn.execute(sa.text("CREATE TABLE copied (id TEXT, name TEXT, status TEXT)"))
        conn.execute(sa.text("INSERT INTO steps VALUES (1, 'prepare', 'done'), "
                             "(2, 'train', 'done')"))
    rule = (f"kind=write -> DBTRANSFER select id, name, status from steps/id FROM {db_url} "
            f"INTO DB {db_url} USING copied/id,name,status")
    run_once(rule, tmp_path / "home", [ev("/x")])
    run_once(rule, tmp_path / "home", [ev("/x", 2)])  # a restart: nothing new, nothing again
    with eng.begin() as conn:
        conn.execute(sa.text("INSERT INTO steps VALUES (3, 'evaluate', 'running')"))
    run_once(rule, tmp_path / "home", [ev("/x", 3), ev("/x", 4)])
    with eng.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, name FROM copied ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("1", "prepare"), ("2", "train"), ("3", "evaluate")]
    eng.dispose()


def test_dbtransfer_into_file_and_graph(tmp_path: Path, store) -> None:
    url = f"sqlite:///{tmp_path}/wf.db"
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (n INTEGER, v TEXT)"))
        conn.execute(sa.text("INSERT INTO t VALUES (0, 'a0'), (1, 'a1'), (2, 'a2')"))
    out = tmp_path / "dbtransfer-out"
    rule = (f"kind=write -> DBTRANSFER select n, v from t/n FROM {url} INTO FILE {out} ; "
            f"DBTRANSFER select n, v from t/n FROM {url}")
    for n in range(3):
        run_once(rule, tmp_path / "home", [ev("/x", n)], store)
    assert out.read_text().splitlines() == ["0,a0", "1,a1", "2,a2"]
    rows = store.read("MATCH (r:Record {action: 'dbtransfer'}) RETURN r.line AS line "
                      "ORDER BY line")
    assert [r["line"] for r in rows] == ["0,a0", "1,a1", "2,a2"]
    eng.dispose()


def test_names_are_bytes_files_are_opened_by_their_real_name(tmp_path: Path) -> None:
    from ursprung_graph.schema.names import name_from_os

    log, out = tmp_path / "we\\ird\udcff.log", tmp_path / "out"
    log.write_bytes(b"x,1\n")
    text = name_from_os(str(log))
    assert text != str(log)  # the backslash doubled, the byte 0xff as \xff
    run_once(f"kind=write -> LOGLOAD path MATCH x INTO FILE {out}", tmp_path / "home",
             [ev(text)])
    assert out.read_text() == "x,1\n"
