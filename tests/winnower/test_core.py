"""The Winnower core on small hand-made graphs: abstraction, induction (collapse, depth k,
linear acceptance), merge (property tests: commutative, associative, idempotent), deltas and
anomaly ranking."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ursprung_graph.schema.event import Endpoint, Event, FileRef, Kind, ProcessInfo
from ursprung_graph.winnower.abstraction import (
    AbstractionError,
    Abstractor,
    Context,
    RulesFile,
    load_rules,
)
from ursprung_graph.winnower.agent import EpochCutter
from ursprung_graph.winnower.anomalies import rank
from ursprung_graph.winnower.delta import (
    DeltaError,
    NodeState,
    Ordinals,
    apply_delta,
    decode_delta,
    encode_delta,
    epoch_delta,
)
from ursprung_graph.winnower.induction import accepts, induce
from ursprung_graph.winnower.model import (
    Example,
    Model,
    ModelMismatch,
    State,
    Transition,
    canonical,
    merge,
)
from ursprung_graph.winnower.pgraph import ProvGraph, Vertex, graph_of_events

A = Abstractor()


def server_graph(host: str, requests: int, *, attack: bool = False,
                 pages: tuple[str, ...] = ("index.html", "a.css")) -> ProvGraph:
    """A server (pid varies by host) that forks one worker per request; each worker reads
    a page and appends to a log; with ``attack`` one worker runs a shell that connects out
    and executes what it downloaded."""
    g = ProvGraph()
    base = 1000 + len(host) * 17
    srv = g.add_vertex(Vertex(f"p:{host}:{base}:1", "process", host=host, pid=base,
                              exe="/usr/bin/python3.11", argv=["python3", "/srv/app.py",
                                                               "--port", "8080"]))
    g.add_vertex(Vertex(f"e:{host}:tcp:8080", "endpoint", host=host, family="inet",
                        address="0.0.0.0", port=8080))
    g.add_edge(srv.key, "BOUND", f"e:{host}:tcp:8080")
    for i in range(requests):
        w = g.add_vertex(Vertex(f"p:{host}:{base + 1 + i}:{i + 2}", "process", host=host,
                                pid=base + 1 + i, exe="/usr/bin/python3.11",
                                argv=["python3", "/srv/app.py", "--port", "8080"]))
        g.add_edge(srv.key, "FORKED", w.key, i)
        page = pages[i % len(pages)]
        g.add_vertex(Vertex(f"f:{host}:/srv/www/{page}", "file", host=host,
                            path=f"/srv/www/{page}"))
        g.add_edge(w.key, "READ", f"f:{host}:/srv/www/{page}", i)
        g.add_vertex(Vertex(f"f:{host}:/tmp/tmpq{i}x9z/log", "file", host=host,
                            path=f"/tmp/tmpq{i}x9z/log"))
        g.add_edge(w.key, "WROTE", f"f:{host}:/tmp/tmpq{i}x9z/log", i)
    if attack:
        sh = g.add_vertex(Vertex(f"p:{host}:9999:99", "process", host=host, pid=9999,
                                 exe="/usr/bin/bash", argv=["sh", "-c", "x"], first=99))
        g.add_edge(srv.key, "FORKED", sh.key, 99)
        g.add_vertex(Vertex("e::10.66.0.1:8000", "endpoint", family="inet",
                            address="10.66.0.1", port=8000))
        g.add_edge(sh.key, "CONNECTED", "e::10.66.0.1:8000", 100)
        g.add_vertex(Vertex(f"f:{host}:/tmp/.x", "file", host=host, path="/tmp/.x"))
        g.add_edge(sh.key, "EXECUTED", f"f:{host}:/tmp/.x", 101)
    return g


RULES = Abstractor(RulesFile(internal=["10.77.0.0/16"]))


# --------------------------------------------------------------------------- abstraction


def test_labels_drop_instance_detail_and_keep_what_matters():
    proc = Vertex("p", "process", exe="/usr/bin/python3.11",
                  argv=["python3", "train.py", "--lr", "0.01", "--seed=42",
                        "/tmp/tmp8f3kq1/x.json", "run-3f2a9c0d1e4b5a6f"])
    assert A.label(proc) == ("proc /usr/bin/python<n>.<n> python3 train.py --lr <num> "
                             "--seed=<num> /tmp/<tmp>/x.json run-<hex>")
    assert A.label(Vertex("f", "file", path="/proc/4242/task/4243/stat")) == \
        "file /proc/<pid>/stat"
    assert A.label(Vertex("e", "endpoint", family="inet", address="127.0.0.1",
                          port=51234)) == "inet <local>:<eph>"
    # cluster-internal addresses go, external ones stay (with their service port)
    assert A.label(Vertex("e", "endpoint", family="inet", address="10.1.2.3", port=5432)) \
        == "inet <internal>:5432"
    assert A.label(Vertex("e", "endpoint", family="inet", address="93.184.216.34",
                          port=443)) == "inet 93.184.216.34:443"
    # a run's own directory, id and parameter values
    ctx = Context(cwd="/home/u/sweep/run7", run_id="abc123", params=("0.01", "adam"))
    assert A.label(Vertex("f", "file", path="/home/u/sweep/run7/data/raw.csv"), ctx) == \
        "file <cwd>/data/raw.csv"
    p2 = Vertex("p", "process", exe="/bin/sh", argv=["sh", "run.sh", "--opt", "adam",
                                                     "--id=abc123"])
    assert A.label(p2, ctx) == "proc /bin/sh sh run.sh --opt <param> --id=<run>"


def test_rules_are_ordered_configurable_and_checked(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('internal = ["10.77.0.0/16"]\n'
                    '[[rule]]\nfield = "path"\nmatch = "^/srv/cache/[^/]+"\n'
                    'replace = "/srv/cache/<entry>"\n')
    rules = load_rules(str(path))
    # the user's rule runs first: the default number rule never sees the entry name
    assert rules.label(Vertex("f", "file", path="/srv/cache/item42/data")) == \
        "file /srv/cache/<entry>/data"
    assert rules.label(Vertex("e", "endpoint", family="inet", address="10.1.2.3",
                              port=80)) == "inet 10.1.2.3:80"  # not internal any more
    assert rules.label(Vertex("e", "endpoint", family="inet", address="10.77.3.2",
                              port=80)) == "inet <internal>:80"
    path.write_text('[[rule]]\nfield = "path"\nmatch = "(["\nreplace = "x"\n')
    with pytest.raises(AbstractionError, match="rules.toml|unterminated"):
        load_rules(str(path))
    path.write_text('[[rule]]\nfield = "colour"\nmatch = "x"\nreplace = "y"\n')
    with pytest.raises(AbstractionError, match="colour"):
        load_rules(str(path))
    with pytest.raises(AbstractionError, match="No such file"):
        load_rules(str(tmp_path / "missing.toml"))


# --------------------------------------------------------------------------- induction


def test_repeated_requests_collapse_and_replicas_share_states():
    one = induce(server_graph("node-a", 3), RULES, k=2, origin="a").model
    many = induce(server_graph("node-bb", 300), RULES, k=2, origin="b").model
    # 300 requests are the same states as 3: pids, hosts and temp names are gone
    assert set(one.states) == set(many.states)
    assert set(one.transitions) == set(many.transitions)
    # server, socket, two pages, the log, and a worker state per page it reads (k > 0)
    assert len(many.states) == 7
    workers = [s for s in many.states.values() if s.label.startswith("proc")
               and s.support["b"] == 150]
    assert len(workers) == 2


def test_depth_k_separates_equal_labels_with_different_structure():
    g = server_graph("n", 4)
    # a worker that reads no page: same label, other structure
    lazy = g.add_vertex(Vertex("p:n:1:lazy", "process", host="n", pid=1,
                               exe="/usr/bin/python3.11",
                               argv=["python3", "/srv/app.py", "--port", "8080"]))
    srv = next(iter(g.vertices))
    g.add_edge(srv, "FORKED", lazy.key)
    flat = induce(g, RULES, k=0, origin="n").model
    deep = induce(g, RULES, k=1, origin="n").model
    procs = [s for s in deep.states.values() if s.label.startswith("proc")]
    # one label at k = 0; at k = 1 the server, the worker of each page and the lazy one
    assert len([s for s in flat.states.values() if s.label.startswith("proc")]) == 1
    assert sorted(sum(s.support.values()) for s in procs) == [1, 1, 2, 2]
    assert len(deep.states) == len(flat.states) + 3
    assert {s.label for s in deep.states.values()} == {s.label for s in flat.states.values()}


def test_acceptance_of_new_graphs():
    model = merge(*(induce(server_graph(f"n{i}", 5), RULES, k=1, origin=f"n{i}").model
                    for i in range(3)))
    assert accepts(model, server_graph("other", 50), RULES)
    assert not accepts(model, server_graph("other", 5, attack=True), RULES)
    assert not accepts(model, server_graph("other", 5, pages=("secret.db",)), RULES)


# --------------------------------------------------------------------------- merge

labels = st.sampled_from(["proc a", "proc b", "file x", "file y", "inet 1.2.3.4:80"])
origins = st.sampled_from(["n1", "n2", "n3"])
supports = st.dictionaries(origins, st.integers(1, 50), min_size=1, max_size=3)
examples = st.none() | st.builds(Example, st.integers(0, 100), origins, st.text(max_size=5))


@st.composite
def models(draw: st.DrawFn) -> Model:
    sids = draw(st.lists(st.integers(1, 8), max_size=6, unique=True))
    m = Model(k=1)
    for sid in sids:
        # the same id always has the same label (ids are derived from labels)
        m.states[sid] = State(f"label{sid}", draw(st.integers(0, 5)), draw(supports),
                              draw(examples))
    for _ in range(draw(st.integers(0, 6))):
        if not sids:
            break
        src, dst = draw(st.sampled_from(sids)), draw(st.sampled_from(sids))
        rel = draw(st.sampled_from(["READ", "FORKED"]))
        tid = hash((src, rel, dst)) & 0xFFFF
        m.transitions[tid] = Transition(src, rel, dst, draw(st.integers(0, 5)),
                                        draw(supports), draw(examples))
    return m


@settings(max_examples=200, deadline=None)
@given(models(), models(), models())
def test_merge_is_commutative_associative_idempotent(a: Model, b: Model, c: Model):
    assert canonical(merge(a, b)) == canonical(merge(b, a))
    assert canonical(merge(merge(a, b), c)) == canonical(merge(a, merge(b, c)))
    assert canonical(merge(a, a)) == canonical(merge(a))
    ab = merge(a, b)
    assert canonical(merge(ab, b)) == canonical(ab)  # a delta applied twice


@settings(max_examples=100, deadline=None)
@given(st.permutations(range(6)), st.lists(st.integers(0, 5), max_size=4))
def test_global_model_is_independent_of_delta_order_and_duplicates(order, dups):
    """Deltas of three nodes over two epochs, applied in any order, some twice."""
    deltas = []
    for i in range(3):
        node = NodeState(f"n{i}", 1)
        for epoch in range(2):
            g = server_graph(f"n{i}", 2 + i + epoch, attack=(i == 2 and epoch == 1))
            deltas.append(epoch_delta(node, induce(g, RULES, k=1, origin=f"n{i}",
                                                   epoch=epoch).model, epoch))
    reference = Model(k=1)
    ordinals = Ordinals()
    for d in deltas:
        apply_delta(reference, d, ordinals)
    shuffled = Model(k=1)
    other = Ordinals()
    for j in [*order, *dups]:
        apply_delta(shuffled, deltas[j], other)
    assert canonical(shuffled) == canonical(reference)
    assert sorted(other.states) == sorted(ordinals.states) == sorted(reference.states)


def test_models_of_other_depths_do_not_merge():
    a = induce(server_graph("n", 2), RULES, k=0, origin="n").model
    b = induce(server_graph("n", 2), RULES, k=1, origin="n").model
    with pytest.raises(ModelMismatch):
        merge(a, b)


# --------------------------------------------------------------------------- deltas


def test_delta_sends_only_what_the_global_model_lacks():
    node = NodeState("n1", 1)
    first = epoch_delta(node, induce(server_graph("n1", 5), RULES, k=1, origin="n1",
                                     epoch=0).model, 0)
    assert first.states and first.transitions
    glob, order = Model(k=1), Ordinals()
    apply_delta(glob, first, order)
    node.learn(order.view(1, 0))
    again = epoch_delta(node, induce(server_graph("n1", 7), RULES, k=1, origin="n1",
                                     epoch=1).model, 1)
    assert again.states == [] and again.transitions == []  # all accepted: counts only
    # known parts are named by small ordinals, not by 63-bit ids
    assert sorted(again.state_refs) == list(range(len(glob.states)))
    attack = epoch_delta(node, induce(server_graph("n1", 7, attack=True), RULES, k=1,
                                      origin="n1", epoch=2).model, 2)
    new = {s.label for s in attack.states}
    assert {"proc /usr/bin/bash sh -c x", "inet 10.66.0.1:8000", "file /tmp/<tmp>"} <= new
    assert all(t.example is not None and "n1" in t.example.origin
               for t in attack.transitions if t.rel == "CONNECTED")
    wire = encode_delta(attack)
    assert decode_delta(wire) == attack
    assert len(encode_delta(again)) < len(encode_delta(first)) / 2
    apply_delta(glob, attack, order)
    # cumulative counts: the log files of 5 + 7 + 7 requests
    [log] = [s for s in glob.states.values() if s.label == "file /tmp/<tmp>/log"]
    assert log.support == {"n1": 19}
    with pytest.raises(DeltaError):
        decode_delta(b"garbage")
    with pytest.raises(DeltaError):
        decode_delta(wire[:-5])
    # a delta naming an ordinal this monitor never gave out
    stray = msgspec.structs.replace(again, state_refs=[len(glob.states) + 5],
                                    state_counts=[1], transition_refs=[], transition_counts=[])
    with pytest.raises(DeltaError, match="unknown state"):
        apply_delta(glob, stray, order)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_monitor_derives_the_same_state_ids(k: int):
    """At k <= 1 a delta carries no state ids: the monitor derives them from labels."""
    node = NodeState("n1", k)
    local = induce(server_graph("n1", 6, attack=True), RULES, k=k, origin="n1").model
    delta = epoch_delta(node, local, 0)
    assert all(s.id == 0 for s in delta.states) == (k <= 1)
    glob, order = Model(k=k), Ordinals()
    apply_delta(glob, delta, order)
    assert set(glob.states) == set(local.states)
    assert set(glob.transitions) == set(local.transitions)
    node.learn(order.view(k, 0))
    # a new state next to known ones: derived from the known states' labels too
    more = induce(server_graph("n1", 6, attack=True, pages=("index.html", "a.css", "b.js")),
                  RULES, k=k, origin="n1").model
    apply_delta(glob, epoch_delta(node, more, 1), order)
    assert set(more.states) <= set(glob.states)
    assert set(more.transitions) <= set(glob.transitions)


# --------------------------------------------------------------------------- anomalies


def test_anomalies_rank_the_attacked_replica_and_new_behaviour():
    glob, order = Model(k=1), Ordinals()
    for i in range(10):
        node = NodeState(f"n{i}", 1)
        for epoch in range(3):
            g = server_graph(f"n{i}", 3 + (i + epoch) % 4, attack=(i == 4 and epoch == 2))
            apply_delta(glob, epoch_delta(node, induce(g, RULES, k=1, origin=f"n{i}",
                                                       epoch=epoch).model, epoch), order)
            node.learn(order.view(1, epoch))
    report = rank(glob)
    assert report.origins == [f"n{i}" for i in range(10)]
    found = {(a.source.split()[1], a.rel, a.target) for a in report.anomalies}
    assert found == {("/usr/bin/python<n>.<n>", "FORKED", "proc /usr/bin/bash sh -c x"),
                     ("/usr/bin/bash", "CONNECTED", "inet 10.66.0.1:8000"),
                     ("/usr/bin/bash", "EXECUTED", "file /tmp/<tmp>")}
    assert all(a.origins == {"n4": 1} and a.reasons == ["rare"] for a in report.anomalies)
    assert all(e.origin == "n4" for a in report.anomalies for e in a.examples)
    # the same attack everywhere at once is common, but new since epoch 2
    everywhere, order = Model(k=1), Ordinals()
    for i in range(10):
        node = NodeState(f"n{i}", 1)
        for epoch in range(3):
            g = server_graph(f"n{i}", 3, attack=epoch == 2)
            apply_delta(everywhere, epoch_delta(node, induce(g, RULES, k=1, origin=f"n{i}",
                                                             epoch=epoch).model, epoch), order)
    assert rank(everywhere).anomalies == []
    new = rank(everywhere, since=2).anomalies
    assert len(new) == 3 and all(a.reasons == ["new"] and len(a.origins) == 10 for a in new)


# --------------------------------------------------------------------------- epoch graphs


def _ev(kind: str, ts: int, pid: int, **kw: object) -> Event:
    return Event(v=1, source="t", host="h", ts=ts, seq=str(ts), kind=Kind(kind),
                 proc=ProcessInfo(pid=pid, start=pid, **kw.pop("proc", {})), **kw)


def test_epoch_graph_keeps_every_program_a_process_ran():
    server = {"exe": "/usr/bin/python3", "argv": ["python3", "app.py"]}
    events = [
        _ev("exec", 1, 10, proc=server),
        # a vfork child execs bash before its parent's clone record, which comes later
        _ev("exec", 3, 11, proc={"exe": "/usr/bin/bash", "argv": ["bash", "-c", "x; /tmp/p"]}),
        _ev("fork", 4, 10, child=ProcessInfo(pid=11, start=11, **server)),
        _ev("connect", 5, 11, peer=Endpoint("inet", "10.66.0.1", 8000)),
        # bash execs its last command: the same process, another program
        _ev("exec", 6, 11, proc={"exe": "/usr/bin/dash", "argv": ["/bin/sh", "/tmp/p"]},
            file=FileRef("/tmp/p")),
        _ev("read", 7, 11, file=FileRef("/etc/passwd")),
    ]
    known: dict = {}
    g = graph_of_events(events, known)
    labels = {k: RULES.label(v) for k, v in g.vertices.items()}
    edges = {(labels[e.src].split()[1], e.rel, labels[e.dst]) for e in g.edges.values()}
    assert ("/usr/bin/python<n>", "FORKED", "proc /usr/bin/bash bash -c x; /tmp/p") in edges
    assert ("/usr/bin/bash", "CONNECTED", "inet 10.66.0.1:8000") in edges
    assert ("/usr/bin/bash", "EXEC", "proc /usr/bin/dash sh /tmp/<tmp>") in edges
    assert ("/usr/bin/dash", "EXECUTED", "file /tmp/<tmp>") in edges
    assert ("/usr/bin/dash", "READ", "file /etc/passwd") in edges
    # the next epoch: the server acts without an exec, and is still the server
    later = graph_of_events([_ev("read", 20, 10, file=FileRef("/srv/www/index.html"))], known)
    [srv] = [v for v in later.vertices.values() if v.kind == "process"]
    assert srv.exe == "/usr/bin/python3" and srv.argv == ["python3", "app.py"]


def test_epochs_are_cut_by_event_time_and_by_the_clock():
    cutter = EpochCutter(10, grace_ns=5)
    evs = [_ev("read", t, 1, file=FileRef("/x")) for t in (1, 4, 12, 9, 25)]
    # 9 comes late, into the open epoch 1; epoch 0 is complete when 12 arrives
    done = cutter.add(evs)
    assert [(e, [ev.ts for ev in batch]) for e, batch in done] == [(0, [1, 4]), (1, [12, 9])]
    assert cutter.due(34) == []  # epoch 2 ends at 30, plus 5 of grace
    assert [(e, [ev.ts for ev in b]) for e, b in cutter.due(35)] == [(2, [25])]
    assert cutter.flush() == []
    with pytest.raises(ValueError):
        EpochCutter(0)
