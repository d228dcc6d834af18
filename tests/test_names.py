"""Names are bytes (issue 16, defect 2): any byte string a Linux name can hold is stored,
round-trips exactly, stays distinct from every other, is valid UTF-8 and JSON, and prints
escaped; through the audit path (both parsers) and through `ursprung run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.graphdump import dump
from ursprung_graph.cli.common import printable
from ursprung_graph.collectors.auditd.source import AuditdSource
from ursprung_graph.pipeline.sinks import write_events
from ursprung_graph.schema.event import Kind
from ursprung_graph.schema.names import (
    name_from_bytes,
    name_from_os,
    name_to_bytes,
    name_to_os,
)
from ursprung_graph.store.cypher import Cypher

#: A file name: any bytes but NUL and "/".
NAMES = st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b and b"/" not in b
                                                  and b not in (b".", b".."))

FILE_PATHS = Cypher("MATCH (f:File) RETURN f.path AS path ORDER BY path")


@given(NAMES)
def test_the_text_form_is_lossless_valid_utf8_and_json(raw: bytes) -> None:
    name = name_from_bytes(raw)
    assert name_to_bytes(name) == raw
    name.encode("utf-8")  # strict: no surrogates, ever
    assert json.loads(json.dumps(name)) == name
    assert name_from_os(name_to_os(name)) == name


@given(NAMES, NAMES)
def test_different_bytes_never_share_a_text_form(a: bytes, b: bytes) -> None:
    assert (name_from_bytes(a) == name_from_bytes(b)) == (a == b)


def test_the_two_files_the_audit_path_used_to_merge() -> None:
    assert name_from_bytes(b"sorted\xff.txt") == "sorted\\xff.txt"
    assert name_from_bytes(b"sorted\\xff.txt") == "sorted\\\\xff.txt"
    assert name_from_bytes("zürich.csv".encode()) == "zürich.csv"  # UTF-8 is kept


def audit_create(serial: int, path: bytes) -> bytes:
    """A real-shaped auditd event: openat(AT_FDCWD, PATH, O_WRONLY|O_CREAT|O_TRUNC)."""
    stamp = f"msg=audit(1700000000.{serial:03d}:{serial})"
    parent, _, _ = path.rpartition(b"/")
    return "\n".join([
        f"type=SYSCALL {stamp}: arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c "
        "a1=5600 a2=241 a3=1b6 items=2 ppid=1 pid=4242 auid=0 uid=0 gid=0 euid=0 suid=0 "
        'fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="sh" exe="/usr/bin/sh" key="k"',
        f'type=CWD {stamp}: cwd="/"',
        f"type=PATH {stamp}: item=0 name={(parent + b'/').hex().upper()} inode=1 dev=00:01 "
        "mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=PARENT",
        f"type=PATH {stamp}: item=1 name={path.hex().upper()} inode={serial + 100} dev=00:01 "
        "mode=0100644 ouid=0 ogid=0 rdev=00:00 nametype=CREATE",
        f"type=PROCTITLE {stamp}: proctitle=7368",
    ]).encode() + b"\n"


@pytest.mark.parametrize("pure", [False, True], ids=["c-parser", "python-parser"])
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(NAMES, min_size=1, max_size=6, unique=True))
def test_audit_names_are_stored_exactly(store, names: list[bytes], pure: bool,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from ursprung_graph.collectors.auditd import records

    source = AuditdSource("h")
    if pure:
        source.parser = records.PyAuditParser(default_node="h")
    log = b"".join(audit_create(i + 1, b"/data/" + n) for i, n in enumerate(names))
    from ursprung_graph.collectors.source import Chunk

    out = Chunk()
    list(source.feed_block(log, 0, "test", out))
    source.flush("test", out)
    assert not out.dead, out.dead
    written = {e.file.path for e in out.events if e.kind is Kind.WRITE and e.file}
    assert {name_to_bytes(p) for p in written} == {b"/data/" + n for n in names}
    store.clear()
    write_events(store, out.events, out.dead, "h")
    stored = {r["path"] for r in store.read(FILE_PATHS) if r["path"].startswith("/data/")}
    assert stored == written  # one node per distinct byte string, text exactly as sent
    for path in stored:
        shown = printable(path)
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in shown), shown
        assert json.loads(json.dumps(path)) == path


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(NAMES, min_size=1, max_size=3, unique=True))
def test_ursprung_run_stores_every_name(settings, tmp_path_factory,
                                        names: list[bytes]) -> None:
    """A traced run that writes files with arbitrary byte names is recorded, not dropped
    (it used to fail with "'utf-8' codec can't encode character '\\udcff'"), and every
    name reads back as exactly the bytes the program used."""
    work = tmp_path_factory.mktemp("names")
    script = ("import os, sys\n"
              "for h in sys.argv[1:]:\n"
              "    open(os.path.join(os.getcwdb(), bytes.fromhex(h)), 'wb').close()\n")
    env = {**os.environ, "URSPRUNG_HOME": str(settings.home),
           "URSPRUNG_GRAPH": settings.graph}
    cmd = [sys.executable, "-m", "ursprung_graph", "run", "--pipeline", "names", "--",
           sys.executable, "-c", script, *(n.hex() for n in names)]
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "could not be stored" not in done.stderr, done.stderr
    from ursprung_graph.store import open_store

    store = open_store(settings, quiet=True)
    try:
        stored = {name_to_bytes(r["path"]) for r in store.read(FILE_PATHS)}
        base = os.fsencode(str(work)) + b"/"
        assert {base + n for n in names} <= stored
        listed = subprocess.run([sys.executable, "-m", "ursprung_graph", "runs", "list",
                                 "--json"], env=env, capture_output=True, text=True)
        assert listed.returncode == 0 and json.loads(listed.stdout)
    finally:
        store.clear()
        store.close()


def test_a_name_is_found_by_what_the_user_types(settings, store, tmp_path: Path) -> None:
    """`ursprung lineage` takes the path as the shell passes it (bytes) and finds it."""
    from click.testing import CliRunner

    from ursprung_graph.cli.group import cli

    raw = b"/data/r\xe9sum\xe9 \\ final.txt"
    source = AuditdSource("h")
    from ursprung_graph.collectors.source import Chunk

    out = Chunk()
    list(source.feed_block(audit_create(1, raw), 0, "t", out))
    source.flush("t", out)
    write_events(store, out.events, out.dead, "h")
    before = dump(store)
    result = CliRunner().invoke(cli, ["lineage", os.fsdecode(raw)])
    assert result.exit_code == 0, result.output
    assert "r\\xe9sum\\xe9 \\\\ final.txt" in result.output
    assert dump(store) == before
