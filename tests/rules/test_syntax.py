"""The rule language: the original's syntax and examples, the additions, each defect of the
original's parser gone, errors with positions, and fuzzing (no crash, only clear errors)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ursprung_graph.rules import RuleError, parse_rule, parse_rules
from ursprung_graph.rules import model as m
from ursprung_graph.schema.event import Event, FileRef, Kind, ProcessInfo


def ev(kind: Kind = Kind.WRITE, path: str | None = "/x", pid: int = 1, ppid: int = 9,
       uid: int = 5, argv: list[str] | None = None, cwd: str | None = None) -> Event:
    return Event(v=1, source="t", host="h", ts=1, seq="1", kind=kind,
                 proc=ProcessInfo(pid=pid, ppid=ppid, uid=uid, argv=argv, cwd=cwd),
                 file=FileRef(path) if path else None)


def cond(text: str) -> m.Rule:
    return parse_rule(f"{text} -> RUN p")


# ------------------------------------------------------------------ the original's examples

EXAMPLES = [
    r"event@CLOSE && bytes_written>0 && path@/gpfs/fs0/proj/[.*]\.py ->TRACK "
    r"/gpfs/fs0/proj/.*\.py AT /opt/ursprung/contenttracking INTO DB "
    r"postgresql://u:p@db/prov USING versions/path,inode,ts,hash",
    r"event@CLOSE && bytes_written>0 && path@[.*]/logs/app\.log ->LOGLOAD path MATCH ERROR "
    r"FIELDS 0-1,2,3-e DELIM   INTO DB sqlite:///x.db USING log/a,b,c",
    r"syscall_name@execve && data@[.*]train\.py[.*] ->CAPTURESOUT MATCH ^epoch.* "
    r"FIELDS pid,1,2 DELIM , INTO FILE out",
]


def test_the_reference_examples_parse_and_mean_what_they_say() -> None:
    track, logload, capture = (parse_rule(t) for t in EXAMPLES)
    assert track.matches(ev(Kind.WRITE, "/gpfs/fs0/proj/a/b.py"))
    assert not track.matches(ev(Kind.READ, "/gpfs/fs0/proj/a/b.py"))
    assert not track.matches(ev(Kind.WRITE, "/gpfs/fs0/proj/a/b.pyc"))
    assert track.kinds == frozenset({Kind.WRITE})
    a = track.actions[0]
    assert isinstance(a, m.Track) and a.repo == "/opt/ursprung/contenttracking"
    assert isinstance(a.into, m.IntoDb) and a.into.table == "versions"
    assert a.into.columns == ("path", "inode", "ts", "hash")
    ll = logload.actions[0]
    assert isinstance(ll, m.LogLoad) and ll.extract.delim == " "  # `DELIM   INTO`: a space
    assert ll.extract.fields == (m.TokenRange(0, 1), m.Token(2), m.TokenRange(3, None))
    assert logload.matches(ev(Kind.WRITE, "/srv/logs/app.log"))
    cap = capture.actions[0]
    assert isinstance(cap, m.CaptureStdout) and cap.match.pattern == "^epoch.*"
    assert capture.kinds == frozenset({Kind.EXEC})
    assert capture.matches(ev(Kind.EXEC, None, argv=["python", "train.py"], cwd="/w"))
    assert not capture.matches(ev(Kind.EXEC, None, argv=["python", "eval.py"], cwd="/w"))


def test_the_original_condition_tests() -> None:
    # condition-test.cpp, with pid, ppid, uid for its positional f1, f2, f3 (1, 9, 5)
    e = ev(pid=1, ppid=9, uid=5)
    assert cond("pid>0 & ppid<10 & uid=5").matches(e)
    assert not cond("pid>1 & ppid<9 & uid=5").matches(e)
    assert cond("(pid>1 & ppid<9) | uid=5").matches(e)
    assert cond("(pid>0 & ppid<10) | uid=4").matches(e)
    f = ev(path="s1 field", argv=["s2", "field"])
    assert cond("path@s1[.*] & argv@s2[.*]").matches(f)


def test_the_original_action_syntax() -> None:
    r = parse_rule("kind=write -> LOGLOAD path MATCH some-entry FIELDS 0,1,3-5 DELIM , "
                   "INTO FILE logload-out")
    a = r.actions[0]
    assert isinstance(a, m.LogLoad) and a.event_field.name == "file.path"
    assert a.match.search("x,some-entry,y") and a.extract.delim == ","
    assert isinstance(a.into, m.IntoFile) and a.into.path == "logload-out"
    t = parse_rule("kind=write -> TRACK /tmp/(.*).py AT /my/repo INTO FILE track-out")
    assert t.actions[0].path.pattern == "/tmp/(.*).py"  # type: ignore[union-attr]
    d = parse_rule("kind=write -> DBTRANSFER select * from table/attr FROM "
                   "sqlite:///w.db INTO FILE dbtransfer-out").actions[0]
    assert isinstance(d, m.DbTransfer)
    assert (d.query, d.state_column, d.source) == ("select * from table", "attr",
                                                   "sqlite:///w.db")
    s = parse_rule("kind=write -> DBLOAD path INTO FILE dbload-out").actions[0]
    assert isinstance(s, m.DbLoad) and s.header == 1


def test_field_specs() -> None:
    a = parse_rule("kind=write -> LOGLOAD path MATCH x FIELDS 1,1/8,1-3,1-e,0-1/-2,1+3+5,pid"
                   ).actions[0]
    assert isinstance(a, m.LogLoad)
    f = a.extract.fields
    assert f[:6] == (m.Token(1), m.Token(1, 8), m.TokenRange(1, 3), m.TokenRange(1, None),
                     m.TokenRange(0, 1, -2), m.Composite((1, 3, 5)))
    assert isinstance(f[6], m.EventValue) and f[6].field.name == "proc.pid"


# ------------------------------------------------------------------ defects of the original


def test_string_equality() -> None:  # `=` was numeric only and crashed on text
    assert cond("kind=write").matches(ev(Kind.WRITE))
    assert not cond("kind=write").matches(ev(Kind.READ))
    assert cond('path="/a b"').matches(ev(path="/a b"))
    assert cond("path!=/x").matches(ev(path="/y")) and not cond("path!=/x").matches(ev())


@pytest.mark.parametrize("text", [
    "kind=write ->  RUN p", "kind=write -> RUN p ;   RUN q", "kind=write->RUN p;RUN q",
    "  kind = write   ->   RUN p   ;  RUN q ;  ", "\tkind\t=\twrite\t->\tRUN\tp",
])
def test_whitespace_anywhere(text: str) -> None:  # blanks after -> or ; crashed it
    assert all(isinstance(a, m.RunRoot) for a in parse_rule(text).actions)


def test_semicolon_inside_an_action() -> None:  # `;` split every action
    r = parse_rule('kind=write -> LOGLOAD path MATCH "a;b" DELIM ";" ; '
                   'DBTRANSFER "select a from t where b = \';\'"/a FROM sqlite:///w.db')
    ll, dt = r.actions
    assert isinstance(ll, m.LogLoad) and ll.match.pattern == "a;b" and ll.extract.delim == ";"
    assert isinstance(dt, m.DbTransfer) and dt.query == "select a from t where b = ';'"


def test_single_ampersand_drops_nothing() -> None:  # `a&b` lost the b
    r = cond("pid=1&ppid=2")
    assert r.matches(ev(pid=1, ppid=2))
    assert not r.matches(ev(pid=1, ppid=3))
    assert cond("pid=7|ppid=2").matches(ev(pid=1, ppid=2))


def test_regexes_with_parentheses_classes_bars_and_spaces() -> None:
    r = cond(r'path@"/data (raw|clean)/[0-9]+\.csv"')
    assert r.matches(ev(path="/data raw/12.csv"))
    assert r.matches(ev(path="/data clean/3.csv"))
    assert not r.matches(ev(path="/data other/3.csv"))
    assert not r.matches(ev(path="/data raw/x.csv"))


def test_full_match_and_containment() -> None:
    assert not cond("path@/a").matches(ev(path="/a/b"))  # @ matches the whole value
    a = parse_rule("kind=write -> LOGLOAD path MATCH some-entry").actions[0]
    assert a.match.search("second line,some-entry,x")  # type: ignore[union-attr]


def test_negation_and_comparisons() -> None:
    assert cond("!(kind=read) && pid>=1 && pid<=1").matches(ev())
    assert not cond("!kind=write").matches(ev())
    assert cond("!kind=write").kinds == frozenset(Kind) - {Kind.WRITE}


@pytest.mark.parametrize(("text", "column", "words"), [
    ("pid>0 && -> RUN p", 10, "expected"),
    ("pid>0 RUN p", 7, "'->'"),
    ("pid>abc -> RUN p", 5, "not a number"),
    ("f1>0 -> RUN p", 1, "unknown field 'f1'"),
    ("pathh@x -> RUN p", 1, "did you mean path"),
    ('path@"(" -> RUN p', 6, "bad regex"),
    ("path<3 -> RUN p", 5, "compares numbers"),
    ("pid>0 -> TRACK", 15, "end of line"),
    ("pid>0 -> FLY me", 10, "unexpected 'FLY'"),
    ("pid>0 -> DBLOAD path INTO DB MOCK u:p@d USING t/a", 30, "not a database URL"),
    ("pid>0 -> LOGLOAD path MATCH x DELIM ;", 31, "DELIM needs"),
    ("pid>0 -> LOGLOAD path MATCH x FIELDS 1 METRICS loss", 31, "not one of"),
])
def test_errors_name_file_line_column_and_what_was_expected(text: str, column: int,
                                                            words: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rules(f"# first line\n\n{text}\n", "jobs.rules")
    (problem,) = info.value.problems
    assert (problem.at.file, problem.at.line, problem.at.column) == ("jobs.rules", 3, column)
    assert words in problem.message
    assert str(problem).startswith(f"jobs.rules:3:{column}: ")


def test_every_bad_line_is_reported_and_comments_are_skipped() -> None:
    text = "# c\n; c\npid>0 -> RUN a # trailing\npid> -> RUN b\n\nkind=x -> RUN c\nq=1 -> RUN d\n"
    with pytest.raises(RuleError) as info:
        parse_rules(text, "f")
    assert [p.at.line for p in info.value.problems] == [4, 7]
    ok = parse_rules("# c\n; c\npid>0 -> RUN a # trailing\n", "f")
    assert len(ok) == 1 and ok[0].actions == (m.RunRoot("a"),)


def test_fields_of_the_original_that_events_lack_warn_and_never_match() -> None:
    r = cond("gid=5")
    assert r.warnings and "never" in r.warnings[0]
    assert not r.matches(ev())


# ------------------------------------------------------------------ fuzzing

_POSITION = re.compile(r"^fuzz:\d+:\d+: \S")
ALPHABET = st.sampled_from(list("ab01 =<>!@&|()[]\"';#-/.,*\\\t") + [
    "->", "pid", "path", "kind", "write", "TRACK", "LOGLOAD", "MATCH", "FIELDS", "DELIM",
    "INTO", "FILE", "DB", "USING", "DBLOAD", "DBTRANSFER", "FROM", "RUN", "AS", "METRICS",
    "STEP", "HEADER", "GRAPH", "CAPTURESOUT", "AT", "sqlite:///x", "t/a,b"])


def _check(text: str) -> None:
    try:
        rules = parse_rules(text, "fuzz")
    except RuleError as exc:
        for problem in exc.problems:
            assert _POSITION.match(str(problem)), str(problem)
            assert problem.at.column >= 1
        return
    for rule in rules:
        for kind in Kind:
            rule.matches(ev(kind))  # a loaded rule never crashes on an event


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=25).map("".join))
def test_fuzz_tokens(text: str) -> None:
    _check(text.replace("\n", " "))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60).filter(lambda t: "\n" not in t and "\r" not in t))
def test_fuzz_text(text: str) -> None:
    _check(text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(EXAMPLES), st.integers(0, 200), st.text(max_size=3))
def test_fuzz_mutated_examples(example: str, at: int, junk: str) -> None:
    at = min(at, len(example))
    _check((example[:at] + junk + example[at:]).replace("\n", " ").replace("\r", " "))
