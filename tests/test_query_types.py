"""The query layer's boundary: typed answers whose JSON keeps the ``--json`` shape, one rule
for system files, Cypher built from the schema's names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import msgspec
from click.testing import CliRunner

from ursprung_graph.cli.group import cli
from ursprung_graph.query.classify import Classifier
from ursprung_graph.query.runs import RunFile
from ursprung_graph.query.types import FileVersion, RunFacts, RunFileFact, RunSummary

QUERY = Path(__file__).resolve().parents[1] / "ursprung_graph" / "query"


def test_file_facts_keep_absent_and_null_apart():
    cwd = "/w"
    plain = RunFile("f:h:/w/out", "/w/out", last_write=5)
    assert msgspec.to_builtins(plain.fact(cwd)) == {"path": "/w/out", "rel": "out",
                                                    "written": 5}
    read = RunFile("f:h:/data/in", "/data/in", first_read=3)
    # read, no write seen before: prior_write is there, and null
    assert msgspec.to_builtins(read.fact(cwd)) == {"path": "/data/in", "rel": None,
                                                   "first_read": 3, "prior_write": None}
    big = RunFile("f:h:/w/big", "/w/big", first_read=3, prior_write=1,
                  version=FileVersion(sha256=None, size=10, mtime=2, stored=False))
    # a version above the hashing limit: sha256 null, stored false, both present
    assert msgspec.to_builtins(big.fact(cwd)) == {
        "path": "/w/big", "rel": "big", "sha256": None, "size": 10, "mtime": 2,
        "stored": False, "first_read": 3, "prior_write": 1}


def test_run_facts_json_lists_the_summary_first():
    facts = RunFacts(id="r", key="run:r", inputs=[RunFileFact(path="/a", rel=None)])
    keys = list(msgspec.to_builtins(facts))
    summary = list(RunSummary.__struct_fields__)
    assert keys[:len(summary)] == summary
    assert keys[len(summary):] == ["inputs", "outputs", "intermediates", "programs",
                                   "environment_files", "processes", "complete", "gaps"]


def test_one_rule_for_system_files():
    rule = Classifier()
    for path in ("/usr/lib/x86_64-linux-gnu/libc.so.6", "/etc/ld.so.cache",
                 "/home/u/.pyenv/versions/3.11.7/lib/python3.11/os.py",
                 "/opt/py/lib/python3.11/json/__init__.py", "/w/build/ext.so",
                 "/w/pkg/__pycache__/m.cpython-311.pyc", "/w/.venv/lib/site-packages/x.py"):
        assert rule.environment(path), path
    for path in ("/w/data/raw.csv", "/tmp/ursprung-fixture/final/result.txt", "/w/train.py"):
        assert not rule.environment(path), path
    configured = Classifier(system_prefixes=("/d/sys/",), ignore_patterns=())
    assert configured.environment("/d/sys/tool.cfg") and not configured.environment("/etc/x")


def test_lineage_hides_what_the_configured_rule_calls_system(
        settings, store, tmp_path, monkeypatch):
    from tests.events import Script
    from ursprung_graph.ingest.upserts import Batch

    s = Script("n1")
    p = s.proc(1, 0, ["sh"])
    s.read(1, p, "/d/sys/tool.cfg")
    s.read(1, p, "/etc/passwd")
    s.write(2, p, "/d/out")
    batch = Batch()
    for ev in s.events:
        batch.add(ev)
    store.write(batch.statements())
    run = CliRunner().invoke
    default = run(cli, ["lineage", "/d/out"], catch_exceptions=False).output
    assert "/d/sys/tool.cfg" in default and "/etc/passwd" not in default
    assert "1 system files" in default
    config = tmp_path / "ursprung.toml"  # the [runs] table of the one configuration file
    config.write_text('[runs]\nsystem_prefixes = ["/d/sys/"]\nignore_patterns = []\n')
    monkeypatch.setenv("URSPRUNG_CONFIG", str(config))
    configured = run(cli, ["lineage", "/d/out"], catch_exceptions=False).output
    listed = run(cli, ["lineage", "/d/out", "--all"], catch_exceptions=False).output
    assert "/d/sys/tool.cfg" not in configured and "/etc/passwd" in configured
    assert "/d/sys/tool.cfg" in listed


_LABELS = r"Process|File|Pipe|Endpoint|Host|PipelineRun|Version"
_TYPES = (r"READ|WROTE|EXECUTED|DELETED|FORKED|RENAMED_TO|LINKED_TO|CONNECTED|ACCEPTED|"
          r"BOUND|RAN_ON|INCLUDES|HAS_VERSION|OBSERVED")
_LITERAL = re.compile(rf"(:\s*({_LABELS})\b|[:|]\s*({_TYPES})\b)")


def test_query_cypher_takes_names_from_the_schema():
    found = []
    for path in sorted(QUERY.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and _LITERAL.search(node.value):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert found == []
