"""The Spectrum Scale collector: formats, times, move pairing, dead letters, state."""

from __future__ import annotations

import calendar
import json
from pathlib import Path

import pytest

from ursprung_graph.collectors.scale import (
    UNKNOWN_START,
    ScaleMapper,
    map_file,
)
from ursprung_graph.collectors.source import Chunk
from ursprung_graph.schema.event import Kind
from ursprung_graph.schema.times import TimeError, parse_time

DATA = Path(__file__).resolve().parent.parent / "data"
S = 1_000_000_000


def utc(y, mo, d, h, mi, s) -> int:
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * S


@pytest.mark.parametrize(("text", "want"), [
    ("2020-08-03_09:06:36-0700", utc(2020, 8, 3, 16, 6, 36)),
    ("2020-08-03_09:06:36+0200", utc(2020, 8, 3, 7, 6, 36)),
    ("2020-08-03_09:06:36+05:30", utc(2020, 8, 3, 3, 36, 36)),
    ("2023-05-02_14:00:01.120+0000", utc(2023, 5, 2, 14, 0, 1) + 120_000_000),
    ("2023-05-02_14:00:01.000123456Z", utc(2023, 5, 2, 14, 0, 1) + 123_456),
    ("2023-05-02T14:00:01", utc(2023, 5, 2, 14, 0, 1)),
    ("2020-12-31_23:30:00-0100", utc(2021, 1, 1, 0, 30, 0)),  # crosses the year
])
def test_scale_times_with_zone_offsets(text: str, want: int) -> None:
    assert parse_time(text) == want


@pytest.mark.parametrize("text", ["yesterday", "2020-13-03_09:06:36-0700",
                                  "2020-08-03_25:06:36-0700", "2020-08-03_09:06:36-2500",
                                  "", None, 1596470796])
def test_bad_times_are_refused(text: object) -> None:
    with pytest.raises(TimeError):
        parse_time(text)


def test_watch_folder_file() -> None:
    out = map_file(str(DATA / "scale_watch.jsonl"))
    kinds = [(e.kind, e.host, e.proc.pid, e.file.path, e.dst.path if e.dst else None)
             for e in out.events]
    assert kinds == [
        (Kind.WRITE, "node1", 10391, "/gpfs/fs0/proj/raw/a.csv", None),  # IN_CREATE
        (Kind.WRITE, "node1", 10391, "/gpfs/fs0/proj/raw/a.csv", None),  # open O_WRONLY|O_CREAT
        (Kind.WRITE, "node1", 10391, "/gpfs/fs0/proj/raw/a.csv", None),  # IN_CLOSE_WRITE
        (Kind.READ, "node2", 2201, "/gpfs/fs0/proj/raw/a.csv", None),  # open O_RDONLY
        (Kind.READ, "node2", 2201, "/gpfs/fs0/proj/raw/a.csv", None),  # IN_CLOSE_NOWRITE
        (Kind.WRITE, "node2", 2201, "/gpfs/fs0/proj/out/model.tmp", None),
        (Kind.WRITE, "node2", 2201, "/gpfs/fs0/proj/out/model.tmp", None),
        # the directory creation in between is skipped; the move pairs by cookie
        (Kind.RENAME, "node2", 2202, "/gpfs/fs0/proj/out/model.tmp",
         "/gpfs/fs0/proj/out/model.bin"),
        # an unpaired IN_MOVED_TO: the file appeared (created)
        (Kind.WRITE, "node1", 10401, "/gpfs/fs0/proj/raw/incoming.csv", None),
        (Kind.UNLINK, "node1", 10402, "/gpfs/fs0/proj/raw/a.csv", None),
        # the unpaired IN_MOVED_FROM, decided at the end of input: moved out of view
        (Kind.UNLINK, "node1", 10400, "/gpfs/fs0/proj/raw/old.csv", None),
    ]
    ev = out.events[0]
    assert ev.file.fs == "fs0" and ev.file.inode == 82380
    assert ev.proc.start == UNKNOWN_START and ev.proc.uid == 100
    assert ev.ts == utc(2020, 8, 3, 16, 6, 26)
    # +0200 on the delete: 09:06:37+0200 is 07:06:37 UTC
    assert out.events[9].ts == utc(2020, 8, 3, 7, 6, 37)
    assert out.skipped == 2  # the directory creation and IN_ATTRIB
    reasons = sorted(d.reason for d in out.dead)
    assert len(reasons) == 3
    assert reasons[0].startswith("IN_CLOSE_NOWRITE without an absolute path")
    assert reasons[1].startswith("not JSON")
    assert reasons[2] == "unrecognised time 'yesterday'"
    assert all(d.source == "scale" and d.where.startswith(str(DATA)) for d in out.dead)


def test_file_audit_logging_file() -> None:
    out = map_file(str(DATA / "scale_audit.jsonl"))
    got = [(e.kind, e.proc.pid, e.file.path, e.dst.path if e.dst else None)
           for e in out.events]
    assert got == [
        (Kind.READ, 777, "/gpfs/fs1/data/in.parquet", None),
        (Kind.READ, 777, "/gpfs/fs1/data/in.parquet", None),
        (Kind.WRITE, 777, "/gpfs/fs1/data/out.tmp", None),  # CREATE
        (Kind.WRITE, 777, "/gpfs/fs1/data/out.tmp", None),  # OPEN 32962: O_RDWR|O_CREAT|O_EXCL
        (Kind.WRITE, 777, "/gpfs/fs1/data/out.tmp", None),  # CLOSEWRITE
        (Kind.RENAME, 778, "/gpfs/fs1/data/out.tmp", "/gpfs/fs1/data/out.parquet"),
        (Kind.UNLINK, 781, "/gpfs/fs1/data/scratch", None),  # RMDIR
        (Kind.UNLINK, 781, "/gpfs/fs1/data/old.parquet", None),
    ]
    assert out.events[0].ts == utc(2023, 5, 2, 14, 0, 1) + 120_000_000
    assert all(e.file.fs == "fs1" and e.host == "node3" for e in out.events)
    assert out.skipped == 3  # XATTRCHANGE, ACCESS_DENIED, the directory CREATE
    assert sorted(d.reason for d in out.dead) == [
        "no nodeName", "not a JSON object but list", "unknown file audit event 'SNAPSHOT'"]


def _wf(event: str, path: str, t: int, cookie: str = "0", pid: int = 5) -> dict:
    return {"WF_JSON": "0.0.1", "event": event, "path": path, "cookie": cookie,
            "nodeName": "n1", "fsName": "fs0", "processId": str(pid),
            "eventTime": f"2021-01-01_00:00:{t:02d}+0000"}


def test_move_pairing_is_bounded_in_event_time() -> None:
    m = ScaleMapper(pair_seconds=2.0)
    out = Chunk()
    m.feed(_wf("IN_MOVED_FROM", "/g/a", 0, cookie="1"), "x", out)
    m.feed(_wf("IN_OPEN", "/g/b", 1), "x", out)
    assert m.pending == 1 and [e.kind for e in out.events] == [Kind.READ]
    m.feed(_wf("IN_OPEN", "/g/b", 3), "x", out)  # 3 s after the FROM: it is given up
    assert m.pending == 0
    assert [e.kind for e in out.events] == [Kind.READ, Kind.UNLINK, Kind.READ]
    m.feed(_wf("IN_MOVED_TO", "/g/c", 3, cookie="1"), "x", out)  # too late: a creation
    assert out.events[-1].kind is Kind.WRITE and out.events[-1].file.path == "/g/c"


def test_move_pairing_is_bounded_in_records() -> None:
    m = ScaleMapper(pair_seconds=1000, pair_events=3)
    out = Chunk()
    m.feed(_wf("IN_MOVED_FROM", "/g/a", 0, cookie="9"), "x", out)
    for _ in range(3):
        m.feed(_wf("IN_OPEN", "/g/b", 0), "x", out)
    assert m.pending == 0 and out.events[-2].kind is Kind.UNLINK


def test_pending_moves_survive_a_checkpoint() -> None:
    m = ScaleMapper()
    out = Chunk()
    m.feed(_wf("IN_MOVED_FROM", "/g/a", 0, cookie="7"), "x", out)
    restored = ScaleMapper(m.snapshot())
    restored.feed(_wf("IN_MOVED_TO", "/g/z", 1, cookie="7"), "x", out)
    assert [(e.kind, e.file.path, e.dst.path) for e in out.events] == [
        (Kind.RENAME, "/g/a", "/g/z")]


def test_cookies_are_per_node_and_file_system() -> None:
    m = ScaleMapper()
    out = Chunk()
    m.feed(_wf("IN_MOVED_FROM", "/g/a", 0, cookie="7"), "x", out)
    other = dict(_wf("IN_MOVED_TO", "/g/z", 0, cookie="7"), nodeName="n2")
    m.feed(other, "x", out)
    assert [e.kind for e in out.events] == [Kind.WRITE]
    assert m.pending == 1


def test_line_input_keeps_raw_text_of_dead_letters() -> None:
    m = ScaleMapper()
    out = Chunk()
    line = json.dumps({"WF_JSON": "0.0.1", "event": "IN_BOGUS", "path": "/g/a",
                       "nodeName": "n", "fsName": "f", "processId": "1",
                       "eventTime": "2021-01-01_00:00:00+0000"}).encode() + b"\n"
    m.feed_line(line, "f:0", out)
    m.feed_line(b"\n", "f:1", out)  # blank lines are nothing
    assert [d.reason for d in out.dead] == ["unknown watch-folder event 'IN_BOGUS'"]
    assert out.dead[0].raw == line.decode().rstrip("\n") and out.dead[0].where == "f:0"
