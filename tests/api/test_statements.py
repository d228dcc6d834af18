"""No N+1: the number of store statements a nested query costs does not grow with the number
of items it lists. The real store answers; a thin wrapper only counts its reads."""

from __future__ import annotations

from typing import Any

import pytest

from tests.events import Script
from ursprung_graph.ingest.upserts import Batch
from ursprung_graph.pipeline.define import define_runs
from ursprung_graph.query.lineage import find_file, walk
from ursprung_graph.store.falkordb import FalkorDBStore

from .conftest import PATIENT, serving

HOST = "h1"

RUNS = """query { runs(first: 10) { totalCount edges { node {
  runId params { name value } inputs { path priorWrite } outputs { path }
  intermediates { path } programs { path } processes { pid command } environmentFiles } } } }"""

LINEAGE = """query ($path: String!, $d: Direction!) {
  lineage(path: $path, host: "h1", direction: $d, depth: 50, includeSystem: true) {
    truncated nodes { __typename ... on Process { cmdline } ... on File { path } }
    edges { kind sourceNode { __typename ... on Process { pid } ... on File { path } }
            targetNode { __typename ... on Process { pid } ... on File { path } } } } }"""


class CountingStore:
    """The real store, with its reads counted (the statements, not their rows)."""

    def __init__(self, store: FalkorDBStore) -> None:
        self.store = store
        self.reads = 0

    def read(self, statement: str, params: dict[str, Any] | None = None, *,
             timeout: float | None = None) -> list[dict[str, Any]]:
        self.reads += 1
        return self.store.read(statement, params, timeout=timeout)

    def write(self, statements: list[Any]) -> None:
        self.store.write(statements)

    def ensure_schema(self) -> None:
        self.store.ensure_schema()

    def clear(self) -> None:
        self.store.clear()

    def close(self) -> None:
        pass


def pipeline(runs: int, steps: int) -> Script:
    """``runs`` runs of a shell script whose ``steps`` steps each read the previous step's
    output (the first: a raw input and a library), write a temp file, rename it into place
    and write a log; a chain across runs, as a pipeline's runs feed each other."""
    s = Script(HOST)
    t = 1
    for r in range(runs):
        shell = s.proc(1000 + r * 100, t, ["sh", "run.sh", "--lr", str(r)])
        s.exec(t, shell, "/bin/sh")
        prev = "/data/raw.csv" if r == 0 else f"/w/run{r - 1}/out{steps - 1}.txt"
        for i in range(steps):
            t += 1
            p = s.proc(1000 + r * 100 + i + 1, t, ["python3", f"step{i}.py", "--lr", str(r)])
            s.fork(t, shell, p)
            s.exec(t, p, "/usr/bin/python3")
            s.read(t, p, "/usr/lib/libz.so.1")
            s.read(t, p, prev)
            s.write(t, p, f"/w/run{r}/tmp{i}")
            s.rename(t, p, f"/w/run{r}/tmp{i}", f"/w/run{r}/out{i}.txt")
            s.write(t, p, f"/w/run{r}/log{i}.txt")
            s.exit(t, p)
            prev = f"/w/run{r}/out{i}.txt"
        s.exit(t, shell)
        t += 1
    return s


def counting_graph(store: FalkorDBStore, runs: int, steps: int) -> CountingStore:
    batch = Batch()
    for ev in pipeline(runs, steps).events:
        batch.add(ev)
    store.write(batch.statements())
    define_runs(store, "p", r"^sh run\.sh", host=HOST)
    return CountingStore(store)


def statements(store: FalkorDBStore, runs: int, steps: int, query: str,
               **variables: Any) -> tuple[int, dict[str, Any]]:
    counted = counting_graph(store, runs, steps)
    with serving(counted, limits=PATIENT) as api:
        before = counted.reads
        answer = api.query(query, **variables)
        return counted.reads - before, answer


@pytest.mark.parametrize("small, large", [(2, 8)])
def test_runs_with_their_facts_cost_the_same_statements_for_more_runs(store, small, large):
    few, a = statements(store, small, 3, RUNS)
    store.clear()
    many, b = statements(store, large, 3, RUNS)
    assert len(a["runs"]["edges"]) == small and len(b["runs"]["edges"]) == large
    node = b["runs"]["edges"][-1]["node"]
    assert len(node["processes"]) == 4 and len(node["outputs"]) == 6
    assert many == few, f"{few} statements for {small} runs, {many} for {large}"


def test_lineage_node_details_add_no_statements(store):
    """Upstream of a run's last output: the API finds the file (one statement), then walks
    (one statement per level, one for all the nodes); the details of every node and of
    both ends of every edge add none, however many there are."""
    sizes, extra = {}, {}
    for runs in (1, 4):
        counted = counting_graph(store, runs, 3)
        last = f"/w/run{runs - 1}/out2.txt"
        found = walk(counted, find_file(store, last, HOST), direction="up", depth=50)
        walked = counted.reads
        assert not found.truncated
        levels = max(found.distance.values()) + 1  # the last level finds nothing new
        extra[runs] = walked - levels - 1  # after the nodes: the capture gaps (query/gaps)
        assert 0 <= extra[runs] <= 2
        with serving(counted, limits=PATIENT) as api:
            before = counted.reads
            answer = api.query(LINEAGE, path=last, d="UPSTREAM")["lineage"]
            asked = counted.reads - before
        assert all(e["sourceNode"] and e["targetNode"] for e in answer["edges"])
        assert asked == 1 + walked, (runs, asked, walked)
        sizes[runs] = len(answer["nodes"]), len(answer["edges"])
        store.clear()
    assert sizes[4][0] > 3 * sizes[1][0] and sizes[4][1] > 3 * sizes[1][1]
    assert extra[4] == extra[1]
