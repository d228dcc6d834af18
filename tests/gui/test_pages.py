"""The GUI without a browser: the explorer's reads, the layout and clustering, the pages'
escaping and security headers, the JSON endpoints, the runs table's URL state and the
how-it-was-made script."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import subprocess
from collections import Counter
from urllib.parse import quote

import msgspec
import pytest
from starlette.testclient import TestClient

from tests.events import Script
from ursprung_graph.api.gui.explore import parse_query, shell_script, walk
from ursprung_graph.api.gui.graphview import (
    Filters,
    flow,
    host_of,
    layout,
    members,
    prepare,
    view,
)
from ursprung_graph.api.gui.pages import ExploreGraph, Gui
from ursprung_graph.api.gui.reports import ROW_CAP
from ursprung_graph.pipeline.sinks import write_events
from ursprung_graph.query.explore import run_graph, search
from ursprung_graph.query.lineage import lineage
from ursprung_graph.query.reports import ReportResult, report_csv
from ursprung_graph.query.types import LineageEdge, ProcessNode
from ursprung_graph.schema import graph as g

from .app import gui_app
from .bigraph import T0, S, big_lineage
from .conftest import HOSTILE_FILE, HOSTILE_SCRIPT, World

HOSTILE_PATH = f"/data/{HOSTILE_FILE}"


def hostile_story(store) -> str:
    """A shell whose command line closes a script block reads a file with an HTML name and
    writes a result; the result's key."""
    s = Script()
    sh = s.proc(10, 1, ["/bin/sh", "-c", f"echo '{HOSTILE_SCRIPT}'"])
    s.exec(1, sh, "/bin/sh")
    s.read(2, sh, HOSTILE_PATH)
    s.read(2, sh, "/usr/lib/x86_64-linux-gnu/libc.so.6")
    s.write(3, sh, "/data/result.csv")
    s.exit(4, sh)
    write_events(store, s.events)
    return "f:h1:/data/result.csv"


def test_search_finds_files_and_processes_by_substring(store) -> None:
    hostile_story(store)
    hits = search(store, "onerror")
    assert [(h.kind, h.label) for h in hits] == [("file", HOSTILE_PATH)]
    procs = [h for h in search(store, "</script>") if h.kind == "process"]
    assert len(procs) == 1 and HOSTILE_SCRIPT in procs[0].label
    assert search(store, "   ") == []
    assert search(store, "no such thing") == []


def test_layout_puts_sources_left_and_results_right() -> None:
    read = LineageEdge(source="p", target="in", kind="READ", first=1, last=2)
    wrote = LineageEdge(source="p", target="out", kind="WROTE", first=3, last=4)
    assert flow(read) == ("in", "p") and flow(wrote) == ("p", "out")
    pos = layout(["in", "out", "p"], [flow(read), flow(wrote)])
    assert pos["in"][0] < pos["p"][0] < pos["out"][0]
    # a cycle still gets every node a place
    cyc = layout(["a", "b"], [("a", "b"), ("b", "a")])
    assert set(cyc) == {"a", "b"}


def test_filters_hide_system_files_and_noise(store) -> None:
    root = hostile_story(store)
    up = lineage(store, root)
    shown = prepare(up.nodes, up.edges, Filters(hide_system=False), root=root)
    assert any(getattr(n, "path", "").endswith("libc.so.6") for n in shown.nodes.values())
    hidden = prepare(up.nodes, up.edges, Filters(hide_system=True), root=root)
    assert not any(getattr(n, "path", "").endswith("libc.so.6") for n in hidden.nodes.values())
    assert hidden.hidden == shown.hidden + 2  # libc and the executed /bin/sh
    noisy = prepare(up.nodes, up.edges, Filters.parse(True, "*onerror*, /bin/*"), root=root)
    paths = {getattr(n, "path", None) for n in noisy.nodes.values()}
    assert HOSTILE_PATH not in paths and root in noisy.nodes  # the root always stays


def test_past_the_cap_nodes_cluster_by_host_and_kind_and_open(store) -> None:
    root = big_lineage(lambda ev: write_events(store, ev), nodes=300, tag="cap")
    up = lineage(store, root, depth=6)
    p = prepare(up.nodes, up.edges, Filters(), root=root)
    assert len(p.nodes) > 250
    whole = view(p, cap=1000)
    assert not whole.clustered and len(whole.nodes) == len(p.nodes)
    small = view(p, cap=100)
    assert small.clustered and "clustered by host and kind" in (small.notice or "")
    clusters = [n for n in small.nodes if n.members]
    assert sum(n.members or 0 for n in clusters) == len(p.nodes) - 1
    assert {n.id for n in small.nodes if n.root} == {root}
    # the four hosts' input files, the shared parts, the processes
    assert {n.id for n in clusters} >= {"cluster:cap-node00:file", "cluster:fs:scale:file",
                                        "cluster:cap-node03:process"}
    opened = members(p, "cluster:fs:scale:file")
    assert len(opened.nodes) == next(n.members for n in clusters
                                     if n.id == "cluster:fs:scale:file")
    assert all(n.cluster == "cluster:fs:scale:file" for n in opened.nodes)
    assert all(n.x == p.pos[n.id][0] for n in opened.nodes)  # placed as in the full layout
    assert {e.to_cluster for e in opened.edges if e.source in p.nodes} >= {
        "cluster:cap-node00:process"}


def test_pages_escape_hostile_names_and_forbid_other_origins(store) -> None:
    root = hostile_story(store)
    client = TestClient(gui_app(store))
    r = client.get("/gui/explore", params={"node": root, "system": "show"})
    assert r.status_code == 200
    html = r.text
    assert "<img src=x" not in html and "<script>alert" not in html
    assert HOSTILE_SCRIPT.replace("<", "&lt;").replace(">", "&gt;") in html  # the panel
    assert "\\u003c/script\\u003e" in html  # inside the graph's JSON block
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert 'href="/graphql"' in html
    block = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>',
                      html, re.S)
    assert block is not None
    data = json.loads(block.group(1))
    labels = {n["label"] for n in data["nodes"]}
    assert HOSTILE_FILE in labels
    for page in ("/gui/explore?q=" + quote("onerror"), "/gui/explore?q=" + quote("</script>")):
        text = client.get(page).text
        assert "<img src=x" not in text and "<script>alert" not in text


def test_every_asset_a_page_names_is_served_by_the_app(store) -> None:
    root = hostile_story(store)
    client = TestClient(gui_app(store))
    html = client.get("/gui/explore", params={"node": root}).text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("vis-network.min.js") for a in assets)
    for a in assets:
        assert a.startswith("/"), f"{a} is not served by the app"
        if a.startswith("/gui/static"):
            assert client.get(a).status_code == 200, a


def test_expand_gives_one_step_as_json_and_bad_queries_are_400(store) -> None:
    root = hostile_story(store)
    client = TestClient(gui_app(store))
    r = client.get("/gui/api/expand", params={"node": root, "direction": "up",
                                               "system": "hide"})
    assert r.status_code == 200
    data = r.json()
    kinds = {n["kind"] for n in data["nodes"]}
    assert kinds == {"file", "process"} and len(data["nodes"]) == 2  # the writer, one hop
    [edge] = data["edges"]
    assert edge["to"] == root and edge["kind"] == "WROTE"
    # each node and edge end names its cluster: in a clustered graph it attaches there
    assert {n["cluster"] for n in data["nodes"]} == {"cluster:h1:file", "cluster:h1:process"}
    assert edge["to_cluster"] == "cluster:h1:file"
    assert client.get("/gui/api/expand").status_code == 400
    bad = client.get("/gui/explore", params={"node": root, "depth": "deep"})
    assert bad.status_code == 400 and "depth must be a whole number" in bad.text
    assert client.get("/gui/explore", params={"as_of": "yesterday-ish", "node": root}
                      ).status_code == 400
    assert client.get("/gui/explore", params={"node": "f:h1:/nowhere"}).status_code == 404


def test_the_script_of_how_a_file_was_made_is_inert_text(tmp_path) -> None:
    procs = [ProcessNode(id="p:h:1:1", kind="process", host="h\nrm -rf /", pid=1,
                         cwd="/work/it's here", cmdline="python train.py", start=2),
             ProcessNode(id="p:h:2:0", kind="process", host="h", pid=2, cwd="/w",
                         cmdline="echo one\necho two", start=1)]
    text = shell_script("f:h:/out\nrm -rf ~", sorted(procs, key=lambda p: p.start or 0))
    lines = text.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "rm -rf" not in "\n".join(x for x in lines if not x.startswith("#"))
    assert f"cd {shlex.quote('/work/it' + chr(39) + 's here')}" in lines
    assert lines.index("echo one echo two") < lines.index("python train.py")
    script = tmp_path / "s.sh"
    script.write_text(text)
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0


def test_run_graph_and_runs_table_state(world: World) -> None:
    from ursprung_graph.query.runs import find_run

    run = find_run(world.store, world.runs[1])
    rg = run_graph(world.store, run.key, run.start, run.end)
    kinds = {n.kind for n in rg.nodes}
    assert {"process", "file", "pipe"} <= kinds
    paths = {getattr(n, "path", None) for n in rg.nodes}
    assert str(world.work / "run2" / "work" / "model.json") in paths  # through the rename
    assert any(e.kind == g.RENAMED_TO.name for e in rg.edges)
    client = TestClient(gui_app(world.store, world.content))
    first = client.get("/gui/runs", params={"size": "1", "sort": "start", "order": "asc"})
    second = client.get("/gui/runs", params={"size": "1", "page": "2", "sort": "start",
                                             "order": "asc"})
    ids = [re.findall(r'class="pick" value="(\w+)"', r.text) for r in (first, second)]
    assert ids[0] != ids[1] and len(ids[0]) == len(ids[1]) == 1
    assert 'id="next"' in first.text and "page=2" in first.text and "size=1" in first.text
    assert 'id="prev"' in second.text
    demo = client.get("/gui/runs", params={"q": "--lr 0.02"})
    assert re.findall(r'class="pick" value="(\w+)"', demo.text) == [world.runs[1]]
    assert client.get("/gui/runs/nosuchrun").status_code == 404
    assert msgspec.json.decode(msgspec.json.encode(rg))["run"] == run.key


@pytest.mark.parametrize("bad", ["nothex", "0" * 63])
def test_diff_refuses_what_is_not_a_hash(world: World, bad: str) -> None:
    client = TestClient(gui_app(world.store, world.content))
    r = client.get("/gui/diff", params={"a": bad, "b": "0" * 64, "name": HOSTILE_FILE})
    assert r.status_code == 400 and "<img src=x" not in r.text


def test_a_store_that_cannot_answer_is_one_line_not_a_traceback(tmp_path) -> None:
    from ursprung_graph.store.embedded import EmbeddedServer
    from ursprung_graph.store.falkordb import FalkorDBStore

    server = EmbeddedServer(tmp_path / "falkordb")
    server.start()
    try:
        gone = FalkorDBStore(unix_socket=str(server.socket), graph="x")
    finally:
        server.stop()  # the store's server is gone before the pages ask it anything
    client = TestClient(gui_app(gone), raise_server_exceptions=False)
    for path in ("/gui/runs", "/gui/explore?q=x", "/gui/api/expand?node=f:h:/x",
                 "/gui/explore?node=f:h:/x", "/gui/reports/files_deleted"):
        r = client.get(path)
        assert r.status_code == 503, path
        assert "the graph store cannot answer" in r.text and "Traceback" not in r.text
    # a store that fails once the explore page's head has gone out: one line on the page
    late = ExploreGraph(Gui(), gone, parse_query({"node": "f:h:/x"}))
    assert late.context["error"].startswith("the graph store cannot answer")


def test_report_csv_neutralises_formulas_and_escapes_names() -> None:
    result = ReportResult("r", ("a", "b"), [
        ('=HYPERLINK("http://x")', -5), ("+1", "@SUM(A1)"), ("-2", "line\nbreak"),
        (HOSTILE_FILE, "bad\\xff.csv"), (None, ["=x"])])
    text = report_csv(result)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["a", "b"], ["'=HYPERLINK(\"http://x\")", "-5"], ["'+1", "'@SUM(A1)"],
                    ["'-2", "line\\x0abreak"], [HOSTILE_FILE, "bad\\xff.csv"],
                    ["", '["=x"]']]
    assert len(text.splitlines()) == len(rows)  # no name forged a row


def test_report_page_types_parameters_caps_rows_and_refuses_bad_ones(world: World) -> None:
    client = TestClient(gui_app(world.store, world.content))
    listing = client.get("/gui/reports").text
    assert 'href="/gui/reports/sensitive_reads"' in listing
    # every read of the 5,000-node lineage's inputs: more rows than the page shows
    r = client.get("/gui/reports/sensitive_reads", params={"path_contains": "/data/big/"})
    assert r.status_code == 200
    assert f"Showing the first {ROW_CAP} of " in r.text
    assert r.text.count("<tr><td>") == ROW_CAP
    download = client.get("/gui/reports/sensitive_reads.csv",
                          params={"path_contains": "/data/big/"})
    assert download.headers["content-disposition"] == \
        'attachment; filename="sensitive_reads.csv"'
    assert len(download.text.splitlines()) > ROW_CAP + 1  # the CSV has every row
    # a parameter that does not convert: one line naming it, the field marked, no traceback
    bad = client.get("/gui/reports/sensitive_reads", params={"since": "yesterday"})
    assert bad.status_code == 400 and "Traceback" not in bad.text
    assert "parameter since: expected an integer, got &#39;yesterday&#39;" in bad.text
    assert re.search(r'<label class="bad">since', bad.text)
    assert 'value="yesterday"' in bad.text  # the form keeps what was typed
    assert client.get("/gui/reports/sensitive_reads.csv", params={"since": "x"}).text == \
        "report sensitive_reads: parameter since: expected an integer, got 'x'\n"
    unknown = client.get("/gui/reports/sensitive_reads", params={"sinse": "1"})
    assert unknown.status_code == 400 and "has no parameter sinse" in unknown.text
    assert client.get("/gui/reports/nope").status_code == 404
    # hostile names in the table are text
    target = str(world.work / "hostile" / HOSTILE_FILE)
    page = client.get("/gui/reports/file_lineage", params={"path": target}).text
    assert "<img src=x" not in page and "<script>alert" not in page
    assert HOSTILE_SCRIPT.replace("<", "&lt;").replace(">", "&gt;") in page


def test_hosts_lie_in_bands_of_their_own(store) -> None:
    root = big_lineage(lambda ev: write_events(store, ev), nodes=300, tag="band")
    up = lineage(store, root, depth=6)
    p = prepare(up.nodes, up.edges, Filters(), root=root)
    spans: dict[str, list[int]] = {}
    for key, n in p.nodes.items():
        spans.setdefault(host_of(n), []).append(p.pos[key][1])
    assert len(spans) == 5  # four hosts and the shared file system
    ranges = sorted((min(ys), max(ys)) for ys in spans.values())
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False)), ranges
    assert all(p.pos[i][0] < p.pos[root][0] for i in p.nodes if i != root)  # still layered
    # clustered, each host's clusters stay in its band
    clustered = view(p, cap=100)
    places: dict[str, list[int]] = {}
    for n in clustered.nodes:
        if n.members:
            places.setdefault(n.host or "?", []).append(n.y)
    assert set(places) == set(spans)
    bands = sorted((min(ys), max(ys)) for ys in places.values())
    assert all(a[1] < b[0] for a, b in zip(bands, bands[1:], strict=False)), bands


def test_a_time_window_keeps_the_edges_inside_it(store) -> None:
    root = big_lineage(lambda ev: write_events(store, ev), nodes=300, tag="win")
    everything, _ = walk(store, root, "up", 6, None)
    nodes, edges = walk(store, root, "up", 6, None, since=T0 + 100 * S)
    kinds = Counter(n.kind for n in nodes)
    assert kinds == {"file": 1 + 12, "process": 1}  # the result, the parts and combine.py
    assert edges and all(e.first >= T0 + 100 * S for e in edges)
    early, _ = walk(store, root, "up", 6, None, until=T0 + 100 * S)
    assert [n.id for n in early] == [root]  # nothing that made it lies before
    assert len(everything) > 250
    client = TestClient(gui_app(store))
    r = client.get("/gui/explore", params={"node": root, "depth": "6",
                                            "since": str(T0 + 100 * S)})
    assert r.status_code == 200 and "14 nodes" in r.text
    assert client.get("/gui/explore", params={"node": root, "since": "2", "until": "1"}
                      ).status_code == 400


def test_a_cluster_opens_as_the_page_showed_it_and_a_reload_is_fresh(store) -> None:
    from ursprung_graph.schema.event import SCHEMA_VERSION, Event, FileRef, Kind, ProcessInfo

    root = big_lineage(lambda ev: write_events(store, ev), nodes=300, tag="fresh")
    client = TestClient(gui_app(store))
    params = {"node": root, "depth": "6", "cap": "100"}
    page = client.get("/gui/explore", params=params).text
    total = int(re.search(r"(\d+) nodes are more than", page).group(1))
    # one more input of the first part's process, recorded after the page was built
    argv = ["/usr/bin/python3", "make_part.py", "0"]
    proc = ProcessInfo(pid=1000, start=T0, exe=argv[0], argv=argv, cwd="/work/fresh")
    write_events(store, [Event(v=SCHEMA_VERSION, source="test", host="fresh-node00",
                               ts=T0 + 10, seq="late", kind=Kind.READ, proc=proc,
                               file=FileRef("/data/fresh/late.csv"))])
    opened = client.get("/gui/api/cluster", params={**params,
                                                    "cluster": "cluster:fresh-node00:file"})
    assert "/data/fresh/late.csv" not in opened.text  # the graph the page showed
    again = client.get("/gui/explore", params=params).text
    assert f"{total + 1} nodes are more than" in again  # a reload walks afresh
