"""The `ursprung` command as a user runs it: import, lineage, cypher, db."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ursprung_graph.cli.group import cli

DATA = Path(__file__).resolve().parent / "data"
OUTPUT = "/tmp/ursprung-fixture/final/result.txt"


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_import_then_lineage_json_contract(settings) -> None:
    result = run("import", "--host", "n1", "--no-progress", str(DATA / "pipeline.audit.log"))
    assert result.exit_code == 0, result.output
    assert "16,096 audit records" in result.output and "0 dead letters" in result.output
    result = run("lineage", OUTPUT, "--json")
    data = json.loads(result.output)
    assert set(data) >= {"root", "nodes", "edges"}
    assert data["root"] == f"f:n1:{OUTPUT}"
    kinds = {n["kind"] for n in data["nodes"]}
    assert kinds == {"file", "process", "pipe", "endpoint"}
    for node in data["nodes"]:
        assert {"id", "kind"} <= set(node)
        if node["kind"] == "process":
            assert {"pid", "host", "exe", "cmdline"} <= set(node)
        if node["kind"] == "file":
            assert node["path"].startswith("/")
        if node["kind"] == "endpoint":
            assert node["address"] == "127.0.0.1" and isinstance(node["port"], int)
    for edge in data["edges"]:
        assert {"source", "target", "kind", "first", "last"} <= set(edge)
    human = run("lineage", OUTPUT)
    assert "raw/a.txt" in human.output and "cat raw/a.txt raw/b.txt" in human.output
    assert "system files" in human.output and "/etc/ld.so.cache" not in human.output
    assert "/etc/ld.so.cache" in run("lineage", OUTPUT, "--all").output


def test_reimport_resumes_from_checkpoint_and_reads_stdin(settings) -> None:
    log = DATA / "two_runs.audit.log"
    assert run("import", "--host", "n1", "--no-progress", str(log)).exit_code == 0
    again = run("import", "--host", "n1", "--no-progress", str(log))
    assert "imported 0 audit records" in again.output
    piped = run("import", "--host", "n2", "--no-progress", "-", input=log.read_bytes())
    assert piped.exit_code == 0 and "12,617 audit records" in piped.output


def test_ambiguous_path_asks_for_host(settings) -> None:
    log = str(DATA / "pipeline.audit.log")
    run("import", "--host", "a", "--no-progress", log)
    run("import", "--host", "b", "--no-progress", "--from-start", log)
    result = CliRunner().invoke(cli, ["lineage", OUTPUT])
    assert result.exit_code == 2 and "--host" in result.output and "a, b" in result.output
    assert run("lineage", OUTPUT, "--host", "b", "--json").exit_code == 0
    missing = CliRunner().invoke(cli, ["lineage", "/no/such/file"])
    assert missing.exit_code == 7 and "no file /no/such/file" in missing.output  # NotFound


def test_cypher_is_read_only_and_parameterized(settings) -> None:
    run("import", "--host", "n1", "--no-progress", str(DATA / "pipeline.audit.log"))
    hostile = "x') DETACH DELETE n //"
    result = run("cypher", "MATCH (f:File {path: $p}) RETURN count(f) AS n", "--param",
                 f"p={hostile}", "--json")
    assert json.loads(result.output) == [{"n": 0}]
    result = run("cypher", "MATCH (f:File {path: $p}) RETURN f.name AS name", "--param",
                 f"p={OUTPUT}")
    assert result.output.splitlines() == ["name", "result.txt"], run(
        "cypher", "MATCH (f:File) RETURN f.path AS p, f.host AS h LIMIT 3").output
    refused = CliRunner().invoke(cli, ["cypher", "MATCH (n) DETACH DELETE n"])
    assert refused.exit_code == 5 and "read-only" in refused.output  # StoreError
    count = run("cypher", "MATCH (n:Process) RETURN count(n) AS n", "--json")
    assert json.loads(count.output)[0]["n"] > 100


def test_db_status(settings) -> None:
    result = run("db", "status")
    assert result.exit_code == 0 and "running" in result.output


def test_import_scale_events_links_shared_files(settings) -> None:
    result = run("import", "--source", "scale", "--host", "n1", str(DATA / "scale_watch.jsonl"))
    assert result.exit_code == 0 and "Spectrum Scale events" in result.output
    rows = json.loads(run("cypher", "MATCH (f:File) WHERE f.fs IS NOT NULL "
                          "RETURN DISTINCT f.fs AS fs", "--json").output)
    assert rows == [{"fs": "fs0"}]


def test_lineage_as_of_and_control_characters(settings, store) -> None:
    from tests.events import Script
    from ursprung_graph.ingest.upserts import Batch

    s = Script("n1")
    p = s.proc(1, 0, ["sh"])
    s.read(1, p, "/d/in\nFAKE LINE \x1b[31mred")
    s.write(2, p, "/d/out")
    late = s.proc(2, 0, ["late"])
    s.read(10, late, "/d/late_in")
    s.write(10, late, "/d/out")
    batch = Batch()
    for ev in s.events:
        batch.add(ev)
    store.write(batch.statements())
    human = run("lineage", "/d/out").output
    assert not any(line.startswith("FAKE") for line in human.splitlines())
    assert "/d/in\\x0aFAKE LINE \\x1b[31mred" in human
    assert "/d/late_in" in human
    early = run("lineage", "/d/out", "--as-of", "1970-01-01T00:00:05").output
    assert "/d/late_in" not in early and "/d/in" in early
    assert run("lineage", "/d/out", "--as-of", str(5 * 10**9)).output == early
    bad = CliRunner().invoke(cli, ["lineage", "/d/out", "--as-of", "yesterday"])
    assert bad.exit_code == 2 and "ISO 8601" in bad.output
