"""The GUI's pages and JSON endpoints, rendered on the server from the query layer.

Pages are Jinja2 templates with autoescaping: every name from the graph is text. Graph data
goes into the page as JSON inside a ``<script type="application/json">`` block with ``<``,
``>`` and ``&`` escaped, so no recorded name can end the block; the browser script shows
names with ``textContent`` only. Every response carries a Content-Security-Policy that
allows scripts, styles and connections from this server alone.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import msgspec
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse

from ...content.store import ContentStore
from ...query.compare import compare
from ...query.explain import explain
from ...query.explore import run_graph, search
from ...query.lineage import label_of_key, load_nodes
from ...query.reports import (
    Report,
    ReportError,
    cell_text,
    get_report,
    load_reports,
    report_csv,
    run_report,
)
from ...query.runs import AmbiguousRun, list_runs, run_facts
from ...query.types import (
    Comparison,
    FileEntry,
    FileValue,
    OneSidedFile,
    OneSidedValue,
    ValueEntry,
)
from ...store.base import GraphStore, StoreError
from .explained import OutputWhy, explained
from .explore import (
    MAX_CAP,
    BadQuery,
    ExploreQuery,
    Recent,
    parse_query,
    producers,
    shell_script,
    versions_of,
    walk,
)
from .graphview import (
    DEFAULT_CAP,
    Filters,
    GraphView,
    cluster_id,
    label_of,
    members,
    prepare,
    step,
    view,
    when,
)
from .overlay import overlay
from .reports import ROW_CAP, read_query

TEMPLATES = Path(__file__).parent / "templates"
STATIC = "/gui/static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; "
       "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
PAGE_SIZE = 25
#: Time the compare page gives the explanations' walks.
EXPLAIN_SECONDS = 10.0
_SHA256 = re.compile(r"[0-9a-f]{64}")

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                          trim_blocks=True, lstrip_blocks=True)
_env.globals.update(when=when, static=STATIC)


def store_of(request: Request) -> GraphStore:
    """The graph store of the app serving ``request``."""
    store: GraphStore = request.app.state.store
    return store


def content_of(request: Request) -> ContentStore | None:
    """The content store of the app (``app.state.content``), if it has one."""
    content: ContentStore | None = getattr(request.app.state, "content", None)
    return content


def script_json(value: object) -> Markup:
    """``value`` as JSON that is safe inside a ``<script>`` block."""
    text = msgspec.json.encode(value).decode()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def render(template: str, page: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(page=page, **context)
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP})


#: Where a streamed page goes out in two parts (:func:`stream`).
FLUSH = "<!--flush-->"


def stream(template: str, page: str, **context: Any) -> StreamingResponse:
    """The page sent in two parts: everything before the template's :data:`FLUSH` mark
    at once, the rest when it is rendered (the template asks for the slow part after
    the mark)."""
    chunks = _env.get_template(template).generate(page=page, **context)

    def parts() -> Iterator[str]:
        buffer: list[str] = []
        for chunk in chunks:
            if FLUSH in chunk:
                before, after = chunk.split(FLUSH, 1)
                buffer.append(before)
                yield "".join(buffer)
                buffer = [after]
            else:
                buffer.append(chunk)
        yield "".join(buffer)

    return StreamingResponse(parts(), media_type="text/html; charset=utf-8",
                             headers={"Content-Security-Policy": CSP})


def _link(path: str, params: Mapping[str, str]) -> str:
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{path}?{query}" if query else path


def _graph_context(graph: GraphView, *, expand_url: str = "", cluster_url: str = "",
                   marks: bool = False) -> dict[str, Any]:
    return {"view": graph, "graph_json": script_json(graph), "expand_url": expand_url,
            "cluster_url": cluster_url, "marks": marks}


class ExploreGraph:
    """The explore page's graph, built when the template first asks for it: after the
    page's head (vis-network async, graph.js deferred) has gone out, so the browser loads
    and runs vis-network while the server walks. A store that fails then is one line on
    the page. ``context["timing"]``: the server's steps in ms, as JSON, for the page's
    breakdown (``#graph``'s ``data-timing``)."""

    def __init__(self, gui: Gui, store: GraphStore, q: ExploreQuery) -> None:
        self.gui, self.store, self.q = gui, store, q

    @functools.cached_property
    def context(self) -> dict[str, Any]:
        q, store = self.q, self.store
        assert q.node is not None
        timings: dict[str, float] = {}
        try:
            prepared = self.gui.recent.explore(store, q, timings, fresh=True)
            root = prepared.nodes[q.node]
            small = len(prepared.nodes) <= q.cap  # a clustered view shows no file details
            t0 = time.perf_counter()
            graph = view(prepared, cap=q.cap,
                         versions=versions_of(store, prepared, as_of=q.as_of) if small else {})
            timings["view"] = time.perf_counter() - t0
        except StoreError as exc:
            return {"error": f"the graph store cannot answer: {exc}"}
        filters = {k: v for k, v in q.params().items()
                   if k in ("system", "noise", "as_of", "since", "until")}
        return {
            **_graph_context(graph, expand_url=_link("/gui/api/expand",
                                                     {**filters, "direction": q.direction}),
                             cluster_url=_link("/gui/api/cluster", q.params())),
            "root_label": getattr(root, "path", None) or getattr(root, "cmdline", None)
            or label_of(root),
            "producers": producers(prepared),
            "script_url": _link("/gui/explore/script.sh", q.params()),
            "timing": msgspec.json.encode(  # ms by step, for the page's breakdown
                {k: round(v * 1000, 1) for k, v in timings.items()}).decode(),
            "error": None,
        }


class Gui:
    """The pages; ``cap``: the default node count past which graphs are clustered."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.cap = cap
        self.recent = Recent()

    # ------------------------------------------------------------------ explore

    def explore(self, request: Request) -> Response:
        try:
            q = parse_query(request.query_params, self.cap)
        except BadQuery as exc:
            q = parse_query({}, self.cap)
            return render("explore.html", "explore", 400, q=q, hits=None, error=str(exc))
        store = store_of(request)

        def explore_link(key: str) -> str:
            params = q.params()
            params.pop("q", None)
            params["node"] = key
            return _link("/gui/explore", params)

        context: dict[str, Any] = {"q": q, "hits": search(store, q.q) if q.q else None,
                                   "explore_link": explore_link}
        if not q.node:
            return render("explore.html", "explore", **context)
        if not load_nodes(store, {q.node: label_of_key(q.node)}):
            return render("explore.html", "explore", 404, **context,
                          error=f"no node {q.node} in the graph")
        return stream("explore.html", "explore", g=ExploreGraph(self, store, q), **context)

    def script(self, request: Request) -> Response:
        try:
            q = self._query(request)
        except BadQuery as exc:
            return PlainTextResponse(str(exc), status_code=400)
        prepared = self.recent.explore(store_of(request), q)
        assert q.node is not None
        return PlainTextResponse(shell_script(q.node, producers(prepared)),
                                 media_type="text/x-shellscript",
                                 headers={"Content-Disposition":
                                          'attachment; filename="how-it-was-made.sh"'})

    def _query(self, request: Request) -> ExploreQuery:
        q = parse_query(request.query_params, self.cap)
        if not q.node:
            raise BadQuery("node is missing")
        return q

    def expand(self, request: Request) -> Response:
        """One step of lineage from ``node``, as JSON for the graph to add."""
        try:
            q = self._query(request)
        except BadQuery as exc:
            return PlainTextResponse(str(exc), status_code=400)
        assert q.node is not None
        nodes, edges = walk(store_of(request), q.node, q.direction, 1, q.as_of, q.since,
                            q.until)
        prepared = prepare(nodes, edges, q.filters, root=q.node)
        return _json(step(prepared, versions=versions_of(store_of(request), prepared,
                                                           as_of=q.as_of)))

    def cluster(self, request: Request) -> Response:
        """The members of one cluster of the explore graph the query describes."""
        try:
            q = self._query(request)
        except BadQuery as exc:
            return PlainTextResponse(str(exc), status_code=400)
        store = store_of(request)
        prepared = self.recent.explore(store, q)
        cluster = request.query_params.get("cluster", "")
        inside = [k for k, n in prepared.nodes.items() if cluster_id(n) == cluster]
        return _json(members(prepared, cluster,
                             versions=versions_of(store, prepared, inside, q.as_of)))

    # ------------------------------------------------------------------ runs

    def runs(self, request: Request) -> Response:
        t = RunsTable.parse(request.query_params)
        everything = list_runs(store_of(request))
        pipelines = sorted({r.pipeline for r in everything if r.pipeline})
        rows = [r for r in everything if t.matches(r)]
        rows.sort(key=lambda r: _sort_key(getattr(r, t.sort)), reverse=t.order == "desc")
        pages = max(1, math.ceil(len(rows) / t.size))
        page = min(t.page, pages)
        shown = rows[(page - 1) * t.size: page * t.size]

        def sort_link(col: str) -> str:
            order = "asc" if t.sort == col and t.order == "desc" else "desc"
            return _link("/gui/runs", {**t.params(), "sort": col, "order": order, "page": ""})

        def page_link(n: int) -> str:
            return _link("/gui/runs", {**t.params(), "page": str(n)})

        return render("runs.html", "runs", t=t, rows=shown, total=len(rows), pages=pages,
                      pipelines=pipelines, columns=RunsTable.COLUMNS, sort_link=sort_link,
                      page_link=page_link)

    def run(self, request: Request) -> Response:
        store = store_of(request)
        try:
            facts = run_facts(store, request.path_params["run"])
        except AmbiguousRun as exc:
            return render("base.html", "runs", 400, error=str(exc))
        except LookupError as exc:
            return render("base.html", "runs", 404, error=str(exc))
        graph = run_graph(store, facts.key, facts.start, facts.end)
        prepared = prepare(graph.nodes, graph.edges, Filters(hide_system=True))

        def output_link(path: str) -> str:
            key = next((n.id for n in graph.nodes if getattr(n, "path", None) == path), "")
            return _link("/gui/explore", {"node": key})

        return render("run.html", "runs", run=facts, known=_known, output_link=output_link,
                      **_graph_context(view(prepared, cap=self.cap)))

    # ------------------------------------------------------------------ compare

    def compare(self, request: Request) -> Response:
        store = store_of(request)
        picked = {s: request.query_params.get(s, "") for s in ("a", "b")}
        context: dict[str, Any] = {"runs": list_runs(store), "picked": picked, "cmp": None}
        if not (picked["a"] and picked["b"]):
            return render("compare.html", "compare", **context)
        try:
            fa, fb = run_facts(store, picked["a"]), run_facts(store, picked["b"])
        except LookupError as exc:
            return render("compare.html", "compare", 404, **context, error=str(exc))
        cmp = compare(fa, fb)
        ga = run_graph(store, fa.key, fa.start, fa.end)
        gb = run_graph(store, fb.key, fb.start, fb.end)
        nodes, edges, marks = overlay(ga, gb, cmp)
        prepared = prepare(nodes, edges, Filters(hide_system=True))
        graph = view(prepared, cap=self.cap, marks=marks)
        found = explain(store, fa, fb, cmp, max_nodes=MAX_CAP,
                        deadline=time.monotonic() + EXPLAIN_SECONDS)
        whys = explained(found, cmp, nodes)
        content = content_of(request)
        context.update(cmp=cmp, sections=_sections(cmp, content, whys), found=found,
                       **_graph_context(graph, marks=True))
        return render("compare.html", "compare", **context)

    def diff(self, request: Request) -> Response:
        p = request.query_params
        name = p.get("name", "")
        a, b = p.get("a", ""), p.get("b", "")
        if not (_SHA256.fullmatch(a) and _SHA256.fullmatch(b)):
            return render("diff.html", "compare", 400, name=name, lines=None,
                          error="a and b must be sha256 hashes of stored contents")
        content = content_of(request)
        text = content.diff(a, b, name_a=f"a/{name}", name_b=f"b/{name}") if content else None
        lines = None if text is None else [(_line_kind(line), line)
                                           for line in text.splitlines()]
        return render("diff.html", "compare", 200 if lines is not None else 404, name=name,
                      lines=lines)

    # ------------------------------------------------------------------ reports

    def reports(self, request: Request) -> Response:
        """The Cypher reports of ``cypher/``, each linking to its form."""
        try:
            reports = sorted(load_reports().values(), key=lambda r: r.name)
        except ReportError as exc:
            return render("reports.html", "reports", 500, reports=[], error=str(exc))
        return render("reports.html", "reports", reports=reports)

    def report(self, request: Request) -> Response:
        """One report's form and, when its parameters are all there, its result."""
        try:
            chosen = get_report(request.path_params["name"])
        except ReportError as exc:
            return render("report.html", "reports", 404, q=None, error=str(exc))
        try:
            q = read_query(chosen, request.query_params)
            if q.ready:
                q.check()
        except ReportError as exc:
            safe = read_query(chosen, {k: v for k, v in request.query_params.items()
                                       if k in {p.name for p in chosen.parameters}})
            return render("report.html", "reports", 400, q=safe, result=None,
                          bad=_bad_parameter(chosen, str(exc)), error=str(exc))
        if not q.ready:
            return render("report.html", "reports", q=q, result=None, bad=None,
                          missing=", ".join(q.missing))
        result = run_report(store_of(request), chosen, q.given)
        rows = [[cell_text(v) for v in row] for row in result.rows[:ROW_CAP]]
        return render("report.html", "reports", q=q, result=result, rows=rows, cap=ROW_CAP,
                      bad=None, csv_url=_link(f"/gui/reports/{chosen.name}.csv", q.given))

    def report_csv(self, request: Request) -> Response:
        """The whole result of a report as CSV (the page's query string, ``.csv``)."""
        try:
            chosen = get_report(request.path_params["name"])
            q = read_query(chosen, request.query_params)
            q.check()
        except ReportError as exc:
            return PlainTextResponse(str(exc) + "\n", status_code=400)
        result = run_report(store_of(request), chosen, q.given)
        return Response(report_csv(result), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="{chosen.name}.csv"'})


def _bad_parameter(report: Report, message: str) -> str | None:
    """The parameter a ReportError message names, to mark its field."""
    for p in report.parameters:
        if f"parameter {p.name}:" in message or f"parameter {p.name} " in message:
            return p.name
    return None


def _json(value: object) -> Response:
    return Response(msgspec.json.encode(value), media_type="application/json")


def _sort_key(value: object) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


def _known(value: object) -> object:
    return "" if value is None or isinstance(value, msgspec.UnsetType) else value


def _line_kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "head"
    return {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "ctx")


@dataclass(frozen=True, slots=True)
class RunsTable:
    """The runs table's state, all in the URL: filter text, pipeline, sort column and
    order, page."""

    q: str
    pipeline: str
    sort: str
    order: str
    page: int
    size: int = PAGE_SIZE

    COLUMNS = (("id", "run"), ("pipeline", "pipeline"), ("command", "command"),
               ("host", "host"), ("start", "start"), ("duration", "duration"),
               ("exit_code", "exit"))

    @staticmethod
    def parse(params: Mapping[str, str]) -> RunsTable:
        sort = params.get("sort", "start")
        if sort not in {c for c, _ in RunsTable.COLUMNS}:
            sort = "start"
        order = "asc" if params.get("order") == "asc" else "desc"
        try:
            page = max(1, int(params.get("page", "1")))
            size = min(500, max(1, int(params.get("size", str(PAGE_SIZE)))))
        except ValueError:
            page, size = 1, PAGE_SIZE
        return RunsTable(q=params.get("q", ""), pipeline=params.get("pipeline", ""),
                         sort=sort, order=order, page=page, size=size)

    def params(self) -> dict[str, str]:
        return {"q": self.q, "pipeline": self.pipeline, "sort": self.sort,
                "order": self.order, "page": str(self.page) if self.page > 1 else "",
                "size": str(self.size) if self.size != PAGE_SIZE else ""}

    def matches(self, run: Any) -> bool:
        if self.pipeline and run.pipeline != self.pipeline:
            return False
        text = self.q.strip().lower()
        return not text or any(text in (v or "").lower() for v in
                               (run.id, run.pipeline, run.command, run.host))


@dataclass(frozen=True, slots=True)
class CompareRow:
    name: str
    a: str
    b: str
    note: str
    status: str
    diff: str = ""
    why: OutputWhy | None = None  # a changed output's explanation
    node: str = ""  # the overlay node of a fact that explains an output


@dataclass(frozen=True, slots=True)
class CompareSection:
    name: str
    counts: str
    rows: list[CompareRow]


def _file_text(v: FileValue) -> str:
    parts = [(v.sha256 or "")[:12], "" if v.size is None else f"{v.size} B",
             "" if v.sha256 or v.size is not None else f"written {when(v.written)}"
             if v.written else ""]
    return " ".join(p for p in parts if p) or (v.path or "")


def _diff_link(e: FileEntry, content: ContentStore | None) -> str:
    a, b = e.a.sha256, e.b.sha256
    if not (content and a and b and content.has(a) and content.has(b)):
        return ""
    return _link("/gui/diff", {"a": a, "b": b, "name": e.name})


def _sections(cmp: Comparison, content: ContentStore | None,
              whys: Mapping[str, OutputWhy]) -> list[CompareSection]:
    nodes = {(f.section, f.name): f.node for w in whys.values() for f in w.facts}
    out = []
    for name, section in cmp.sections():
        rows: list[CompareRow] = []
        for status, entries in (("changed", section.changed), ("same", section.same)):
            for e in entries:
                if isinstance(e, FileEntry):
                    rows.append(CompareRow(e.name, _file_text(e.a), _file_text(e.b),
                                           f"{e.basis}, matched by {e.match}", status,
                                           _diff_link(e, content) if status == "changed"
                                           else "", whys.get(e.name) if name == "outputs"
                                           and status == "changed" else None,
                                           nodes.get((name, e.name), "")))
                elif isinstance(e, ValueEntry):
                    rows.append(CompareRow(e.name, str(e.a), str(e.b), "", status,
                                           node=nodes.get((name, e.name), "")))
        for status, ones in (("only_a", section.only_a), ("only_b", section.only_b)):
            for o in ones:
                text = (_file_text(o.value) if isinstance(o, OneSidedFile)
                        else str(o.value) if isinstance(o, OneSidedValue) else "")
                a, b = (text, "—") if status == "only_a" else ("—", text)
                rows.append(CompareRow(o.name, a, b, status.replace("_", " "), status,
                                       node=nodes.get((name, o.name), "")))
        counts = (f"{len(section.same)} same, {len(section.changed)} changed, "
                  f"{len(section.only_a)} only A, {len(section.only_b)} only B")
        order = {"changed": 0, "only_a": 1, "only_b": 2, "same": 3}
        rows.sort(key=lambda r: order[r.status])
        out.append(CompareSection(name, counts, rows))
    return out


Endpoint = Callable[[Request], Response]


def guarded(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` with a store that cannot answer shown as one line (503), not a
    traceback."""

    @functools.wraps(endpoint)
    def run(request: Request) -> Response:
        try:
            return endpoint(request)
        except StoreError as exc:
            return render("base.html", "", 503, error=f"the graph store cannot answer: {exc}")

    return run
