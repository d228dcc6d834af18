"""Differential test against libaudit's auparse over every audit log fixture in tests/data/:
no event that auparse accepts becomes a rejection of ours, and every syscall event it reads
is an event of ours, except the ones listed below with the reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.reference import libaudit
from ursprung_graph.collectors.auditd.records import (
    AuditEvent,
    AuditParser,
    CaptureGap,
    Rejected,
)

DATA = Path(__file__).resolve().parents[1] / "data"
LOGS = sorted([*DATA.glob("*.audit.log"), *DATA.glob("foreign/*.log"), *DATA.glob("edited/*.log")])
_STAMP = re.compile(rb"msg=audit\(([0-9]+\.[0-9]+:[0-9]+)\)")

#: (log file name, stamp) -> why that event may differ from auparse's reading.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("go-libaudit-aucoalesce-ubuntu-17.04-linux-4.10.0.log", "1515708162.888:124507"):
        "hand-edited excerpt: a stray quote (from its YAML source) ends the EXECVE record; "
        "auparse reads the quote as part of a2, we reject the malformed value",
    ("go-libaudit-audit-rhel7.log", "1490239800.477:34"):
        "auditd 2.4.1 wrote DAEMON_CONFIG without the ':' after the stamp; auparse is lax "
        "there, we reject the line with the reason (a daemon record carries no provenance)",
    ("laurel-record-weblogic.log", "1734013587.483:2679223"):
        "hand-edited excerpt: values re-quoted by a converter (success=\"yes\", "
        "dev=\"00:2f\", nametype=\"NORMAL\"); the kernel never quotes these",
}


def _stamp(ev: AuditEvent) -> str:
    return f"{ev.ts // 10**9}.{ev.ts // 10**6 % 1000:03d}:{ev.serial}"


def _ours(log: Path) -> tuple[dict[str, AuditEvent], dict[str, Rejected], int]:
    """Our parse of a whole log, fed as the importer feeds it (a last line without a newline
    is the end of a finished file, not a line being written)."""
    parser = AuditParser()
    data = log.read_bytes()
    body = data.rfind(b"\n") + 1
    items = [o for group in parser.feed_block(data[:body], 0) for o in group[3]]
    if body < len(data):
        items += parser.feed(data[body:], body)
    events: dict[str, AuditEvent] = {}
    rejected: dict[str, Rejected] = {}
    gaps = 0
    for item in items + parser.flush():
        if isinstance(item, AuditEvent):
            events[_stamp(item)] = item
        elif isinstance(item, Rejected):
            m = _STAMP.search(item.raw)
            if m is not None:
                rejected[m[1].decode()] = item
        elif isinstance(item, CaptureGap):
            gaps += 1
    return events, rejected, gaps


def _by_stamp(events: list[dict]) -> list[dict]:
    """auparse's events, the pieces it reads of one stamp as one (it splits an event whose
    records are out of order; grouping by stamp is what we do, on purpose)."""
    merged: dict[str, dict] = {}
    for e in events:
        if e["stamp"] is None:
            continue  # text that is no record (a comment line)
        m = merged.setdefault(e["stamp"], {"stamp": e["stamp"], "types": [], "paths": [],
                                             "syscall": {}})
        m["types"] += e["types"]
        m["paths"] += e["paths"]
        m["syscall"].update(e["syscall"])
    return list(merged.values())


@pytest.fixture(scope="module")
def reference() -> dict[str, list[dict]]:
    return libaudit.events(LOGS)


def test_every_fixture_log_is_covered() -> None:
    assert len([p for p in LOGS if p.parent.name == "foreign"]) >= 25
    assert (DATA / "fidelity.audit.log") in LOGS


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_no_event_auparse_accepts_is_rejected(log: Path, reference: dict) -> None:
    ref = _by_stamp(reference[str(log)])
    assert ref, "auparse read no event: the reference is broken"
    events, rejected, _ = _ours(log)
    problems = []
    for r in ref:
        stamp, why = r["stamp"], EXCEPTIONS.get((log.name, r["stamp"]))
        if why is not None:
            continue
        if stamp in rejected:
            problems.append(f"{stamp} {r['types']}: rejected: {rejected[stamp].reason}")
        elif "SYSCALL" in r["types"]:
            ev = events.get(stamp)
            if ev is None:
                problems.append(f"{stamp} {r['types']}: no event")
            elif int(r["syscall"]["pid"]) != ev.pid:
                problems.append(f"{stamp}: pid {ev.pid}, auparse {r['syscall']['pid']}")
            elif sorted(p.name or "(null)" for p in ev.paths) != sorted(r["paths"]):
                problems.append(f"{stamp}: paths {[p.name for p in ev.paths]} != {r['paths']}")
    assert problems == []


def test_the_exceptions_are_still_needed(reference: dict) -> None:
    """Each listed event is still one auparse reads and we reject (else: drop the entry)."""
    for (name, stamp), _why in EXCEPTIONS.items():
        log = next(p for p in LOGS if p.name == name)
        assert stamp in {e["stamp"] for e in reference[str(log)]}
        assert stamp in _ours(log)[1]


def test_a_broken_reference_script_fails_not_skips() -> None:
    with pytest.raises(pytest.fail.Exception, match="exit 3"):
        libaudit.run("import auparse, sys; sys.exit(3)")
