"""Hostile input: each gets a clear error with a code, and the graph is unchanged afterwards
(dump comparison)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.graphdump import dump
from ursprung_graph.api.limits import Limits
from ursprung_graph.pipeline.importer import import_file

from .conftest import serving

DATA = Path(__file__).resolve().parents[1] / "data"
OUTPUT = "/tmp/ursprung-fixture/final/result.txt"
INJECTIONS = ["') MATCH (n) DETACH DELETE n //", "\" OR 1=1 //", "x'}) DETACH DELETE n //",
              "`; CREATE (:Evil) //", "$frontier", "\\u0000'\x00"]


@pytest.fixture()
def graph(store):
    import_file(store, DATA / "pipeline.audit.log", host="rec")
    before = dump(store)
    yield store
    assert dump(store) == before  # nothing a request did changed the graph


def codes(response: requests.Response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json()["errors"]]


def post(api, query: str, variables: dict | None = None) -> requests.Response:
    return api.post(json.dumps({"query": query, "variables": variables or {}}))


def test_depth_bombs_alias_floods_fragments_and_huge_pages(graph):
    with serving(graph) as api:
        deep = "{ file(path: \"/x\") { lineage { edges { sourceNode { ... on Process { " \
               "lineage { edges { sourceNode { ... on Process { lineage { edges { " \
               "sourceNode { ... on Process { lineage { nodes { __typename } } } } } } } } } " \
               "} } } } } } }"
        r = post(api, deep)
        assert r.status_code == 200 and codes(r) == ["DEPTH_LIMIT"]
        assert r.json()["data"] is None
        aliases = "{ " + " ".join(f"a{i}: pipelines {{ name }}" for i in range(16)) + " }"
        assert codes(post(api, aliases)) == ["ALIAS_LIMIT"]
        # the same flood hidden in a fragment spread twice
        spread = ("query { ...F ...F } fragment F on Query { "
                  + " ".join(f"b{i}: pipelines {{ name }}" for i in range(8)) + " }")
        assert "ALIAS_LIMIT" in codes(post(api, spread))
        # fragments that double at every level: 2^40 fields if expanded, refused at once
        levels = 40
        frags = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}"
                         for i in range(levels))
        last = f" fragment F{levels} on Query {{ x: pipelines {{ name }} }}"
        bomb = "query { ...F0 } " + frags + last
        r = post(api, bomb)
        assert r.status_code == 200 and "ALIAS_LIMIT" in codes(r) and "COST_LIMIT" in codes(r)
        # deeply nested fragments (each spreads the next inside a selection)
        nested = "query { ...N0 } " + " ".join(
            f"fragment N{i} on Query {{ search(text: \"a\") {{ edges {{ node {{ ... on File "
            f"{{ lineage {{ root {{ ...N{i + 1} }} }} }} }} }} }} }}" for i in range(30))
        assert set(codes(post(api, nested))) & {"DEPTH_LIMIT", "GRAPHQL_VALIDATION_FAILED"}
        cycle = "query { ...C } fragment C on Query { ...D } fragment D on Query { ...C }"
        assert codes(post(api, cycle)) == ["GRAPHQL_VALIDATION_FAILED"]
        # a huge page: refused by cost before it runs, and by the page limit when it is a
        # variable
        r = post(api, "{ search(text: \"a\", first: 1000000) { edges { cursor } } }")
        assert codes(r) == ["COST_LIMIT"]
        r = post(api, "query ($n: Int) { runs(first: $n) { totalCount } }", {"n": 10**6})
        assert codes(r) == ["BAD_USER_INPUT"] and "first must be between 1 and 100" in r.text
        r = post(api, "query ($n: Int) { runs(first: $n) { totalCount } }", {"n": 2**40})
        assert r.json()["errors"] and "Traceback" not in r.text
        # too many tokens
        r = post(api, "{ " + "pipelines { name } " * 700 + "}")
        assert codes(r) == ["TOKEN_LIMIT"]
        # introspection works, and counts
        r = post(api, "{ __schema { types { name fields { name type { name ofType { name "
                      "ofType { name ofType { name } } } } } } } }")
        assert r.status_code == 200 and r.json()["data"]["__schema"]["types"]
        r = post(api, "{ " + " ".join(f"i{i}: __typename" for i in range(20)) + " }")
        assert codes(r) == ["ALIAS_LIMIT"]
        assert codes(post(api, "mutation { x }")) == ["GRAPHQL_VALIDATION_FAILED"]


def test_injection_in_every_string_argument(graph):
    queries = [
        ("query ($s: String!) { file(path: $s) { id } }", "file"),
        ("query ($s: String!) { file(path: \"/x\", host: $s) { id } }", "file"),
        ("query ($s: ID!) { process(id: $s) { id } }", "process"),
        ("query ($s: ID!) { node(id: $s) { id } }", "node"),
        ("query ($s: String!) { search(text: $s) { edges { cursor } } }", "search"),
        ("query ($s: String!) { search(text: \"a\", after: $s) { edges { cursor } } }",
         "search"),
        ("query ($s: String!) { lineage(path: $s) { truncated } }", "lineage"),
        ("query ($s: ID!) { lineage(id: $s) { truncated nodes { __typename } } }", "lineage"),
        ("query ($s: String!) { lineage(path: \"OUT\", host: $s) { truncated } }", "lineage"),
        ("query ($s: Time!) { lineage(path: \"OUT\", host: \"rec\", asOf: $s) { truncated } }",
         "lineage"),
        ("query ($s: String!) { runs(pipeline: $s) { totalCount } }", "runs"),
        ("query ($s: String!) { runs(param: $s) { totalCount } }", "runs"),
        ("query ($s: String!) { runs(after: $s) { totalCount } }", "runs"),
        ("query ($s: Time!) { runs(since: $s) { totalCount } }", "runs"),
        ("query ($s: String!) { run(id: $s) { runId } }", "run"),
        ("query ($s: String!) { compareRuns(a: $s, b: $s) { differs } }", "compareRuns"),
    ]
    with serving(graph) as api:
        for query, field in queries:
            query = query.replace("OUT", OUTPUT)
            for text in INJECTIONS:
                r = post(api, query, {"s": text})
                assert r.status_code in (200, 400), (query, text, r.text)
                body = r.json()
                assert "Traceback" not in r.text and "File \"" not in r.text
                for e in body.get("errors", []):
                    assert e["extensions"]["code"] in (
                        "BAD_USER_INPUT", "NOT_FOUND", "AMBIGUOUS"), (query, text, e)
                    assert e["message"]
                if not body.get("errors"):
                    value = body["data"][field]
                    assert value is None or isinstance(value, dict)
        # the graph still answers as before
        ok = post(api, '{ lineage(path: "OUT", host: "rec") { nodes { __typename } } }'
                  .replace("OUT", OUTPUT))
        assert "errors" not in ok.json() and len(ok.json()["data"]["lineage"]["nodes"]) > 5


def test_malformed_and_oversized_requests(graph):
    with serving(graph, limits=Limits(max_body_bytes=4096)) as api:
        for body in (b"{not json", b"[1, 2", b"\xff\xfe", b"", b'{"query": 5}', b"null"):
            r = api.post(body)
            assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
            assert r.json()["errors"][0]["extensions"]["code"] in (
                "BAD_REQUEST", "GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED")
        big = json.dumps({"query": "{ pipelines { name } }", "pad": "x" * 10_000})
        r = api.post(big)
        assert r.status_code == 413 and codes(r) == ["PAYLOAD_TOO_LARGE"]

        def chunks():
            for _ in range(10):
                yield b" " * 1000
        r = requests.post(f"{api.url}/graphql", data=chunks(),
                          headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 413
        r = post(api, "{ pipelines { name ")
        assert codes(r) == ["GRAPHQL_PARSE_FAILED"]
        r = requests.get(f"{api.url}/healthz", timeout=10)
        assert r.status_code == 200 and r.json()["store_ok"] is True


def test_token_on_a_non_loopback_bind(graph):
    token = "s3cret-token-of-the-test-0123456789"
    with serving(graph, host="0.0.0.0", token=token) as api:
        query = json.dumps({"query": "{ pipelines { name } }"})
        url = f"{api.url}/graphql"
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": f"Bearer {token}x"}, {"Authorization": token},
                        {"Authorization": "Basic " + token}):
            r = requests.post(url, data=query, timeout=10,
                              headers={"Content-Type": "application/json", **headers})
            assert r.status_code == 401 and codes(r) == ["UNAUTHENTICATED"], headers
        for path in ("/metrics", "/graphql", "/graphiql/graphiql.min.js", "/nowhere"):
            assert requests.get(f"{api.url}{path}", timeout=10).status_code == 401, path
        assert requests.get(f"{api.url}/healthz", timeout=10).status_code == 200
        good = requests.post(url, data=query, timeout=10, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        assert good.status_code == 200 and good.json() == {"data": {"pipelines": []}}
        assert api.query("{ pipelines { name } }") == {"pipelines": []}  # gql with the token
        cookie = requests.get(f"{api.url}/metrics", cookies={"ursprung_token": token},
                              timeout=10)
        assert cookie.status_code == 200 and "ursprung_api_requests" in cookie.text
        assert 'status="401"' in cookie.text
