"""Terminal injection: names holding escape sequences, newlines, C1 controls and bidi
overrides print escaped in every human output, two different names never print the same,
and JSON stays exact."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from tests.events import HOST, S, Script
from ursprung_graph.cli.common import printable, unprintable
from ursprung_graph.cli.group import cli
from ursprung_graph.ingest.upserts import Batch
from ursprung_graph.schema.event import SCHEMA_VERSION, Event, Kind, ProcessInfo, RunInfo
from ursprung_graph.schema.names import name_from_bytes, name_from_text

#: As stored (names are bytes: schema.names): a name's own backslash is doubled.
NAMES = [name_from_text(n) for n in (
    "\x1b[2J\x1b[31mEVIL", "\x1b]0;TITLE\x07", "row\nfake\trow", "\x9b31mcsi",
    "abc\u202etxt.csv", "iso\u2066late", "a\\x1b", "a\x1b")]
PATHS = [f"/d/{n}" for n in NAMES]
OUT = "/d/out.csv"
#: What a terminal would act on, besides the newline that ends each output line.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _graph(store) -> None:
    s = Script(HOST)
    for run_id, pid, t, inputs in (("a" * 32, 100, 10, PATHS), ("b" * 32, 200, 30, PATHS[:1])):
        argv = ["python3", "job.py", "--name", NAMES[0]]
        p = ProcessInfo(pid=pid, start=t * S, exe="/usr/bin/python3", argv=argv, cwd="/d")
        s.exec(t, p, "/usr/bin/python3")
        for i, path in enumerate(inputs):
            s.read(t + 1 + i, p, path)
        s.write(t + 15, p, OUT)
        s.exit(t + 16, p, 0)
        info = RunInfo(id=run_id, pipeline="job", argv=argv, cwd="/d", start=t * S,
                       end=(t + 16) * S, exit_code=0, origin="audit",
                       params={NAMES[1]: NAMES[2]}, members=[(pid, t * S)])
        s.events.append(Event(v=SCHEMA_VERSION, source="test", host=HOST, ts=(t + 16) * S,
                              seq=f"run:{run_id}", kind=Kind.RUN, proc=p, run=info))
    batch = Batch()
    for ev in s.events:
        batch.add(ev)
    store.write(batch.statements())


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _clean(output: str) -> None:
    assert not RAW.search(output), RAW.findall(output)


def test_cypher_prints_names_escaped_and_json_exact(store) -> None:
    _graph(store)
    query = (f"MATCH (f:File) WHERE f.path STARTS WITH '/d/' AND f.path <> '{OUT}' "
             "RETURN f.path AS p ORDER BY p")
    shown = _cli("cypher", query)
    _clean(shown)
    lines = shown.splitlines()
    assert lines[0] == "p" and len(lines) == 1 + len(PATHS)  # no forged rows
    assert sorted(unprintable(line) for line in lines[1:]) == sorted(PATHS)  # reversible
    assert len(set(lines[1:])) == len(PATHS)  # "a\x1b" and "a\\x1b" print differently
    assert "/d/a\\\\x1b" in lines and "/d/a\\x1b" in lines
    exact = json.loads(_cli("cypher", query, "--json"))
    assert sorted(r["p"] for r in exact) == sorted(PATHS)
    # a column name and a non-string value are text too
    odd = _cli("cypher", "RETURN [$x] AS `col\x1b[2J`", "--param", 'x="\\u009b2J"')
    _clean(odd)
    assert odd.splitlines() == ["col\\x1b[2J", '["\\u009b2J"]']


def test_lineage_runs_show_list_compare_escape_every_name(store) -> None:
    _graph(store)
    lineage = _cli("lineage", OUT, "--all")
    _clean(lineage)
    for path in PATHS:
        assert printable(path) in lineage
    assert {n["path"] for n in json.loads(_cli("lineage", OUT, "--json"))["nodes"]
            if n["kind"] == "file"} >= set(PATHS)
    show = _cli("runs", "show", "a" * 8)
    _clean(show)
    for name in NAMES:  # shown relative to the run's directory /d
        assert f"  {printable(name)}\n" in show
    assert f"{printable(NAMES[1])} = {printable(NAMES[2])}" in show
    for args in (("runs", "list"), ("runs", "compare", "a" * 8, "b" * 8)):
        _clean(_cli(*args))
    assert printable(NAMES[3]) in _cli("runs", "compare", "a" * 8, "b" * 8)


def test_error_messages_are_escaped(store) -> None:
    _graph(store)
    result = CliRunner().invoke(cli, ["lineage", "/d/no\x1b]0;TITLE\x07"])
    assert result.exit_code == 7
    _clean(result.output)
    assert "no\\x1b]0;TITLE\\x07" in result.output


names = st.one_of(st.binary().map(name_from_bytes), st.text().map(name_from_text))


@given(names)
def test_printable_is_safe_and_reversible(text: str) -> None:
    shown = printable(text)
    assert not RAW.search(shown) and "\n" not in shown
    assert not re.search("[\ud800-\udfff]", shown)
    assert unprintable(shown) == text


@given(names, names)
def test_different_texts_print_differently(a: str, b: str) -> None:
    assert (printable(a) == printable(b)) == (a == b)
