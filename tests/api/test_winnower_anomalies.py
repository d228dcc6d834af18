"""`Query.anomalies` over HTTP (gql): the anomalies of a Winnower model kept in the store,
equal to what `ursprung winnower anomalies --json` prints for the same store; the model
over a pipeline's runs; arguments checked against the limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.api.conftest import PATIENT
from tests.runs.helpers import ursprung
from ursprung_graph.collectors.auditd.source import normalize_file
from ursprung_graph.schema.event import Event
from ursprung_graph.winnower import persist
from ursprung_graph.winnower.abstraction import Abstractor
from ursprung_graph.winnower.induction import induce
from ursprung_graph.winnower.model import merge
from ursprung_graph.winnower.pgraph import graph_of_events

DATA = Path(__file__).resolve().parents[1] / "data"

#: ``first`` is a literal: as a variable the cost rule counts the largest page (100).
QUERY = """
query A($model: String, $rare: Float, $since: Int) {
  anomalies(model: $model, rare: $rare, since: $since, first: FIRST) {
    model origins transitions totalCount
    anomalies { kind reasons source rel target text first ids
                origins { origin count } examples { origin ts text } }
  }
}"""


def _graph(log: str) -> Any:
    return graph_of_events(e for e in normalize_file(str(DATA / log), "n")
                           if isinstance(e, Event))


def query(first: int = 50) -> str:
    return QUERY.replace("FIRST", str(first))


def _store_cluster(store) -> None:
    """Three replicas ran the same pipeline (epoch 0); a fourth another one (epoch 1)."""
    same, other = _graph("pipeline.audit.log"), _graph("two_runs.audit.log")
    ab = Abstractor()
    models = [induce(same, ab, k=1, origin=n, epoch=0).model for n in ("r1", "r2", "r3")]
    models.append(induce(other, ab, k=1, origin="r4", epoch=1).model)
    persist.save(store, "cluster", merge(*models), epoch=1)


def _as_cli(report: dict[str, Any]) -> dict[str, Any]:
    """The API's answer in the CLI's JSON shape (ids and times are strings in GraphQL)."""
    out = []
    for a in report["anomalies"]:
        out.append({
            "kind": a["kind"], "reasons": a["reasons"], "source": a["source"],
            "origins": {o["origin"]: o["count"] for o in a["origins"]},
            "first": int(a["first"]), "rel": a["rel"], "target": a["target"],
            "examples": [{"origin": e["origin"], "ts": int(e["ts"]), "text": e["text"]}
                         for e in a["examples"]],
            "ids": [int(i) for i in a["ids"]]})
    return {"origins": report["origins"], "transitions": report["transitions"],
            "anomalies": out}


def _cli(settings, *args: str) -> dict[str, Any]:
    out = ursprung(settings, "winnower", "anomalies", "--json", *args, check=True)
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def test_anomalies_equal_the_cli(store, settings, serve):
    _store_cluster(store)
    with serve(limits=PATIENT) as api:
        got = api.query(query())["anomalies"]
        assert got["model"] == "cluster"
        assert got["origins"] == ["r1", "r2", "r3", "r4"]
        cli = _cli(settings)
        assert cli["anomalies"], "the odd replica's behaviour must be reported"
        assert got["totalCount"] == len(cli["anomalies"]) > 50
        mine = _as_cli(got)
        assert mine["origins"] == cli["origins"] and mine["transitions"] == cli["transitions"]
        assert mine["anomalies"] == cli["anomalies"][:50]  # the same, in the same order
        # the odd one is the one reported, with concrete instances of its own
        assert all(a["origins"] == [{"origin": "r4", "count": a["origins"][0]["count"]}]
                   for a in got["anomalies"])
        assert all(e["origin"] == "r4" for a in got["anomalies"] for e in a["examples"])
        assert any(a["examples"] for a in got["anomalies"])

        # new since epoch 1 (what r4 brought), and a page of two
        new = api.query(query(2), since=1, rare=0.0)["anomalies"]
        cli_new = _cli(settings, "--since", "1", "--rare", "0")
        assert new["totalCount"] == len(cli_new["anomalies"]) > 2
        assert _as_cli(new)["anomalies"] == cli_new["anomalies"][:2]
        assert all("new" in a["reasons"] and a["first"] == "1" for a in new["anomalies"])
        # a larger fraction: what two of four do is rare too
        wide = api.query(query(1), rare=0.5)["anomalies"]
        assert wide["totalCount"] == len(_cli(settings, "--rare", "0.5")["anomalies"])


def test_arguments_are_checked(store, serve):
    _store_cluster(store)
    with serve() as api:
        errors = api.errors(query(0))
        assert "first must be between 1 and 100" in errors[0]["message"]
        errors = api.errors(query(101))  # refused by the cost rule before it runs
        assert errors[0]["extensions"]["code"] == "COST_LIMIT"
        errors = api.errors(query(), rare=1.5)
        assert "rare must be between 0 and 1" in errors[0]["message"]
        errors = api.errors(query(), model="nope")
        assert errors[0]["extensions"]["code"] == "NOT_FOUND"
        assert "no Winnower model 'nope'" in errors[0]["message"]
        assert "cluster" in errors[0]["message"]  # names the stored ones
        errors = api.errors('{ anomalies(pipeline: "nope") { totalCount } }')
        assert errors[0]["extensions"]["code"] == "NOT_FOUND"
        errors = api.errors('{ anomalies(model: "cluster", pipeline: "p") { totalCount } }')
        assert "not both" in errors[0]["message"]


def test_anomalies_of_a_pipelines_runs(store, settings, serve):
    """Runs as replicas: the second of two runs defined on audit data also read
    raw/extra.csv; `anomalies(pipeline:)` says so, as `winnower runs --json` does."""
    from ursprung_graph.pipeline.define import define_runs
    from ursprung_graph.pipeline.importer import import_file

    import_file(store, DATA / "two_runs.audit.log", host="recorder")
    ids = define_runs(store, "train", r"python3(\.[0-9]+)? .*bin/train\.py --lr",
                      host="recorder")
    with serve(limits=PATIENT) as api:
        got = api.query('{ anomalies(pipeline: "train", first: 90) { model origins '
                        'totalCount anomalies { source rel target origins { origin count } '
                        'examples { origin text } } } }')["anomalies"]
    assert got["model"] == "runs:train" and got["origins"] == sorted(ids)
    runs = json.loads(ursprung(settings, "winnower", "runs", "--pipeline", "train", "--json",
                               check=True).stdout)
    # every run here is its own deviation's only origin: each fact is one anomaly
    facts = [(f["source"], f.get("rel", ""), f.get("target", ""), tuple(f["origins"]))
             for d in runs["deviations"] for f in d["facts"]]
    assert got["totalCount"] == len(facts) > 90
    page = [(a["source"], a["rel"], a["target"], tuple(o["origin"] for o in a["origins"]))
            for a in got["anomalies"]]
    assert len(page) == 90 and set(page) <= set(facts)
    extra = [f for f in facts if f[1] == "READ" and f[2].endswith("/extra.csv")]
    assert extra and all(f[3] == (ids[1],) for f in extra)
