"""Checkpointed following of a growing audit log: rotation while following loses nothing,
a restart resumes from the checkpoint (also inside a rotated file), a stop is clean."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ursprung_graph.collectors.auditd.source import AuditdSource, normalize_file
from ursprung_graph.collectors.scale import ScaleSource
from ursprung_graph.collectors.source import LineSource
from ursprung_graph.pipeline.checkpoint import CheckpointStore
from ursprung_graph.pipeline.follow import (
    Follower,
    FollowOptions,
    read_stream,
    stream_name,
)
from ursprung_graph.schema.event import DeadLetter, Event

from .conftest import DATA, wait_until


def audit_factory(host: str) -> Callable[[bytes | None], LineSource]:
    return lambda state: AuditdSource(host, state)


def scale_factory() -> Callable[[bytes | None], LineSource]:
    return lambda state: ScaleSource(state)


class ListSink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.dead: list[DeadLetter] = []
        self.calls = 0

    def emit(self, events: list[Event], dead: list[DeadLetter], host: str) -> None:
        self.events += events
        self.dead += dead
        self.calls += 1


def opts(**kw) -> FollowOptions:
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


def caught_up(ck: CheckpointStore, follower: Follower, last: Path) -> Callable[[], bool]:
    """The follower's checkpoint is at the end of ``last`` (the newest file, fully written):
    it has read and published everything it is ever going to read. The old code reached
    this too (after skipping files), so a lost file fails the assertions, not a timeout."""
    st = last.stat()

    def check() -> bool:
        saved = ck.load(follower.stream)
        return saved is not None and saved.inode == st.st_ino and saved.offset == st.st_size
    return check


def rotate(log: Path) -> None:
    """auditd's rotation: audit.log.N -> audit.log.N+1 (oldest first), audit.log ->
    audit.log.1; the new audit.log is created by the caller."""
    older = sorted((int(p.name.rsplit(".", 1)[1]), p) for p in log.parent.glob(log.name + ".*"))
    for n, p in reversed(older):
        os.rename(p, log.with_name(f"{log.name}.{n + 1}"))
    os.rename(log, log.with_name(log.name + ".1"))


def finish_after_three_rotations(ck, follower, log, stop, thread, sink, want,
                                 inodes) -> None:
    """Wait until the follower is at the end of the newest file, stop it, and check that it
    delivered every event exactly once, in order, from the four files in turn."""
    wait_until(caught_up(ck, follower, log), 60, "the follower at the end of the newest file")
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert len(sink.events) == len(want)
    assert sink.events == want
    assert follower.stats.rotations == 3
    assert follower.stats.inodes == inodes


def event_end(lines: list[bytes], i: int) -> int:
    """The first index at or after i where an event has just ended (after a PROCTITLE)."""
    while not lines[i - 1].startswith(b"type=PROCTITLE"):
        i += 1
    return i


class SlowSink(ListSink):
    """A follower that cannot keep up: every chunk takes a while to deliver."""

    def emit(self, events: list[Event], dead: list[DeadLetter], host: str) -> None:
        time.sleep(0.05)
        super().emit(events, dead, host)


@pytest.mark.parametrize("slow", [False, True], ids=["keeping-up", "lagging"])
def test_rotation_while_following_loses_nothing(tmp_path: Path, slow: bool) -> None:
    data = (DATA / "pipeline.audit.log").read_bytes()
    lines = data.splitlines(keepends=True)
    want = reference(tmp_path, data)
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    sink = SlowSink() if slow else ListSink()
    stop = threading.Event()
    ck = CheckpointStore(tmp_path / "ck")
    follower = Follower(log, audit_factory("h"), sink, host="h", checkpoints=ck,
                        options=opts(chunk_events=50 if slow else 300), stop=stop)
    thread = start(follower)
    # Write in pieces and rotate three times the way auditd does (rename, new file), with
    # a burst written to the old file just before each rotation. Whether the follower keeps
    # up or is several files behind, it must read every file, in order, once.
    cuts = [len(lines) * k // 4 for k in range(1, 4)] + [len(lines)]
    done = 0
    inodes = []
    for i, cut in enumerate(cuts):
        with log.open("ab") as fh:
            fh.writelines(lines[done:cut])
        inodes.append(log.stat().st_ino)
        done = cut
        if i < len(cuts) - 1:
            time.sleep(0.02)
            rotate(log)
            time.sleep(0.02)
            log.write_bytes(b"")
    finish_after_three_rotations(ck, follower, log, stop, thread, sink, want, inodes)
    assert len(set(follower.stats.inodes)) == 4  # four distinct files, each read once


class GatedSink(ListSink):
    """Holds the follower inside ``emit`` (its file open) until the gate opens."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def emit(self, events: list[Event], dead: list[DeadLetter], host: str) -> None:
        self.entered.set()
        assert self.gate.wait(120), "gate never opened"
        super().emit(events, dead, host)


def test_follower_paused_while_the_log_rotates_three_times(tmp_path: Path) -> None:
    """Deterministic: the follower is stopped inside its first delivery while the log
    grows and rotates three times (A -> .1 -> .2 -> .3, B -> .1 -> .2, C -> .1, D new).
    Resumed, it finishes A, then reads B, C and D: every event exactly once."""
    data = (DATA / "pipeline.audit.log").read_bytes()
    lines = data.splitlines(keepends=True)
    want = reference(tmp_path, data)
    parts = [lines[len(lines) * k // 5:len(lines) * (k + 1) // 5] for k in range(5)]
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(parts[0]))
    sink = GatedSink()
    ck = CheckpointStore(tmp_path / "ck")
    stop = threading.Event()
    follower = Follower(log, audit_factory("h"), sink, host="h", checkpoints=ck,
                        options=opts(), stop=stop)
    thread = start(follower)
    assert sink.entered.wait(60), "the follower did not deliver its first chunk"
    inodes = [log.stat().st_ino]
    with log.open("ab") as fh:  # more for A, which the follower still has open
        fh.writelines(parts[1])
    for part in parts[2:]:
        rotate(log)
        log.write_bytes(b"".join(part))
        inodes.append(log.stat().st_ino)
    assert sorted(p.name for p in tmp_path.glob("audit.log*")) == [
        "audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
    sink.gate.set()
    finish_after_three_rotations(ck, follower, log, stop, thread, sink, want, inodes)


def test_resume_two_rotations_behind(tmp_path: Path) -> None:
    """The checkpoint is in A; while the collector is down the log rotates twice (A is now
    audit.log.2, B audit.log.1, C audit.log): the restart finishes A, then B, then C."""
    data = (DATA / "two_runs.audit.log").read_bytes()
    lines = data.splitlines(keepends=True)
    want = reference(tmp_path, data)
    cuts = [0] + [event_end(lines, len(lines) * k // 4) for k in range(1, 4)] + [len(lines)]
    parts = [lines[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    log = tmp_path / "audit.log"
    ck = CheckpointStore(tmp_path / "ck")
    log.write_bytes(b"".join(parts[0]))
    first = ListSink()
    Follower(log, audit_factory("h"), first, host="h", checkpoints=ck,
             options=opts(follow=False)).run()
    # The first run ended at an event boundary, so --once finished nothing early.
    saved = ck.load(stream_name("auditd", "h", log))
    assert saved is not None and saved.offset == log.stat().st_size
    a = log.stat().st_ino
    with log.open("ab") as fh:
        fh.writelines(parts[1])
    rotate(log)
    log.write_bytes(b"".join(parts[2]))
    b = log.stat().st_ino
    rotate(log)
    log.write_bytes(b"".join(parts[3]))
    c = log.stat().st_ino
    second = ListSink()
    stop = threading.Event()
    f2 = Follower(log, audit_factory("h"), second, host="h", checkpoints=ck, options=opts(),
                  stop=stop)
    t2 = start(f2)
    wait_until(caught_up(ck, f2, log), 60, "the follower at the end of the newest file")
    stop.set()
    t2.join(10)
    assert f2.stats.resumed_from == saved.offset
    got = first.events + second.events
    assert len(got) == len(want)
    assert got == want
    assert f2.stats.inodes == [a, b, c]


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
        stats = read_stream(reader, AuditdSource("h"), sink, "h")
        writer.join()
    assert sink.events == reference(tmp_path, data)
    assert stats.events == len(sink.events)


class FailingSink(GatedSink):
    """The first delivery waits at the gate and then succeeds; the second fails."""

    def emit(self, events: list[Event], dead: list[DeadLetter], host: str) -> None:
        if self.calls == 1:
            raise ConnectionError("broker gone")
        super().emit(events, dead, host)


def test_delivery_overlaps_reading_and_checkpoints_follow_deliveries(tmp_path: Path) -> None:
    """While chunk 1 is being delivered the follower reads chunk 2 (it does not wait in
    line), but nothing is checkpointed before the sink returned; when the next delivery
    fails, the follower stops with that error and the checkpoint stays at chunk 1."""
    data = (DATA / "pipeline.audit.log").read_bytes()
    log = tmp_path / "audit.log"
    log.write_bytes(data)
    sink = FailingSink()
    ck = CheckpointStore(tmp_path / "ck")
    follower = Follower(log, audit_factory("h"), sink, host="h", checkpoints=ck,
                        options=opts(follow=False))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            follower.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert sink.entered.wait(60), "the follower did not deliver its first chunk"
    # Delivery 1 is held: reading goes on into chunk 2, and then waits for delivery 1.
    wait_until(lambda: follower.stats.chunks >= 2, 60, "the follower reading on")
    assert ck.load(follower.stream) is None
    sink.gate.set()
    thread.join(60)
    assert not thread.is_alive()
    assert [type(e) for e in errors] == [ConnectionError]
    saved = ck.load(follower.stream)
    assert saved is not None and saved.events == len(sink.events) > 0
