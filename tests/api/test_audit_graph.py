"""Every query on a graph imported from a recorded audit log (tests/data), through a real
GraphQL client over HTTP, against the CLI's answers to the same questions."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runs.helpers import ursprung
from ursprung_graph.config import Settings
from ursprung_graph.pipeline.define import define_runs
from ursprung_graph.pipeline.importer import import_file
from ursprung_graph.query.classify import Classifier
from ursprung_graph.query.search import search
from ursprung_graph.query.types import FileNode
from ursprung_graph.store import embedded_server
from ursprung_graph.store.falkordb import FalkorDBStore

from .conftest import PATIENT, Api, serving
from .queries import LINEAGE, api_edges, api_nodes, cli_edges, cli_nodes

DATA = Path(__file__).resolve().parents[1] / "data"
WORK = "/tmp/ursprung-fixture"
OUTPUT = f"{WORK}/final/result.txt"
HOST = "rec"
RUNS_HOST = "recorder"


@pytest.fixture(scope="module")
def graph(store_home: Path) -> Iterator[tuple[Settings, FalkorDBStore]]:
    """One graph for the module: pipeline.audit.log (host rec) and two_runs.audit.log (host
    recorder, its two runs defined as pipeline train)."""
    settings = Settings(home=store_home, store_url=None, graph=f"api_audit_{os.getpid()}")
    store = FalkorDBStore(unix_socket=str(embedded_server(settings).socket),
                          graph=settings.graph)
    store.ensure_schema()
    import_file(store, DATA / "pipeline.audit.log", host=HOST)
    import_file(store, DATA / "two_runs.audit.log", host=RUNS_HOST)
    define_runs(store, "train", r"python3(\.[0-9]+)? .*bin/train\.py --lr", host=RUNS_HOST)
    yield settings, store
    store.clear()
    store.close()


@pytest.fixture(scope="module")
def api(graph) -> Iterator[Api]:
    with serving(graph[1], limits=PATIENT) as running:
        yield running


def cli_json(settings: Settings, *args: str):
    out = ursprung(settings, *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("direction", ["up", "down"])
def test_lineage_is_the_clis(graph, api, direction):
    settings, _ = graph
    cli = cli_json(settings, "lineage", OUTPUT, "--host", HOST, "--direction", direction,
                   "--depth", "10")
    got = api.query(LINEAGE, path=OUTPUT, host=HOST, direction=direction.upper() + "STREAM",
                    depth=10, includeSystem=True)["lineage"]
    assert got["rootKey"] == cli["root"] and got["root"]["path"] == OUTPUT
    assert api_nodes(got) == cli_nodes(cli)
    assert api_edges(got) == cli_edges(cli)
    assert len(got["nodes"]) > (10 if direction == "up" else 2)

    # without the software environment: the CLI's data files, no system file at all
    rule = Classifier()
    bare = api.query(LINEAGE, path=OUTPUT, host=HOST, direction=direction.upper() + "STREAM",
                     depth=10, includeSystem=False)["lineage"]
    files = {n["path"] for n in bare["nodes"] if n["__typename"] == "File"}
    assert not [p for p in files if rule.environment(p)]
    cli_files = {n["path"] for n in cli["nodes"] if n["kind"] == "file"
                 and not rule.environment(n["path"])}
    assert files == cli_files
    assert set(api_nodes(bare)) <= set(api_nodes(got))


def test_lineage_as_of_is_the_clis(graph, api):
    settings, store = graph
    full = cli_json(settings, "lineage", OUTPUT, "--host", HOST)
    writes = sorted(e["first"] for e in full["edges"] if e["kind"] == "WROTE")
    middle = writes[len(writes) // 2]
    cli = cli_json(settings, "lineage", OUTPUT, "--host", HOST, "--as-of", str(middle),
                   "--depth", "10")
    got = api.query(LINEAGE, path=OUTPUT, host=HOST, direction="UPSTREAM", depth=10,
                    asOf=str(middle), includeSystem=True)["lineage"]
    assert api_nodes(got) == cli_nodes(cli)
    assert api_edges(got) == cli_edges(cli)
    assert len(got["nodes"]) < len(full["nodes"])


def test_kinds_and_node_cap(api):
    procs = api.query(LINEAGE, path=OUTPUT, host=HOST, direction="UPSTREAM",
                      includeSystem=True, kinds=["PROCESS"])["lineage"]
    assert {n["__typename"] for n in procs["nodes"]} == {"Process", "File"}  # + the root
    assert [n for n in procs["nodes"] if n["__typename"] == "File"] == [
        n for n in procs["nodes"] if n["key"] == procs["rootKey"]]
    capped = api.query(LINEAGE, path=OUTPUT, host=HOST, direction="UPSTREAM",
                       includeSystem=True, maxNodes=5)["lineage"]
    assert capped["truncated"] is True and "node limit 5" in capped["reason"]
    assert len(capped["nodes"]) == 5
    shallow = api.query(LINEAGE, path=OUTPUT, host=HOST, direction="UPSTREAM",
                        includeSystem=True, depth=1)["lineage"]
    assert shallow["truncated"] is True and "depth limit 1" in shallow["reason"]
    whole = api.query(LINEAGE, path=OUTPUT, host=HOST, direction="UPSTREAM",
                      includeSystem=True, depth=50)["lineage"]
    assert whole["truncated"] is False and whole["reason"] is None


def test_file_process_node_and_edges_batched(graph, api):
    got = api.query("""query ($p: String!, $h: String) {
      file(path: $p, host: $h) { id key path host
        lineage(depth: 2, includeSystem: true) { edges { kind
          sourceNode { __typename ... on Process { id key cmdline } ... on File { path } }
          targetNode { __typename ... on File { path } } } } } }""", p=OUTPUT, h=HOST)
    f = got["file"]
    assert f["path"] == OUTPUT and f["host"] == HOST
    assert base64.b64decode(f["id"]).decode() == f"File:{f['key']}"
    writers = [e["sourceNode"] for e in f["lineage"]["edges"] if e["kind"] == "WROTE"]
    assert writers and all(w["__typename"] == "Process" for w in writers)
    proc = writers[0]
    again = api.query("""query ($id: ID!, $key: ID!) {
      node(id: $id) { id ... on Process { key cmdline } }
      process(id: $key) { id pid host cmdline } }""", id=proc["id"], key=proc["key"])
    assert again["node"] == {"id": proc["id"], "key": proc["key"], "cmdline": proc["cmdline"]}
    assert again["process"]["id"] == proc["id"] and again["process"]["host"] == HOST
    none = api.query('{ file(path: "/no/such/file") { id } }')
    assert none == {"file": None}
    hosts: dict[str, set[str]] = {}
    for hit in search(graph[1], "/", kinds=["file"], first=100_000).hits:
        assert isinstance(hit.node, FileNode)
        hosts.setdefault(hit.node.path or "", set()).add(hit.node.host or "")
    shared = next(p for p, h in sorted(hosts.items()) if len(h) == 2)
    ambiguous = api.errors('query ($p: String!) { file(path: $p) { id } }', p=shared)
    assert ambiguous[0]["extensions"]["code"] == "AMBIGUOUS"


def test_search(api):
    page = api.query("""{ search(text: "final/result", kinds: [FILE], first: 5) {
        edges { cursor node { __typename ... on File { path host } } }
        pageInfo { hasNextPage endCursor } } }""")["search"]
    assert {(e["node"]["path"], e["node"]["host"]) for e in page["edges"]} == {
        (OUTPUT, HOST), (OUTPUT, RUNS_HOST)} or all(
        e["node"]["path"].endswith("final/result.txt") for e in page["edges"])
    glob = api.query("""{ search(text: "WORK/raw/*.txt", kinds: [FILE], first: 100) {
        edges { node { ... on File { path } } } } }""".replace("WORK", WORK))["search"]
    paths = {e["node"]["path"] for e in glob["edges"]}
    assert f"{WORK}/raw/a.txt" in paths and all(
        p.startswith(f"{WORK}/raw/") and p.endswith(".txt") for p in paths)
    # pages continue where they stopped, without repeats
    first = api.query('{ search(text: "combine", first: 1) { edges { cursor } '
                      'pageInfo { hasNextPage endCursor } } }')["search"]
    assert first["pageInfo"]["hasNextPage"]
    second = api.query('query ($a: String) { search(text: "combine", first: 1, after: $a) '
                       '{ edges { cursor } } }', a=first["pageInfo"]["endCursor"])["search"]
    assert second["edges"][0]["cursor"] != first["edges"][0]["cursor"]
    procs = api.query('{ search(text: "combine.py", kinds: [PROCESS]) { edges { node { '
                      '... on Process { cmdline } } } } }')["search"]["edges"]
    assert procs and all("combine.py" in e["node"]["cmdline"] for e in procs)
    runs = api.query('{ search(text: "lr=0.1", kinds: [RUN]) { edges { node { '
                     '... on Run { runId params { name value } } } } } }')["search"]["edges"]
    assert len(runs) == 1
    assert {"name": "lr", "value": "0.1"} in runs[0]["node"]["params"]


def test_runs_run_pipelines_and_compare_are_the_clis(graph, api):
    settings, _ = graph
    cli_runs = cli_json(settings, "runs", "list")
    got = api.query("""{ runs(pipeline: "train") { totalCount edges { cursor node {
        runId pipeline command start end exitCode status } } pageInfo { hasNextPage } } }""")
    runs = got["runs"]
    assert runs["totalCount"] == 2 == len(cli_runs)
    assert [e["node"]["runId"] for e in runs["edges"]] == [r["id"] for r in cli_runs]
    assert [int(e["node"]["start"]) for e in runs["edges"]] == [r["start"] for r in cli_runs]
    a, b = (r["id"] for r in cli_runs)
    page = api.query('{ runs(first: 1) { edges { node { runId } } '
                     'pageInfo { hasNextPage endCursor } } }')["runs"]
    assert page["edges"][0]["node"]["runId"] == a and page["pageInfo"]["hasNextPage"]
    rest = api.query('query ($c: String) { runs(first: 1, after: $c) { edges { node { runId '
                     '} } pageInfo { hasNextPage } } }', c=page["pageInfo"]["endCursor"])
    assert [e["node"]["runId"] for e in rest["runs"]["edges"]] == [b]
    assert not rest["runs"]["pageInfo"]["hasNextPage"]
    by_param = api.query('{ runs(param: "lr=0.2") { edges { node { runId } } } }')
    assert [e["node"]["runId"] for e in by_param["runs"]["edges"]] == [b]
    by_time = api.query('query ($t: Time) { runs(since: $t) { totalCount } }',
                        t=str(cli_runs[1]["start"]))
    assert by_time["runs"]["totalCount"] == 1
    assert api.query('{ runs(status: FAILED) { totalCount } }')["runs"]["totalCount"] == len(
        [r for r in cli_runs if r["exit_code"] not in (0, None)])

    facts = cli_json(settings, "runs", "show", b)
    run = api.query("""query ($id: String!) { run(id: $id) { runId params { name value }
        inputs { path relative priorWrite } outputs { path } intermediates { path }
        programs { path } environmentFiles processes { pid command }
        lineage { truncated nodes { __typename ... on File { path } ... on Process { pid } } }
    } }""",
                    id=b[:10])["run"]
    assert run["runId"] == b
    assert {p["name"]: p["value"] for p in run["params"]} == facts["params"]
    for section in ("inputs", "outputs", "intermediates", "programs"):
        assert [f["path"] for f in run[section]] == [f["path"] for f in facts[section]]
    assert [int(f["priorWrite"]) if f["priorWrite"] else f["priorWrite"]
            for f in run["inputs"]] == [f.get("prior_write") for f in facts["inputs"]]
    assert run["environmentFiles"] == facts["environment_files"]
    assert [p["pid"] for p in run["processes"]] == [p["pid"] for p in facts["processes"]]
    lineage_files = {n["path"] for n in run["lineage"]["nodes"] if n["__typename"] == "File"}
    assert {f["path"] for f in facts["outputs"]} <= lineage_files
    assert {f["path"] for f in facts["inputs"]} & lineage_files  # (audit data has no
    # pipe reads here: sort's output reaches train.py unseen, as in `ursprung lineage`)
    assert {n["pid"] for n in run["lineage"]["nodes"] if n["__typename"] == "Process"} <= {
        p["pid"] for p in facts["processes"]}  # through the run's own processes only
    assert api.query('{ run(id: "no-such-run") { runId } }') == {"run": None}

    pipes = api.query("{ pipelines { name runCount lastRun { runId } } }")["pipelines"]
    assert pipes == [{"name": "train", "runCount": 2, "lastRun": {"runId": b}}]

    cli = cli_json(settings, "runs", "compare", a, b)
    cmp = api.query("""query ($a: String!, $b: String!) { compareRuns(a: $a, b: $b) {
        differs a { runId } b { runId }
        params { same { name a b } changed { name a b } onlyA { name value }
                 onlyB { name value } }
        inputs { same { name basis } changed { name basis a { path priorWrite } b { path } }
                 onlyA { name } onlyB { name } }
        outputs { changed { name } same { name } onlyA { name } onlyB { name } }
        programs { same { name } changed { name } }
        environment { same { name } changed { name } }
        metrics { changed { name } } exit { same { name a b } changed { name } }
        duration { same { name } changed { name } }
        explanations { truncated items { output facts { section name change aDistance
                                                         bDistance aVia bVia } } } } }""",
                    a=a, b=b)["compareRuns"]
    assert (cmp["a"]["runId"], cmp["b"]["runId"]) == (a, b)
    for section in ("params", "inputs", "outputs", "programs", "environment", "metrics",
                    "exit", "duration"):
        for part in ("same", "changed"):
            if part in cmp[section]:
                assert [e["name"] for e in cmp[section][part]] == [
                    e["name"] for e in cli[section][part]], (section, part)
    assert [(e["name"], e["a"], e["b"]) for e in cmp["params"]["changed"]] == [
        (e["name"], str(e["a"]), str(e["b"])) for e in cli["params"]["changed"]]
    # each changed output is explained by changed facts upstream of it, nearest first
    changed_outputs = [e["name"] for e in cli["outputs"]["changed"]]
    assert [i["output"] for i in cmp["explanations"]["items"]] == changed_outputs
    for item in cmp["explanations"]["items"]:
        near = [min(d for d in (f["aDistance"], f["bDistance"]) if d is not None)
                for f in item["facts"]]
        assert near == sorted(near)
