"""The store's lineage walk (one statement per level, many walks at once) against a plain
reference walk over the graph's edges held in Python, on random provenance graphs."""

from __future__ import annotations

import random

import pytest

from tests.events import Script
from ursprung_graph.ingest.upserts import Batch
from ursprung_graph.query.classify import Classifier
from ursprung_graph.query.lineage import DOWNSTREAM_LEVEL, UPSTREAM_LEVEL, Step, walk, walks
from ursprung_graph.query.lineage_view import lineage_view
from ursprung_graph.schema import graph as g
from ursprung_graph.schema.times import FOREVER
from ursprung_graph.store.cypher import Cypher

ALL_EDGES = Cypher(
    "MATCH (a)-[e]->(b) RETURN a.key AS a, labels(a)[0] AS la, type(e) AS rel, "
    "e.first AS first, e.last AS last, b.key AS b, labels(b)[0] AS lb, b.path AS bpath, "
    "a.path AS apath")
ALL_KEYS = Cypher("MATCH (n) WHERE n:File OR n:Process OR n:Pipe OR n:Endpoint "
                  "RETURN n.key AS key ORDER BY key")

# What a walk follows from a node of each label: (relationship types, True when the node
# is the edge's source), written out from the module docstring of query/lineage.py.
NETWORK = {"CONNECTED", "ACCEPTED", "BOUND"}
UP = {g.FILE: [({"WROTE", "RENAMED_TO", "LINKED_TO"}, False)],
      g.PROCESS: [({"READ", "EXECUTED"} | NETWORK, True), ({"FORKED"}, False)],
      g.PIPE: [({"WROTE"}, False)], g.ENDPOINT: [(NETWORK, False)]}
DOWN = {g.FILE: [({"READ", "EXECUTED"}, False), ({"RENAMED_TO", "LINKED_TO"}, True)],
        g.PROCESS: [({"WROTE", "FORKED"} | NETWORK, True)],
        g.PIPE: [({"READ"}, False)], g.ENDPOINT: [(NETWORK, False)]}


def reference(edges, labels, root, *, up, depth, as_of=None, admit=None):
    """Breadth-first by level; a node is (re)expanded when its time bound got looser."""
    rules = UP if up else DOWN
    start = as_of if as_of is not None else (FOREVER if up else 0)
    best, distance, seen = {root: start}, {root: 0}, {root}
    found: set[tuple[str, str, str]] = set()
    frontier, level, truncated = {root: start}, 0, False
    while frontier:
        if level == depth:
            truncated = True
            break
        level += 1
        nxt: dict[str, int] = {}
        for x, bound in frontier.items():
            for rels, x_is_source in rules.get(labels.get(x, ""), []):
                for e in edges:
                    if e["rel"] not in rels or (e["a"] if x_is_source else e["b"]) != x:
                        continue
                    if not (e["first"] <= bound if up else e["last"] >= bound):
                        continue
                    m = e["b"] if x_is_source else e["a"]
                    if admit is not None and m != root and not admit(
                            Step(key=m, label=labels[m], rel=e["rel"],
                                 path=e["bpath"] if x_is_source else e["apath"])):
                        continue
                    if m not in seen:
                        seen.add(m)
                        distance[m] = level
                    found.add((e["a"], e["b"], e["rel"]))
                    if e["rel"] == "FORKED":
                        b = e["first"]
                    else:
                        b = min(bound, e["last"]) if up else max(bound, e["first"])
                    if m not in best or (b > best[m] if up else b < best[m]):
                        best[m] = b
                        nxt[m] = b
        frontier = nxt
    return seen, found, distance, truncated


def random_story(rng: random.Random, events: int) -> Script:
    s = Script()
    procs = [s.proc(100, 0, ["sh", "run.sh"])]
    files = [f"/w/f{i}" for i in range(12)] + ["/usr/lib/libc.so.6", "/etc/hosts"]
    pipes = ["pipe:1", "pipe:2"]
    for t in range(1, events):
        p = rng.choice(procs)
        kind = rng.random()
        if kind < 0.12 and len(procs) < 12:
            child = s.proc(100 + len(procs), t, ["python3", f"s{len(procs)}.py"])
            s.fork(t, p, child)
            procs.append(child)
        elif kind < 0.45:
            s.read(t, p, rng.choice(files))
        elif kind < 0.75:
            s.write(t, p, rng.choice(files[:12]))
        elif kind < 0.8:
            s.rename(t, p, rng.choice(files[:12]), rng.choice(files[:12]))
        elif kind < 0.88:
            s.pipe(t, p, rng.choice(pipes), write=rng.random() < 0.5)
        elif kind < 0.94:
            s.connect(t, p, rng.choice([80, 443]))
        else:
            s.exec(t, p, rng.choice(["/usr/bin/python3", "/w/tool"]))
    return s


@pytest.mark.parametrize("seed", range(3))
def test_walk_matches_the_reference_on_random_graphs(store, seed):
    rng = random.Random(seed)
    batch = Batch()
    for ev in random_story(rng, 160).events:
        batch.add(ev)
    store.write(batch.statements())
    edges = store.read(ALL_EDGES)
    labels = {e["a"]: e["la"] for e in edges} | {e["b"]: e["lb"] for e in edges}
    keys = [r["key"] for r in store.read(ALL_KEYS)]
    rule = Classifier()

    def admit(step: Step) -> bool:
        return not (step.label == g.FILE and rule.environment(step.path or ""))

    compared = 0
    for root in rng.sample(keys, min(10, len(keys))):
        for up, depth, rule_ in [(u, d, r) for u in (True, False) for d in (2, 30)
                                 for r in (None, admit)]:
            as_of = rng.choice([None, rng.randrange(1, 160) * 10**9])
            got = walk(store, root, direction="up" if up else "down", depth=depth,
                       as_of=as_of, admit=rule_)
            seen, found, distance, truncated = reference(
                edges, labels, root, up=up, depth=depth, as_of=as_of, admit=rule_)
            assert {n.id for n in got.lineage.nodes} == seen
            assert {(e.source, e.target, e.kind) for e in got.lineage.edges} == found
            assert got.distance == distance
            assert got.truncated == truncated
            compared += 1
    assert compared >= 60


def test_many_walks_at_once_answer_as_each_walk_alone(store):
    rng = random.Random(9)
    batch = Batch()
    for ev in random_story(rng, 200).events:
        batch.add(ev)
    store.write(batch.statements())
    keys = [r["key"] for r in store.read(ALL_KEYS)]
    roots = rng.sample(keys, min(15, len(keys)))
    for direction in ("up", "down"):
        together = walks(store, roots, direction=direction, depth=30)
        for root in roots:
            assert together[root] == walk(store, root, direction=direction, depth=30)
        cut = walks(store, roots, direction=direction, depth=2, max_nodes=6)
        for root in roots:
            assert cut[root] == walk(store, root, direction=direction, depth=2, max_nodes=6)


class Frontiers:
    """The real store; the file keys of every level's frontier are kept."""

    def __init__(self, store) -> None:
        self.store = store
        self.files: set[str] = set()

    def read(self, statement, params=None, *, timeout=None):
        if statement in (UPSTREAM_LEVEL, DOWNSTREAM_LEVEL):
            self.files.update(f["key"] for f in params["frontier"]["files"])
        return self.store.read(statement, params, timeout=timeout)


def test_without_system_files_hot_libraries_are_never_expanded(store):
    """A library every step reads is not walked from (no statement carries it) unless
    system files are asked for."""
    s = Script()
    shell = s.proc(1, 1, ["sh", "run.sh"])
    prev = "/w/raw.csv"
    for i in range(6):
        p = s.proc(10 + i, 2 + i, ["python3", f"s{i}.py"])
        s.fork(2 + i, shell, p)
        s.read(2 + i, p, "/usr/lib/libhot.so.1")
        s.read(2 + i, p, prev)
        prev = f"/w/out{i}"
        s.write(2 + i, p, prev)
    batch = Batch()
    for ev in s.events:
        batch.add(ev)
    store.write(batch.statements())
    lib = "f:h1:/usr/lib/libhot.so.1"
    for direction, root in (("up", f"f:h1:{prev}"), ("down", "f:h1:/w/raw.csv")):
        for system in (False, True):
            seen = Frontiers(store)
            view = lineage_view(seen, root, direction=direction, include_system=system)
            listed = lib in {n.id for n in view.nodes}
            assert listed == (system and direction == "up")
            assert (lib in seen.files) == listed
