"""The example pipeline traced twice by `ursprung run` (a changed raw input and a changed
learning rate, as examples/demo.sh), plus a step whose output changes by itself (it writes
the time): lineage, runs and compareRuns through the API against the CLI, and the
explanations of each changed output."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator

import pytest

from tests.runs.helpers import EXAMPLE, ursprung

from .conftest import PATIENT, serving
from .queries import LINEAGE, api_edges, api_nodes, cli_edges, cli_nodes

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")

#: The example pipeline, then a step that depends on nothing that changes but the clock.
WRAPPER = """set -eu
sh {run} --lr "$2" --python {python}
{python} -c "import time; open('out/stamp.txt', 'w').write(str(time.time_ns()))"
"""

EXPLAIN = """query ($a: String!, $b: String!) { compareRuns(a: $a, b: $b) {
  outputs { changed { name } same { name } }
  explanations { truncated reason items { output facts {
    section name change aDistance bDistance aVia bVia } } } } }"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, store_home) -> Iterator[tuple]:
    from ursprung_graph.config import Settings
    from ursprung_graph.store import embedded_server
    from ursprung_graph.store.falkordb import FalkorDBStore

    settings = Settings(home=store_home, store_url=None, graph="api_traced")
    store = FalkorDBStore(unix_socket=str(embedded_server(settings).socket),
                          graph=settings.graph)
    store.clear()
    store.ensure_schema()
    work = tmp_path_factory.mktemp("traced")
    shutil.copytree(EXAMPLE / "data", work / "data")
    script = work / "pipeline.sh"
    script.write_text(WRAPPER.format(run=EXAMPLE / "run.sh", python=sys.executable))
    ids = []
    for lr in ("0.01", "0.02"):
        if lr == "0.02":
            with open(work / "data" / "raw.csv", "a", encoding="utf-8") as fh:
                fh.write("6,12.2\n")
        out = ursprung(settings, "run", "--pipeline", "demo", "--id-file", str(work / "id"),
                       "--", "sh", str(script), "--lr", lr, cwd=work)
        assert out.returncode == 0, out.stderr
        ids.append((work / "id").read_text().strip())
    with serving(store, limits=PATIENT) as api:
        yield settings, api, work, ids
    store.clear()
    store.close()


def test_explanations_name_exactly_the_changed_facts_upstream(runs):
    settings, api, work, (a, b) = runs
    got = api.query(EXPLAIN, a=a, b=b)["compareRuns"]
    assert {e["name"] for e in got["outputs"]["changed"]} == {
        "work/model.json", "out/report.txt", "out/stamp.txt"}
    why = {i["output"]: i["facts"] for i in got["explanations"]["items"]}
    assert got["explanations"]["truncated"] is False
    facts = {out: [(f["section"], f["name"]) for f in fs] for out, fs in why.items()}
    # the model: train.py got lr (it is nearer: train wrote the model) and read the pipe
    # from prepare.py, which read raw.csv
    assert facts["work/model.json"] == [("params", "lr"), ("inputs", "data/raw.csv")]
    assert facts["out/report.txt"] == [("params", "lr"), ("inputs", "data/raw.csv")]
    # the stamp's upstream changed nothing: it is explained by nothing
    assert facts["out/stamp.txt"] == []
    lr = why["work/model.json"][0]
    assert "train.py" in lr["bVia"] and "--lr 0.02" in lr["bVia"]
    assert "train.py" in lr["aVia"] and "--lr 0.01" in lr["aVia"]
    raw = why["work/model.json"][1]
    assert "prepare.py" in raw["bVia"]
    assert lr["bDistance"] < raw["bDistance"]
    assert why["out/report.txt"][0]["bDistance"] > lr["bDistance"]  # one step further

    # the CLI says the same
    out = ursprung(settings, "runs", "compare", a, b, "--explain", "--json", check=True)
    cli = json.loads(out.stdout)["explanations"]
    assert {i["output"]: [(f["section"], f["name"], f["b_distance"]) for f in i["facts"]]
            for i in cli["items"]} == {
        o: [(f["section"], f["name"], f["bDistance"]) for f in fs] for o, fs in why.items()}
    text = ursprung(settings, "runs", "compare", a, b, "--explain", check=True).stdout.decode()
    assert "out/stamp.txt: nothing upstream of it changed" in text
    assert "parameter lr changed" in text and "input data/raw.csv changed" in text


def test_lineage_and_runs_of_traced_runs_are_the_clis(runs):
    settings, api, work, (a, b) = runs
    report = str(work / "out" / "report.txt")
    cli = json.loads(ursprung(settings, "lineage", report, "--json", "--depth", "10",
                              check=True).stdout)
    got = api.query(LINEAGE, path=report, direction="UPSTREAM", depth=10,
                    includeSystem=True)["lineage"]
    assert api_nodes(got) == cli_nodes(cli) and api_edges(got) == cli_edges(cli)
    assert any(n["__typename"] == "Pipe" for n in got["nodes"])  # prepare | train
    bare = api.query(LINEAGE, path=report, direction="UPSTREAM", depth=10,
                     includeSystem=False, kinds=["FILE"])["lineage"]
    assert {n["path"] for n in bare["nodes"]} >= {
        str(work / p) for p in ("data/raw.csv", "data/test.csv", "work/model.json",
                                "work/model.tmp", "out/report.txt")}
    # which runs used this input?
    used = api.query('query ($p: String!) { file(path: $p) { usedBy { runId } } }',
                     p=str(work / "data" / "raw.csv"))["file"]["usedBy"]
    assert [r["runId"] for r in used] == [a, b]

    cli_cmp = json.loads(ursprung(settings, "runs", "compare", a, b, "--json",
                                  check=True).stdout)
    cmp = api.query("""query ($a: String!, $b: String!) { compareRuns(a: $a, b: $b) {
        params { changed { name a b } } inputs { changed { name basis a { sha256 }
        b { sha256 } } same { name } } programs { same { name } }
        exit { same { name a b } } } }""", a=a, b=b)["compareRuns"]
    assert [(e["name"], e["a"], e["b"]) for e in cmp["params"]["changed"]] == [
        (e["name"], e["a"], e["b"]) for e in cli_cmp["params"]["changed"]]
    assert [(e["name"], e["a"]["sha256"], e["b"]["sha256"]) for e in cmp["inputs"]["changed"]
            ] == [(e["name"], e["a"]["sha256"], e["b"]["sha256"])
                  for e in cli_cmp["inputs"]["changed"]]
    assert [e["name"] for e in cmp["programs"]["same"]] == [
        e["name"] for e in cli_cmp["programs"]["same"]]
    facts = json.loads(ursprung(settings, "runs", "show", b, "--json", check=True).stdout)
    run = api.query('query ($id: String!) { run(id: $id) { outputs { relative sha256 } '
                    'environment { name value } } }', id=b)["run"]
    assert [(f["relative"], f["sha256"]) for f in run["outputs"]] == [
        (f["rel"], f["sha256"]) for f in facts["outputs"]]
    assert {e["name"]: e["value"] for e in run["environment"]} == facts["environment"]
