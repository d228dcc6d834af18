"""One suite, both backends: the recorded audit logs and traced runs imported through the
ordinary ingest path, then lineage, runs and replays, with the same answers on the
embedded FalkorDB and on a real Neo4j 5; and the dumps of one import compare equal."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.backends.conftest import Backend
from tests.graphdump import dump
from tests.test_real_logs import (
    FIXTURE_WORKDIR,
    HOST,
    MANIFEST,
    Crash,
    CrashingStore,
    check_manifest,
)
from ursprung_graph.pipeline.checkpoint import CheckpointStore
from ursprung_graph.pipeline.define import define_runs
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.query.compare import compare
from ursprung_graph.query.lineage import find_file, lineage
from ursprung_graph.query.runs import list_runs, run_facts
from ursprung_graph.query.types import RunFileFact
from ursprung_graph.store.base import GraphStore, StoreError, StoreTimeout
from ursprung_graph.store.cypher import Cypher

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
URSPRUNG = str(Path(sys.executable).parent / "ursprung")
TWO_RUNS = MANIFEST["pipeline2.sh"]
#: Every triple of files: seconds of work on either backend, stopped long before by a timeout.
FILE_TRIPLES = Cypher(
    "MATCH (a:File), (b:File), (c:File) WHERE a.path + b.path + c.path = $never "
    "RETURN count(*) AS n")
OUTPUT_WRITES = Cypher(
    "MATCH (f:File {key: $key})<-[e:WROTE]-(:Process) RETURN min(e.first) AS first, "
    "max(e.last) AS last")


def import_two_runs(store: GraphStore) -> list[str]:
    import_file(store, DATA / "two_runs.audit.log", host=HOST)
    return define_runs(store, "train", r"python3(\.[0-9]+)? .*bin/train\.py --lr", host=HOST)


def _rels(files: list[RunFileFact]) -> set[str]:
    return {f.rel or f.path for f in files}


def test_recorded_pipeline_lineage_up_and_down(backend: Backend) -> None:
    stats = import_file(backend.store, DATA / "pipeline.audit.log", host=HOST)
    assert stats.events > 1000 and stats.dead_letters == 0
    check_manifest(backend.store, FIXTURE_WORKDIR)


def test_lineage_as_of_a_time(backend: Backend) -> None:
    store = backend.store
    import_file(store, DATA / "pipeline.audit.log", host=HOST)
    root = find_file(store, f"{FIXTURE_WORKDIR}/final/result.txt", HOST)
    [span] = store.read(OUTPUT_WRITES, {"key": root})
    before = lineage(store, root, direction="up", as_of=span["first"] - 1)
    assert [n.id for n in before.nodes] == [root] and before.edges == []
    at_end = lineage(store, root, direction="up", as_of=span["last"])
    assert at_end == lineage(store, root, direction="up") and len(at_end.nodes) > 10
    # downstream from after the last use: nothing read it later
    after = lineage(store, root, direction="down", as_of=2**62)
    assert after.edges == []


def test_runs_defined_on_audit_data_list_show_compare(backend: Backend) -> None:
    store = backend.store
    ids = import_two_runs(store)
    assert [r.id for r in list_runs(store, "train")] == ids and len(ids) == 2
    facts = [run_facts(store, i) for i in ids]
    for spec, run in zip(TWO_RUNS["runs"], facts, strict=True):
        assert _rels(run.outputs) == set(spec["outputs"])
        assert set(spec["must_include"]) <= _rels(run.inputs)
        assert "bin/train.py" in _rels(run.programs)
    result = compare(*facts)
    changed = {e.name: (e.a, e.b) for e in result.params.changed}
    for name, (a, b) in TWO_RUNS["compare"]["params_differ"].items():
        assert changed[name.lstrip("-")] == (a, b)
    assert {e.name for e in result.inputs.only_b} == set(
        TWO_RUNS["compare"]["inputs_only_in_second"])


def test_replaying_a_batch_leaves_the_graph_unchanged(backend: Backend) -> None:
    store = backend.store
    import_two_runs(store)
    once = dump(store)
    import_two_runs(store)  # the log and the run definitions, all again
    assert dump(store) == once


@pytest.mark.parametrize("crash_at", [3])
def test_killed_writer_then_resume_equals_clean_import(backend: Backend, tmp_path: Path,
                                                       crash_at: int) -> None:
    store, log = backend.store, DATA / "pipeline.audit.log"
    import_file(store, log, host=HOST, chunk_events=1000)
    clean = dump(store)
    store.clear()
    store.ensure_schema()
    checkpoints = CheckpointStore(tmp_path / "ckpt")
    with pytest.raises(Crash):
        import_file(CrashingStore(store, crash_at), log, host=HOST, checkpoints=checkpoints,
                    chunk_events=1000)
    assert import_file(store, log, host=HOST, checkpoints=checkpoints,
                       chunk_events=1000).resumed_from > 0
    assert dump(store) == clean


def test_import_process_killed_at_random_points_then_rerun(backend: Backend) -> None:
    """A real `ursprung import` writing into the backend, SIGKILLed at random points after
    it checkpointed; the rerun resumes, and the graph is that of a clean import."""
    store, log = backend.store, DATA / "pipeline.enriched.audit.log"
    import_file(store, log, host=HOST)
    clean = dump(store)
    rng = random.Random(11)
    mid_way = 0
    for trial in range(2):
        store.clear()
        store.ensure_schema()
        ckpts = backend.settings.checkpoint_dir  # the import's, per store and graph
        shutil.rmtree(ckpts, ignore_errors=True)
        env = backend.env()
        cmd = [URSPRUNG, "import", "--host", HOST, "--no-progress", "--chunk-events", "50",
               str(log)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while proc.poll() is None and not list(ckpts.glob("*.ckpt")):
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.2))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        if proc.wait() == -signal.SIGKILL:
            mid_way += 1
        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        assert "resumed at byte" in rerun.stderr or proc.returncode == 0
        assert dump(store) == clean, f"trial {trial}"
    assert mid_way >= 1, "every import finished before it could be killed"


def test_reads_cannot_write(backend: Backend) -> None:
    with pytest.raises(StoreError):
        backend.store.read(Cypher("CREATE (n:Process {key: $k}) RETURN n.key AS k"),
                           {"k": "x"})
    assert backend.store.read(Cypher("MATCH (n) RETURN count(n) AS n")) == [{"n": 0}]


def test_a_read_past_its_timeout_is_stopped_inside_the_store(backend: Backend) -> None:
    """The per-statement timeout a walk passes (the request's time left) is enforced by the
    store itself: the statement ends, StoreTimeout is raised, and the next read works."""
    import_file(backend.store, DATA / "pipeline.audit.log", host=HOST)
    started = time.monotonic()
    with pytest.raises(StoreTimeout):
        backend.store.read(FILE_TRIPLES, {"never": "-"}, timeout=0.05)
    assert time.monotonic() - started < 10
    assert backend.store.read(OUTPUT_WRITES, {"key": "none"}, timeout=30) == [
        {"first": None, "last": None}]


def test_nodes_and_edges_come_back_as_plain_values(backend: Backend) -> None:
    import_file(backend.store, DATA / "pipeline.audit.log", host=HOST)
    [row] = backend.store.read(Cypher(
        "MATCH (p:Process)-[e:EXECUTED]->(f:File) WHERE f.name = $name "
        "RETURN p, e, f ORDER BY p.key LIMIT 1"), {"name": "sort"})
    assert row["p"]["_labels"] == ["Process"] and isinstance(row["p"]["argv"], list)
    assert row["e"]["_type"] == "EXECUTED"
    assert (row["e"]["_src"], row["e"]["_dst"]) == (row["p"]["_id"], row["f"]["_id"])
    assert row["f"]["path"] == "/usr/bin/sort" and row["f"]["_labels"] == ["File"]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_traced_runs_through_the_cli(backend: Backend, tmp_path: Path) -> None:
    """`ursprung run` records into the backend given by URSPRUNG_STORE; `runs` reads it."""
    (tmp_path / "in.txt").write_text("a\n")
    script = "cat in.txt > out.txt; echo \"$1\" >> out.txt"
    ids = []
    for lr in ("0.1", "0.2"):
        out = subprocess.run([URSPRUNG, "run", "--pipeline", "tiny", "--id-file", "id", "--",
                              "sh", "-c", script, "sh", f"--lr={lr}"], cwd=tmp_path,
                             env=backend.env(), capture_output=True, timeout=120)
        assert out.returncode == 0, out.stderr.decode()
        ids.append((tmp_path / "id").read_text().strip())
    listed = json.loads(subprocess.run([URSPRUNG, "runs", "list", "--json"], env=backend.env(),
                                       capture_output=True, check=True).stdout)
    assert sorted(r["id"] for r in listed) == sorted(ids)
    result = json.loads(subprocess.run([URSPRUNG, "runs", "compare", *ids, "--json"],
                                       env=backend.env(), capture_output=True,
                                       check=True).stdout)
    assert {e["name"] for e in result["params"]["changed"]} == {"lr"}
    assert [e["name"] for e in result["outputs"]["changed"]] == ["out.txt"]
    assert [e["name"] for e in result["inputs"]["same"]] == ["in.txt"]


def test_dump_of_one_import_is_equal_on_both_backends(falkordb_backend: Backend,
                                                      neo4j_backend: Backend) -> None:
    dumps = []
    for backend in (falkordb_backend, neo4j_backend):
        import_file(backend.store, DATA / "pipeline.audit.log", host=HOST)
        import_two_runs(backend.store)
        dumps.append(dump(backend.store))
    (fnodes, fedges), (nnodes, nedges) = dumps
    assert len(fnodes) > 300 and len(fedges) > 1000
    assert fnodes == nnodes
    assert fedges == nedges


def _write_batches(store: GraphStore, batches: list[list]) -> None:
    from ursprung_graph.ingest.upserts import Batch

    for events in batches:
        batch = Batch()
        for ev in events:
            batch.add(ev)
        store.write(batch.statements())


def test_a_file_of_many_edges_in_one_batch_is_one_node_with_the_batch_span(
        backend: Backend) -> None:
    """Edges from processes carry their file (ingest/upserts.FILE_EDGE_TYPES): a file
    written and read by two processes in one batch, and renamed, is one node whose span
    is that of all its events, exactly as when each event is written on its own."""
    from tests.events import S, Script

    s = Script()
    p1, p2 = s.proc(10, argv=["/bin/a"]), s.proc(11, argv=["/bin/b"])
    s.write(3, p1, "/w/x")
    s.read(5, p2, "/w/x")
    s.read(7, p1, "/w/x")
    s.write(8, p2, "/w/y")
    s.rename(9, p2, "/w/y", "/w/z")
    s.read(12, p2, "/w/x")
    store = backend.store
    _write_batches(store, [s.events[:-1], s.events[-1:]])
    together = dump(store)
    files = store.read(Cypher("MATCH (f:File) RETURN f.path AS path, f.first AS first, "
                              "f.last AS last ORDER BY path"))
    assert files == [{"path": "/w/x", "first": 3 * S, "last": 12 * S},
                     {"path": "/w/y", "first": 8 * S, "last": 9 * S},
                     {"path": "/w/z", "first": 9 * S, "last": 9 * S}]
    edges = store.read(Cypher("MATCH (p:Process)-[e]->(f:File {path: '/w/x'}) "
                              "RETURN p.pid AS pid, type(e) AS t, e.first AS first, "
                              "e.last AS last ORDER BY pid, t"))
    assert edges == [{"pid": 10, "t": "READ", "first": 7 * S, "last": 7 * S},
                     {"pid": 10, "t": "WROTE", "first": 3 * S, "last": 3 * S},
                     {"pid": 11, "t": "READ", "first": 5 * S, "last": 12 * S}]
    store.clear()
    store.ensure_schema()
    _write_batches(store, [[ev] for ev in reversed(s.events)])  # one by one, backwards
    assert dump(store) == together
