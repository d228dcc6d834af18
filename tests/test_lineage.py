"""Lineage over a hand-written story, ingested into a real FalkorDB: the time rules of the
architecture (writers at or before T, inputs read before the write, fork at fork time)."""

from __future__ import annotations

import random

import pytest

from tests.events import Script
from tests.graphdump import dump
from ursprung_graph.ingest.upserts import Batch
from ursprung_graph.query.lineage import AmbiguousPath, find_file, lineage
from ursprung_graph.schema.event import Event


def ingest(store, events: list[Event], batch_size: int = 1000) -> None:
    for i in range(0, len(events), batch_size):
        batch = Batch()
        for ev in events[i:i + batch_size]:
            batch.add(ev)
        store.write(batch.statements())


def story() -> Script:
    s = Script()
    shell = s.proc(100, 1, ["bash", "run.sh"])
    cat, sort = s.proc(101, 2), s.proc(102, 2)
    client, combine, after = s.proc(103, 7), s.proc(104, 10), s.proc(105, 12)
    server, unrelated, later = s.proc(200), s.proc(300), s.proc(106, 19)
    s.read(1, shell, "/w/run.sh")
    s.bind(1, server, 8080)
    s.fork(2, shell, cat)
    s.fork(2, shell, sort)
    s.pipe(2, cat, "p1", write=True)
    s.pipe(2, sort, "p1", write=False)
    s.write(2, sort, "/w/tmp.txt")          # the shell's redirect, before sort reads anything
    s.exec(2, cat, "/usr/bin/cat")
    s.exec(2, sort, "/usr/bin/sort")
    s.read(3, cat, "/w/a.txt")
    s.read(4, unrelated, "/w/u_in.txt")
    s.write(4, unrelated, "/w/unrelated.txt")
    s.read(5, cat, "/w/a.txt")
    s.pipe(5, cat, "p1", write=True)
    s.exit(5, cat)
    s.pipe(6, sort, "p1", write=False)
    s.write(6, sort, "/w/tmp.txt")
    s.exit(6, sort)
    s.rename(7, shell, "/w/tmp.txt", "/w/sorted.txt")
    s.fork(7, shell, client)
    s.connect(8, client, 8080)
    s.write(8, client, "/w/dl.txt")
    s.read(8, server, "/srv/served.txt")
    s.accept(8, server, 8080)
    s.write(9, client, "/w/dl.txt")
    s.exit(9, client)
    s.fork(10, shell, combine)
    s.read(10, combine, "/w/sorted.txt")
    s.read(10, combine, "/w/dl.txt")
    s.write(10, combine, "/w/final.txt")
    s.write(11, combine, "/w/final.txt")
    s.exit(11, combine)
    s.write(12, unrelated, "/w/unrelated.txt")
    s.fork(12, shell, after)
    s.read(12, after, "/w/final.txt")
    s.write(12, after, "/w/after.txt")
    s.fork(19, shell, later)
    s.read(20, later, "/w/newer.txt")
    s.write(20, later, "/w/a.txt")          # a.txt changes after cat read it
    return s


def paths(result) -> set[str]:
    return {n.path for n in result.nodes if n.kind == "file"}


@pytest.fixture()
def loaded(store):
    ingest(store, story().events, batch_size=7)
    return store


def test_upstream_follows_pipes_renames_sockets_and_forks(loaded) -> None:
    result = lineage(loaded, find_file(loaded, "/w/final.txt"), direction="up")
    found = paths(result)
    for path in ("/w/a.txt", "/w/tmp.txt", "/w/sorted.txt", "/w/dl.txt", "/srv/served.txt",
                 "/w/run.sh", "/usr/bin/sort", "/usr/bin/cat"):
        assert path in found, path
    for path in ("/w/u_in.txt", "/w/unrelated.txt", "/w/after.txt", "/w/newer.txt"):
        assert path not in found, path
    kinds = {n.kind for n in result.nodes}
    assert {"pipe", "endpoint", "process", "file"} <= kinds


def test_upstream_as_of_excludes_later_writes(loaded) -> None:
    a = find_file(loaded, "/w/a.txt")
    assert "/w/newer.txt" in paths(lineage(loaded, a, direction="up"))
    assert "/w/newer.txt" not in paths(lineage(loaded, a, direction="up", as_of=10 * 10**9))


def test_downstream_mirrors_upstream(loaded) -> None:
    found = paths(lineage(loaded, find_file(loaded, "/w/a.txt"), direction="down"))
    assert {"/w/tmp.txt", "/w/sorted.txt", "/w/final.txt", "/w/after.txt"} <= found
    assert not found & {"/w/dl.txt", "/w/unrelated.txt", "/srv/served.txt"}


def test_lineage_edges_carry_times_and_known_nodes(loaded) -> None:
    result = lineage(loaded, find_file(loaded, "/w/final.txt"))
    ids = {n.id for n in result.nodes}
    assert result.root in ids
    for edge in result.edges:
        assert edge.source in ids and edge.target in ids
        assert edge.first <= edge.last
    wrote = [e for e in result.edges if e.kind == "WROTE" and e.target == result.root]
    assert [(e.first, e.last) for e in wrote] == [(10 * 10**9, 11 * 10**9)]
    procs = {n.pid: n for n in result.nodes if n.kind == "process"}
    assert procs[100].cmdline == "bash run.sh"


def test_depth_limits_hops(loaded) -> None:
    result = lineage(loaded, find_file(loaded, "/w/final.txt"), depth=1)
    assert {n.kind for n in result.nodes} == {"file", "process"}
    assert paths(result) == {"/w/final.txt"}


def test_replay_in_any_order_and_batching_is_idempotent(store) -> None:
    events = story().events
    ingest(store, events, batch_size=1000)
    clean = dump(store)
    ingest(store, events, batch_size=3)
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    ingest(store, shuffled, batch_size=5)
    assert dump(store) == clean


def test_same_path_on_two_hosts_is_ambiguous(store) -> None:
    a, b = Script("alpha"), Script("beta")
    a.write(1, a.proc(1), "/data/x")
    b.write(1, b.proc(1), "/data/x")
    ingest(store, a.events + b.events)
    with pytest.raises(AmbiguousPath) as err:
        find_file(store, "/data/x")
    assert err.value.hosts == ["alpha", "beta"]
    assert find_file(store, "/data/x", host="beta") == "f:beta:/data/x"
    with pytest.raises(LookupError):
        find_file(store, "/data/nothing")
