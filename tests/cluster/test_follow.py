"""Checkpointed following of a growing audit log: rotation while following loses nothing,
a restart resumes from the checkpoint (also inside a rotated file), a stop is clean."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from ursprung_graph.collectors.auditd.source import normalize_file
from ursprung_graph.collectors.follow import (
    AuditLines,
    Follower,
    FollowOptions,
    audit_factory,
    read_stream,
    scale_factory,
)
from ursprung_graph.ingest.checkpoint import CheckpointStore
from ursprung_graph.schema.event import DeadLetter, Event

from .conftest import DATA, wait_until


class ListSink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.dead: list[DeadLetter] = []
        self.calls = 0

    def emit(self, events: list[Event], dead: list[DeadLetter], host: str) -> None:
        self.events += events
        self.dead += dead
        self.calls += 1


def opts(**kw) -> FollowOptions:  # noqa: ANN003
    base = {"chunk_events": 300, "flush_seconds": 0.05, "poll_seconds": 0.01}
    return FollowOptions(**{**base, **kw})


def reference(tmp: Path, data: bytes) -> list[Event]:
    whole = tmp / "whole.log"
    whole.write_bytes(data)
    return [x for x in normalize_file(str(whole), "h") if isinstance(x, Event)]


def start(follower: Follower) -> threading.Thread:
    t = threading.Thread(target=follower.run, daemon=True)
    t.start()
    return t


def test_rotation_while_following_loses_nothing(tmp_path: Path) -> None:
    data = (DATA / "pipeline.audit.log").read_bytes()
    lines = data.splitlines(keepends=True)
    want = reference(tmp_path, data)
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    sink = ListSink()
    stop = threading.Event()
    follower = Follower(log, audit_factory("h"), sink, host="h",
                        checkpoints=CheckpointStore(tmp_path / "ck"), options=opts(), stop=stop)
    thread = start(follower)
    # Write in pieces and rotate three times the way auditd does (rename, new file), with
    # a burst written to the old file just before each rotation.
    cuts = [len(lines) * k // 4 for k in range(1, 4)] + [len(lines)]
    done = 0
    for i, cut in enumerate(cuts):
        with log.open("ab") as fh:
            fh.writelines(lines[done:cut])
        done = cut
        if i < len(cuts) - 1:
            time.sleep(0.05)
            os.rename(log, tmp_path / f"audit.log.{i + 1}")
            time.sleep(0.05)
            log.write_bytes(b"")
    wait_until(lambda: len(sink.events) >= len(want), 30, "all events")
    stop.set()
    thread.join(10)
    assert sink.events == want
    assert follower.stats.rotations == 3


def test_resume_from_checkpoint_including_a_rotated_file(tmp_path: Path) -> None:
    data = (DATA / "two_runs.audit.log").read_bytes()
    lines = data.splitlines(keepends=True)
    want = reference(tmp_path, data)
    log = tmp_path / "audit.log"
    ck = CheckpointStore(tmp_path / "ck")
    third = len(lines) // 3
    log.write_bytes(b"".join(lines[:third]))
    first = ListSink()
    stop = threading.Event()
    f1 = Follower(log, audit_factory("h"), first, host="h", checkpoints=ck, options=opts(),
                  stop=stop)
    t = start(f1)
    wait_until(lambda: f1.stats.lines >= third and first.calls > 0 and not f1.source.pending,
               30, "the first third")
    time.sleep(0.2)
    stop.set()
    t.join(10)
    # While the collector is down: more lines, a rotation, and a new file.
    with log.open("ab") as fh:
        fh.writelines(lines[third:2 * third])
    os.rename(log, tmp_path / "audit.log.1")
    log.write_bytes(b"".join(lines[2 * third:]))
    second = ListSink()
    f2 = Follower(log, audit_factory("h"), second, host="h", checkpoints=ck,
                  options=opts(follow=True), stop=threading.Event())
    t2 = start(f2)
    wait_until(lambda: len(first.events) + len(second.events) >= len(want), 30, "the rest")
    f2.stop.set()
    t2.join(10)
    assert f2.stats.resumed_from > 0
    assert first.events + second.events == want  # nothing lost, nothing twice


def test_once_mode_and_unchanged_restart(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes((DATA / "pipeline.audit.log").read_bytes())
    ck = CheckpointStore(tmp_path / "ck")
    sink = ListSink()
    stats = Follower(log, audit_factory("h"), sink, host="h", checkpoints=ck,
                     options=opts(follow=False)).run()
    assert stats.events == len(sink.events) == len(reference(tmp_path, log.read_bytes()))
    again = ListSink()
    stats = Follower(log, audit_factory("h"), again, host="h", checkpoints=ck,
                     options=opts(follow=False)).run()
    assert stats.resumed_from == log.stat().st_size and again.events == []


def test_scale_lines_follow_with_pairs_across_chunks(tmp_path: Path) -> None:
    src = (DATA / "scale_watch.jsonl").read_bytes().splitlines(keepends=True)
    log = tmp_path / "scale.jsonl"
    ck = CheckpointStore(tmp_path / "ck")
    # Cut between the IN_MOVED_FROM (line 8) and its IN_MOVED_TO (line 10), restart between.
    log.write_bytes(b"".join(src[:8]))
    a = ListSink()
    Follower(log, scale_factory(), a, host="h", checkpoints=ck,
             options=opts(follow=True, chunk_events=1), stop=_stopped_after(0.5)).run()
    with log.open("ab") as fh:
        fh.writelines(src[8:])
    b = ListSink()
    Follower(log, scale_factory(), b, host="h", checkpoints=ck,
             options=opts(follow=False)).run()
    kinds = [e.kind.value for e in a.events + b.events]
    assert "rename" in kinds
    from ursprung_graph.collectors.scale import map_file

    assert a.events + b.events == map_file(str(log)).events


def _stopped_after(seconds: float) -> threading.Event:
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    return stop


def test_stdin_plugin_stream_publishes_every_event(tmp_path: Path) -> None:
    data = (DATA / "pipeline.audit.log").read_bytes()
    r, w = os.pipe()
    sink = ListSink()
    with os.fdopen(r, "rb", buffering=0) as reader:
        writer = threading.Thread(target=lambda: (os.write(w, data), os.close(w)))
        writer.start()
        stats = read_stream(reader, AuditLines("h", None), sink, "h")
        writer.join()
    assert sink.events == reference(tmp_path, data)
    assert stats.events == len(sink.events)
