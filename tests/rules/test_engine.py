"""The engine: matching in order, failing actions retried and dead-lettered and counted,
a full queue never stops the stream, and the cost of conditions is kept off most events."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ursprung_graph.rules import parse_rules
from ursprung_graph.rules.engine import Matcher, RuleEngine
from ursprung_graph.schema.event import Event, FileRef, Kind, ProcessInfo


def ev(n: int, kind: Kind = Kind.WRITE, path: str = "/x") -> Event:
    return Event(v=1, source="t", host="h", ts=n, seq=str(n), kind=kind,
                 proc=ProcessInfo(pid=n), file=FileRef(path))


def test_matches_in_event_then_rule_order() -> None:
    m = Matcher(parse_rules("kind=write -> RUN a\npath@/y -> RUN b\nkind=read -> RUN c\n"))
    got = list(m.matches([ev(1), ev(2, Kind.READ, "/y"), ev(3, path="/y")]))
    assert [(i, e.ts) for i, e in got] == [(0, 1), (1, 2), (2, 2), (0, 3), (1, 3)]
    assert m.by_kind[Kind.FORK] is not None  # path@ may hold for any kind
    assert m.by_kind[Kind.FORK](ev(4, Kind.FORK, "/y")) == [1]


def test_one_function_per_kind_agrees_with_each_rule() -> None:
    rules = parse_rules(
        "kind=write && path@/a/[.*] -> RUN a\n"
        "path@/a/b || pid>3 -> RUN b\n"
        "!(path@/a/[.*]) && data@[.*]x[.*] -> RUN c\n"
        "proc.argv@\".*x.*\" && pid!=2 && ppid<=0 -> RUN d\n"
        "event@CLOSE && bytes_written>0 -> RUN e\n"
        "kind!=read && path!=/a/b -> RUN f\n")
    m = Matcher(rules)
    events = [Event(v=1, source="t", host="h", ts=n, seq=str(n), kind=kind,
                    proc=ProcessInfo(pid=n, argv=argv), file=FileRef(path) if path else None)
              for n, (kind, path, argv) in enumerate([
                  (Kind.WRITE, "/a/b", ["x"]), (Kind.READ, "/a/b", None),
                  (Kind.EXEC, "/bin/x", ["x", "y"]), (Kind.FORK, None, ["x"]),
                  (Kind.WRITE, "/c", None), (Kind.EXIT, None, None)])]
    got = [(i, e.ts) for i, e in m.matches(events)]
    want = [(i, e.ts) for e in events for i, r in enumerate(rules) if r.matches(e)]
    assert got == want and len(want) > 6


def test_failing_action_is_retried_then_dead_lettered(tmp_path: Path, store) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"  # no table t: every try fails
    e = RuleEngine(parse_rules(f"kind=write -> DBTRANSFER select * from t/n FROM {url}"),
                   store, tmp_path / "home", retry_initial=0.01)
    started = time.monotonic()
    e.observe([ev(1)])
    assert time.monotonic() - started < 0.5  # the stream does not wait for the action
    e.close()
    assert e.metrics.value("ursprung_rules_actions_total", action="dbtransfer",
                           result="retried") == 3
    assert e.metrics.value("ursprung_rules_actions_total", action="dbtransfer",
                           result="dead") == 1
    (dead,) = store.read("MATCH (d:DeadLetter {source: 'rules'}) RETURN d.reason AS r")
    assert "<rules>:1:1" in dead["r"] and "failed 4 times" in dead["r"] and "no such table" \
        in dead["r"]


def test_a_full_queue_dead_letters_instead_of_stopping(tmp_path: Path, store) -> None:
    e = RuleEngine(parse_rules("kind=write -> RUN a"), store, tmp_path / "home",
                   queue_size=1, put_timeout=0.05)
    gate = threading.Event()
    e.handlers[0][0] = lambda event: gate.wait(10)
    started = time.monotonic()
    e.observe([ev(n) for n in range(6)])
    assert time.monotonic() - started < 2
    gate.set()
    e.close()
    dropped = e.metrics.value("ursprung_rules_queue_full_total")
    assert 3 <= dropped <= 5
    assert e.metrics.value("ursprung_rules_actions_total", action="runroot",
                           result="ok") == 6 - dropped
    assert e.metrics.value("ursprung_rules_matched_total", rule=e.rules[0].id) == 6
    reasons = store.read("MATCH (d:DeadLetter {source: 'rules'}) RETURN d.reason AS r")
    assert len(reasons) == dropped and all("queue stayed full" in r["r"] for r in reasons)


def test_rules_that_cannot_match_an_event_kind_are_not_tested() -> None:
    m = Matcher(parse_rules("event@CLOSE && bytes_written>0 && path@/p/[.*] -> RUN a\n"
                            "syscall_name@execve && data@[.*]x[.*] -> RUN b\n"))
    assert {k for k, group in m.by_kind.items() if group is not None} == {Kind.WRITE,
                                                                          Kind.EXEC}
