"""``ursprung collect ... --to local``: the checkpoint moves only after the store has the
events. The in-process bus lives in the collector's memory, so "the bus has it" is not
enough there: a SIGKILL, a second Ctrl-C or a dead worker thread would lose everything
between the checkpoint and the store."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from tests.graphdump import dump
from ursprung_graph.config import Settings
from ursprung_graph.ingest.bus import BusError, InProcessBus
from ursprung_graph.pipeline.checkpoint import Checkpoint
from ursprung_graph.store.falkordb import FalkorDBStore

from .conftest import REPO, Procs, copy_fixture, wait_until
from .reference import local_import

# ------------------------------------------------------------------ the in-process flush


def test_in_process_flush_waits_for_the_groups_commit() -> None:
    bus = InProcessBus(partitions=2)
    bus.ensure_topics(["ev"], 2)
    pub = bus.publisher(ack_group="g", ack_topics=["ev"])
    sub = bus.subscribe("g", ["ev"])
    for i in range(5):
        pub.publish("ev", f"k{i}".encode(), b"x")
    with pytest.raises(BusError, match="not in the store"):
        pub.flush(0.2)  # consumed by nobody yet
    got = sub.poll(100, 1.0)
    assert len(got) == 5
    ends = {("ev", p): o for p, o in bus.end_offsets("ev").items()}

    def commit_later() -> None:
        time.sleep(0.3)
        sub.commit(ends)

    t = threading.Thread(target=commit_later)
    started = time.monotonic()
    t.start()
    pub.flush(30)
    assert time.monotonic() - started >= 0.25  # returned only once the group committed
    t.join()
    pub.flush(0.1)  # nothing new: returns at once
    # Topics the group does not consume (a dead-letter topic) are not waited for.
    pub.publish("other", b"k", b"x")
    pub.flush(0.1)


def test_in_process_flush_fails_when_the_worker_is_gone_or_stopping() -> None:
    bus = InProcessBus(partitions=1)
    alive = [True]
    hard = threading.Event()
    pub = bus.publisher(ack_group="g", ack_topics=["ev"], alive=lambda: alive[0],
                        cancelled=hard.is_set)
    pub.publish("ev", b"k", b"x")
    alive[0] = False
    with pytest.raises(BusError, match="worker"):
        pub.flush(30)
    alive[0] = True
    threading.Timer(0.2, hard.set).start()
    started = time.monotonic()
    with pytest.raises(BusError, match="stopp"):
        pub.flush(30)
    assert time.monotonic() - started < 10
    # A plain publisher (the worker's own dead-letter publisher) does not wait.
    plain = bus.publisher()
    plain.publish("ev", b"k", b"x")
    plain.flush(0.1)


# ------------------------------------------------------------------ a killed collector


@pytest.fixture()
def local_procs(settings: Settings, tmp_path: Path) -> Iterator[Procs]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("URSPRUNG_")}
    env.update({"URSPRUNG_HOME": str(settings.home), "URSPRUNG_GRAPH": settings.graph,
                "URSPRUNG_COLLECT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
                "PYTHONPATH": str(REPO)})
    p = Procs(env, tmp_path)
    yield p
    p.stop_all()


def checkpoint(directory: Path) -> Checkpoint | None:
    files = list(directory.glob("*.ckpt"))
    assert len(files) <= 1, files
    if not files:
        return None
    try:
        return msgspec.msgpack.decode(files[0].read_bytes(), type=Checkpoint)
    except (FileNotFoundError, msgspec.DecodeError):
        return None


def test_collect_to_local_killed_after_a_checkpoint(
        local_procs: Procs, store: FalkorDBStore, reference_store: FalkorDBStore,
        tmp_path: Path) -> None:
    """A following ``collect --to local`` is killed (SIGKILL) right after it saved a
    checkpoint, twice while its log grows, then runs to the end: the graph equals a clean
    import. The worker thread holds each batch for a second before writing it (a busy or
    slow store), so a checkpoint that moved before the store had the events is caught."""
    source = copy_fixture("pipeline.audit.log", tmp_path / "src.log")
    local_import(reference_store, [(source, "nodeA")], [])
    expected = dump(reference_store)
    lines = source.read_bytes().splitlines(keepends=True)
    log = tmp_path / "node" / "audit.log"
    log.parent.mkdir()
    ckdir = tmp_path / "checkpoints"
    local_procs.env.update({"URSPRUNG_COLLECT_CHUNK_EVENTS": "400",
                            "URSPRUNG_COLLECT_FLUSH_SECONDS": "0.1",
                            "URSPRUNG_INGEST_BATCH_SECONDS": "1.0",
                            "URSPRUNG_INGEST_BATCH_EVENTS": "1000000"})
    args = ("collect", "auditd", str(log), "--host", "nodeA", "--to", "local")
    cuts = [len(lines) // 3, 2 * len(lines) // 3]
    written = 0
    previous = 0
    for cut in cuts:
        with log.open("ab") as fh:
            fh.writelines(lines[written:cut])
        written = cut
        collector = local_procs.start("collector", *args, "--follow")
        wait_until(lambda after=previous: (c := checkpoint(ckdir)) is not None
                   and c.offset > after, 60, "a new checkpoint", 0.01)
        os.kill(collector.pid, signal.SIGKILL)
        collector.wait()
        saved = checkpoint(ckdir)
        previous = saved.offset
        assert 0 < saved.offset <= log.stat().st_size
    with log.open("ab") as fh:
        fh.writelines(lines[written:])
    r = local_procs.run(*args, "--once")
    assert r.returncode == 0, r.stderr
    assert "resumed at byte" in r.stderr, r.stderr
    got = dump(store)
    assert (len(got[0]), len(got[1])) == (len(expected[0]), len(expected[1]))  # nodes, edges
    assert got == expected
