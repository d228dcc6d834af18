"""The GraphQL schema: files, processes, runs, lineage, search and run comparison, read-only.

Every type, field and argument has a description (a test checks it); the schema is exported
to docs/schema.graphql. Types are thin views of the query layer's structs
(:mod:`ursprung_graph.query`); resolvers validate their arguments against the request's
:class:`~.limits.Limits`, call the query layer in a worker thread (:class:`~.context.Context`)
and never build Cypher. There are no mutations.

Times are the ``Time`` scalar: epoch nanoseconds as a decimal string (JSON numbers lose
precision past 2^53); as input also ISO 8601 (UTC unless it has an offset). Objects have
Relay global ids (``id``: base64 of ``Type:key``; ``node(id)`` finds any of them) and their
graph ``key``.
"""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Annotated, TypeVar

import strawberry
from msgspec import UnsetType
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.relay.utils import from_base64, to_base64
from strawberry.schema.config import StrawberryConfig

from ..query import lineage as lineage_q
from ..query.compare import compare, differs
from ..query.explain import Explanations as ExplanationsResult
from ..query.explain import explain
from ..query.lineage_view import LineageView, lineage_view
from ..query.nodes import file_node
from ..query.pipelines import pipelines as list_pipelines
from ..query.run_lineage import run_lineage
from ..query.run_list import RunFilter, Status, find_runs, runs_reading, status_of
from ..query.runs import AmbiguousRun, find_run
from ..query.search import search
from ..query.types import (
    EndpointNode,
    FileEntry,
    FileNode,
    FileSection,
    FileValue,
    LineageEdge,
    LineageNode,
    OneSidedFile,
    OneSidedValue,
    PipeNode,
    ProcessFact,
    ProcessNode,
    RunFileFact,
    RunSummary,
    ValueEntry,
    ValueSection,
)
from ..schema.times import TimeError, parse_time
from .context import Context
from .errors import ApiError
from .gaps import CaptureGap, capture_gaps
from .limits import Limits, limits_rule
from .reports import MAX_ROWS, NAME, PARAMS, Report, ReportResult, list_reports
from .reports import run_report as run_report_api
from .scalars import Time
from .winnower import AnomalyReport, resolve_anomalies

T = TypeVar("T")

Info = strawberry.Info[Context, None]


def _serialize_time(value: int) -> str:
    return str(value)


def _parse_time(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return parse_time(value)
    except TimeError as exc:
        raise ValueError(str(exc)) from exc



TIME_SCALAR = strawberry.scalar(
    name="Time",
    description="A time: epoch nanoseconds (UTC) as a decimal string. As input also an "
                "integer or ISO 8601 text (UTC unless it has an offset).",
    serialize=_serialize_time, parse_value=_parse_time)


# --------------------------------------------------------------------------- ids


def global_id(type_name: str, key: str) -> strawberry.ID:
    return strawberry.ID(to_base64(type_name, key))


def key_of(given: str, *types: str) -> str:
    """The graph key of a global id of one of ``types``, or ``given`` itself when it is a
    key already."""
    try:
        type_name, key = from_base64(given)
    except Exception:
        return given
    if type_name not in types:
        raise ApiError(f"id {given!r} is a {type_name}, not a {' or '.join(types)}")
    return key


_TYPE_OF_KIND = {"file": "File", "process": "Process", "pipe": "Pipe",
                 "endpoint": "Endpoint"}


# --------------------------------------------------------------------------- enums


@strawberry.enum(description="Which way a lineage walks.")
class Direction(Enum):
    UPSTREAM = strawberry.enum_value(
        "up", description="Where it came from: writers, what they read before writing.")
    DOWNSTREAM = strawberry.enum_value(
        "down", description="What it went into: readers, what they wrote afterwards.")


@strawberry.enum(description="Kinds of nodes a lineage lists.")
class NodeKind(Enum):
    FILE = strawberry.enum_value("file", description="Files.")
    PROCESS = strawberry.enum_value("process", description="Processes.")
    PIPE = strawberry.enum_value("pipe", description="Pipes between processes.")
    ENDPOINT = strawberry.enum_value("endpoint", description="Sockets and network peers.")


@strawberry.enum(description="Kinds of things a search finds.")
class SearchKind(Enum):
    FILE = strawberry.enum_value("file", description="Files, by path.")
    PROCESS = strawberry.enum_value(
        "process", description="Processes, by command line or executable.")
    RUN = strawberry.enum_value("run", description="Pipeline runs, by pipeline or parameter.")


@strawberry.enum(description="How a run ended.")
class RunStatus(Enum):
    SUCCEEDED = strawberry.enum_value("succeeded", description="Exit code 0.")
    FAILED = strawberry.enum_value("failed", description="Any other exit code.")
    UNKNOWN = strawberry.enum_value("unknown", description="No exit code recorded.")


# --------------------------------------------------------------------------- nodes


@strawberry.interface(description="An object with a global id (Relay).")
class Node:
    id: strawberry.ID = strawberry.field(description="Global id: base64 of `Type:key`.")


async def _lineage_of(info: Info, key: str, direction: Direction, depth: int | None,
                      as_of: int | None, kinds: list[NodeKind] | None, include_system: bool,
                      max_nodes: int | None) -> Lineage:
    ctx = info.context
    limits = ctx.limits
    depth = limits.default_lineage_depth if depth is None else depth
    if not 1 <= depth <= limits.max_lineage_depth:
        raise ApiError(f"depth must be between 1 and {limits.max_lineage_depth}")
    max_nodes = limits.default_max_nodes if max_nodes is None else max_nodes
    if not 1 <= max_nodes <= limits.max_nodes:
        raise ApiError(f"maxNodes must be between 1 and {limits.max_nodes}")
    view = await ctx.call(
        lineage_view, ctx.store, key, direction=direction.value, depth=depth, as_of=as_of,
        kinds=None if kinds is None else [k.value for k in kinds],
        include_system=include_system, max_nodes=max_nodes, deadline=ctx.walk_deadline,
        classifier=ctx.classifier)
    return Lineage.of(ctx, view)


_DIRECTION = Annotated[Direction, strawberry.argument(description="UPSTREAM or DOWNSTREAM.")]
_DEPTH = Annotated[int | None, strawberry.argument(
    description="Maximum number of hops (default 10, at most 50); a walk that stops here "
                "says so in `truncated`.")]
_AS_OF = Annotated[int | None, strawberry.argument(
    description="The lineage as it was at this time: upstream only what happened at or "
                "before it, downstream at or after.", graphql_type=Time | None)]
_KINDS = Annotated[list[NodeKind] | None, strawberry.argument(
    description="List only nodes of these kinds (the walk still goes through the others).")]
_SYSTEM = Annotated[bool, strawberry.argument(
    description="Also list and walk through the software environment (libraries, "
                "interpreters' trees, caches); false by default.")]
_MAX_NODES = Annotated[int | None, strawberry.argument(
    description="Stop after this many nodes (default 1000, at most 5000) and say so in "
                "`truncated`.")]


@strawberry.type(description="A file: local to a host, or on a shared file system.")
class File(Node):
    key: str = strawberry.field(description="The file's graph key.")
    path: str | None = strawberry.field(description="Absolute path.")
    host: str | None = strawberry.field(description="The host, for a local file.")
    fs: str | None = strawberry.field(description="The shared file system, if on one.")

    @classmethod
    def of(cls, n: FileNode) -> File:
        return cls(id=global_id("File", n.id), key=n.id, path=n.path, host=n.host, fs=n.fs)

    @strawberry.field(description="The runs whose processes read this file, oldest first.")
    async def used_by(self, info: Info) -> list[Run]:
        ctx = info.context
        return [Run.of(r) for r in await ctx.call(runs_reading, ctx.store, self.key)]

    @strawberry.field(description="The file's lineage (see `Query.lineage`).")
    async def lineage(self, info: Info, direction: _DIRECTION = Direction.UPSTREAM,
                      depth: _DEPTH = None, as_of: _AS_OF = None, kinds: _KINDS = None,
                      include_system: _SYSTEM = False,
                      max_nodes: _MAX_NODES = None) -> Lineage:
        return await _lineage_of(info, self.key, direction, depth, as_of, kinds,
                                 include_system, max_nodes)


@strawberry.type(description="A process: (host, pid, start time).")
class Process(Node):
    key: str = strawberry.field(description="The process's graph key.")
    host: str | None = strawberry.field(description="Host it ran on.")
    pid: int | None = strawberry.field(description="Process id.")
    exe: str | None = strawberry.field(description="Executable (last exec).")
    cmdline: str | None = strawberry.field(description="Command line (last exec).")
    cwd: str | None = strawberry.field(description="Working directory.")
    start: int | None = strawberry.field(description="Start time.", graphql_type=Time | None)
    end: int | None = strawberry.field(description="End time.", graphql_type=Time | None)
    exit_code: int | None = strawberry.field(description="Exit status, when seen.")

    @classmethod
    def of(cls, n: ProcessNode) -> Process:
        return cls(id=global_id("Process", n.id), key=n.id, host=n.host, pid=n.pid,
                   exe=n.exe, cmdline=n.cmdline, cwd=n.cwd, start=n.start, end=n.end,
                   exit_code=n.exit_code)

    @strawberry.field(description="The process's lineage (see `Query.lineage`).")
    async def lineage(self, info: Info, direction: _DIRECTION = Direction.UPSTREAM,
                      depth: _DEPTH = None, as_of: _AS_OF = None, kinds: _KINDS = None,
                      include_system: _SYSTEM = False,
                      max_nodes: _MAX_NODES = None) -> Lineage:
        return await _lineage_of(info, self.key, direction, depth, as_of, kinds,
                                 include_system, max_nodes)


@strawberry.type(description="A pipe between processes of one host.")
class Pipe(Node):
    key: str = strawberry.field(description="The pipe's graph key.")
    host: str | None = strawberry.field(description="Host of the pipe.")

    @classmethod
    def of(cls, n: PipeNode) -> Pipe:
        return cls(id=global_id("Pipe", n.id), key=n.id, host=n.host)


@strawberry.type(description="A socket endpoint: a local port or socket path, or a peer.")
class Endpoint(Node):
    key: str = strawberry.field(description="The endpoint's graph key.")
    host: str | None = strawberry.field(description="Host, for host-local endpoints.")
    family: str | None = strawberry.field(description="Address family (inet, inet6, unix).")
    address: str | None = strawberry.field(description="Address or socket path.")
    port: int | None = strawberry.field(description="Port.")

    @classmethod
    def of(cls, n: EndpointNode) -> Endpoint:
        return cls(id=global_id("Endpoint", n.id), key=n.id, host=n.host, family=n.family,
                   address=n.address, port=n.port)


GraphNode = Annotated[File | Process | Pipe | Endpoint, strawberry.union(
    "GraphNode", description="A node of a lineage: file, process, pipe or endpoint.")]


def graph_node(n: LineageNode) -> File | Process | Pipe | Endpoint:
    if isinstance(n, FileNode):
        return File.of(n)
    if isinstance(n, ProcessNode):
        return Process.of(n)
    if isinstance(n, PipeNode):
        return Pipe.of(n)
    return Endpoint.of(n)


# --------------------------------------------------------------------------- lineage


@strawberry.type(description="An edge of a lineage, in the direction data flowed.")
class Edge:
    source: strawberry.ID = strawberry.field(description="Global id of the source node.")
    target: strawberry.ID = strawberry.field(description="Global id of the target node.")
    source_key: str = strawberry.field(description="Graph key of the source node.")
    target_key: str = strawberry.field(description="Graph key of the target node.")
    kind: str = strawberry.field(
        description="Relationship type: READ, WROTE, EXECUTED, FORKED, RENAMED_TO, "
                    "LINKED_TO, CONNECTED, ACCEPTED, BOUND.")
    first: int = strawberry.field(description="First time seen.", graphql_type=Time)
    last: int = strawberry.field(description="Last time seen.", graphql_type=Time)

    @classmethod
    def of(cls, e: LineageEdge, kinds: dict[str, str]) -> Edge:
        return cls(source=global_id(kinds.get(e.source, "File"), e.source),
                   target=global_id(kinds.get(e.target, "File"), e.target),
                   source_key=e.source, target_key=e.target, kind=e.kind, first=e.first,
                   last=e.last)

    @strawberry.field(description="The source node (batched: one read per kind).")
    async def source_node(self, info: Info) -> GraphNode | None:
        n = await info.context.nodes.load(self.source_key)
        return None if n is None else graph_node(n)

    @strawberry.field(description="The target node (batched: one read per kind).")
    async def target_node(self, info: Info) -> GraphNode | None:
        n = await info.context.nodes.load(self.target_key)
        return None if n is None else graph_node(n)


@strawberry.type(description="A lineage: nodes and edges, and whether it is partial.")
class Lineage:
    root_key: str = strawberry.field(description="Graph key of the node it starts from.")
    direction: Direction = strawberry.field(description="UPSTREAM or DOWNSTREAM.")
    nodes: list[GraphNode] = strawberry.field(description="Typed nodes, by kind and key.")
    edges: list[Edge] = strawberry.field(description="Edges with first and last times.")
    truncated: bool = strawberry.field(
        description="True when the walk stopped early (depth, node cap, time budget).")
    reason: str | None = strawberry.field(description="Why it stopped early, if it did.")
    complete: bool = strawberry.field(
        description="False when the walk crosses capture gaps: events may be missing.")
    gaps: list[CaptureGap] = strawberry.field(description="The capture gaps it crosses.")

    @classmethod
    def of(cls, ctx: Context, view: LineageView) -> Lineage:
        kinds = {n.id: _TYPE_OF_KIND[n.kind] for n in view.nodes}
        ctx.truncated += view.truncated
        for n in view.nodes:
            ctx.nodes.prime(n.id, n)
        return cls(root_key=view.root, direction=Direction(view.direction),
                   nodes=[graph_node(n) for n in view.nodes],
                   edges=[Edge.of(e, kinds) for e in view.edges], truncated=view.truncated,
                   reason=view.reason, complete=view.complete, gaps=capture_gaps(view.gaps))

    @strawberry.field(description="The node it starts from (null for a run's lineage).")
    async def root(self, info: Info) -> GraphNode | None:
        n = await info.context.nodes.load(self.root_key)
        return None if n is None else graph_node(n)


# --------------------------------------------------------------------------- runs


@strawberry.type(description="A name and its value (a parameter, an environment entry, "
                             "a metric).")
class KeyValue:
    name: str = strawberry.field(description="The name.")
    value: str = strawberry.field(description="The value.")


def _pairs(values: dict[str, str]) -> list[KeyValue]:
    return [KeyValue(name=k, value=str(v)) for k, v in sorted(values.items())]


def _known(value: T | None | UnsetType) -> T | None:
    """None for a fact that does not apply (``UNSET``)."""
    return None if isinstance(value, UnsetType) else value


@strawberry.type(description="A file of a run, with the version the run observed.")
class RunFile:
    path: str = strawberry.field(description="Absolute path.")
    relative: str | None = strawberry.field(
        description="Path relative to the run's working directory (null outside it).")
    sha256: str | None = strawberry.field(description="Content hash the run observed.")
    size: int | None = strawberry.field(description="Size in bytes the run observed.")
    mtime: int | None = strawberry.field(description="Modification time the run observed.",
                                         graphql_type=Time | None)
    first_read: int | None = strawberry.field(description="When the run first read it.",
                                              graphql_type=Time | None)
    prior_write: int | None = strawberry.field(
        description="The last write anyone made at or before the run read it.",
        graphql_type=Time | None)
    written: int | None = strawberry.field(description="The run's last write of it.",
                                           graphql_type=Time | None)

    @classmethod
    def of(cls, f: RunFileFact) -> RunFile:
        return cls(path=f.path, relative=f.rel, sha256=_known(f.sha256), size=_known(f.size),
                   mtime=_known(f.mtime), first_read=f.first_read,
                   prior_write=_known(f.prior_write), written=f.written)


@strawberry.type(description="A process (step) of a run.")
class RunStep:
    pid: int = strawberry.field(description="Process id.")
    start: int | None = strawberry.field(description="Start time.", graphql_type=Time | None)
    end: int | None = strawberry.field(description="End time.", graphql_type=Time | None)
    exit_code: int | None = strawberry.field(description="Exit status.")
    command: str | None = strawberry.field(description="Command line, else the program.")
    cwd: str | None = strawberry.field(description="Working directory.")

    @classmethod
    def of(cls, p: ProcessFact) -> RunStep:
        return cls(pid=p.pid, start=p.start, end=p.end, exit_code=p.exit_code,
                   command=p.command, cwd=p.cwd)


@strawberry.type(description="A pipeline run: recorded by `ursprung run` or defined on "
                             "audit data.")
class Run(Node):
    key: str = strawberry.field(description="The run's graph key.")
    run_id: str = strawberry.field(description="The run's id (as `ursprung runs` shows).")
    pipeline: str | None = strawberry.field(description="Pipeline name.")
    command: str | None = strawberry.field(description="Command line of the run.")
    argv: list[str] = strawberry.field(description="Arguments of the run's command.")
    cwd: str | None = strawberry.field(description="Working directory.")
    host: str | None = strawberry.field(description="Host.")
    user: str | None = strawberry.field(description="User.")
    start: int | None = strawberry.field(description="Start time.", graphql_type=Time | None)
    end: int | None = strawberry.field(description="End time.", graphql_type=Time | None)
    duration: float | None = strawberry.field(description="Duration in seconds.")
    exit_code: int | None = strawberry.field(description="Exit status.")
    status: RunStatus = strawberry.field(description="SUCCEEDED, FAILED or UNKNOWN.")
    origin: str | None = strawberry.field(
        description="How it was recorded: `trace` (ursprung run) or `audit` (defined).")
    params: list[KeyValue] = strawberry.field(description="Parameters, by name.")
    environment: list[KeyValue] = strawberry.field(
        description="Software environment: interpreter versions, Python distributions.")
    metrics: list[KeyValue] = strawberry.field(description="Metrics the run reported.")
    summary: strawberry.Private[RunSummary]

    @classmethod
    def of(cls, r: RunSummary) -> Run:
        return cls(id=global_id("Run", r.key), key=r.key, run_id=r.id, pipeline=r.pipeline,
                   command=r.command, argv=list(r.argv), cwd=r.cwd, host=r.host, user=r.user,
                   start=r.start, end=r.end, duration=r.duration, exit_code=r.exit_code,
                   status=RunStatus(status_of(r)), origin=r.origin, params=_pairs(r.params),
                   environment=_pairs(r.environment), metrics=_pairs(r.metrics), summary=r)

    @strawberry.field(description="Files it read before writing them (data, not software).")
    async def inputs(self, info: Info) -> list[RunFile]:
        return [RunFile.of(f) for f in (await info.context.run_facts(self.summary)).inputs]

    @strawberry.field(description="Files it wrote and left in place.")
    async def outputs(self, info: Info) -> list[RunFile]:
        return [RunFile.of(f) for f in (await info.context.run_facts(self.summary)).outputs]

    @strawberry.field(description="Files it wrote and then deleted or renamed away.")
    async def intermediates(self, info: Info) -> list[RunFile]:
        facts = await info.context.run_facts(self.summary)
        return [RunFile.of(f) for f in facts.intermediates]

    @strawberry.field(description="Programs and scripts it executed.")
    async def programs(self, info: Info) -> list[RunFile]:
        return [RunFile.of(f) for f in (await info.context.run_facts(self.summary)).programs]

    @strawberry.field(description="How many files of the software environment it read.")
    async def environment_files(self, info: Info) -> int:
        return (await info.context.run_facts(self.summary)).environment_files

    @strawberry.field(description="Its processes (steps), by start.")
    async def processes(self, info: Info) -> list[RunStep]:
        facts = await info.context.run_facts(self.summary)
        return [RunStep.of(p) for p in facts.processes]

    @strawberry.field(description="False when events of the run may be missing (capture "
                                  "gaps of the run or of its host while it ran).")
    async def complete(self, info: Info) -> bool:
        return (await info.context.run_facts(self.summary)).complete

    @strawberry.field(description="The capture gaps of the run, by start.")
    async def gaps(self, info: Info) -> list[CaptureGap]:
        return capture_gaps((await info.context.run_facts(self.summary)).gaps)

    @strawberry.field(description="How it made its outputs: their upstream through its own "
                                  "processes.")
    async def lineage(self, info: Info, depth: _DEPTH = None,
                      max_nodes: _MAX_NODES = None) -> Lineage:
        ctx = info.context
        depth = ctx.limits.default_lineage_depth if depth is None else depth
        if not 1 <= depth <= ctx.limits.max_lineage_depth:
            raise ApiError(f"depth must be between 1 and {ctx.limits.max_lineage_depth}")
        max_nodes = ctx.limits.default_max_nodes if max_nodes is None else max_nodes
        if not 1 <= max_nodes <= ctx.limits.max_nodes:
            raise ApiError(f"maxNodes must be between 1 and {ctx.limits.max_nodes}")
        view = await ctx.call(run_lineage, ctx.store, self.summary, classifier=ctx.classifier,
                              depth=depth, max_nodes=max_nodes, deadline=ctx.walk_deadline)
        return Lineage.of(ctx, view)


@strawberry.type(description="A pipeline: its name, how many runs it has, its last run.")
class Pipeline:
    name: str = strawberry.field(description="Pipeline name.")
    run_count: int = strawberry.field(description="Number of runs.")
    last_run: Run | None = strawberry.field(description="The run that started last.")


# --------------------------------------------------------------------------- connections


@strawberry.type(description="Where a page ends (Relay).")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether more follow.")
    end_cursor: str | None = strawberry.field(description="Pass as `after` for the next page.")


SearchResult = Annotated[File | Process | Run, strawberry.union(
    "SearchResult", description="A file, a process or a run.")]


@strawberry.type(description="One search hit and its cursor.")
class SearchEdge:
    cursor: str = strawberry.field(description="Cursor of this hit.")
    node: SearchResult = strawberry.field(description="The hit.")


@strawberry.type(description="A page of search hits (Relay connection).")
class SearchConnection:
    edges: list[SearchEdge] = strawberry.field(description="The hits of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page ends.")


@strawberry.type(description="One run and its cursor.")
class RunEdge:
    cursor: str = strawberry.field(description="Cursor of this run.")
    node: Run = strawberry.field(description="The run.")


@strawberry.type(description="A page of runs, oldest first (Relay connection).")
class RunConnection:
    edges: list[RunEdge] = strawberry.field(description="The runs of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page ends.")
    total_count: int = strawberry.field(description="Runs matching the filters, all pages.")


# --------------------------------------------------------------------------- comparison


@strawberry.type(description="A name both runs have, with each one's value.")
class ValueChange:
    name: str = strawberry.field(description="The name.")
    a: str = strawberry.field(description="Value in run A.")
    b: str = strawberry.field(description="Value in run B.")


@strawberry.type(description="A name only one run has.")
class OneSidedEntry:
    name: str = strawberry.field(description="The name.")
    value: str = strawberry.field(description="Its value.")


@strawberry.type(description="A comparison section of values: same, changed, only in A, "
                             "only in B.")
class ValueComparison:
    same: list[ValueChange] = strawberry.field(description="Equal in both runs.")
    changed: list[ValueChange] = strawberry.field(description="Different values.")
    only_a: list[OneSidedEntry] = strawberry.field(description="Only run A has it.")
    only_b: list[OneSidedEntry] = strawberry.field(description="Only run B has it.")

    @classmethod
    def of(cls, s: ValueSection) -> ValueComparison:
        def pair(e: ValueEntry) -> ValueChange:
            return ValueChange(name=e.name, a=str(e.a), b=str(e.b))

        def one(e: OneSidedValue) -> OneSidedEntry:
            return OneSidedEntry(name=e.name, value=str(e.value))
        return cls(same=[pair(e) for e in s.same], changed=[pair(e) for e in s.changed],
                   only_a=[one(e) for e in s.only_a], only_b=[one(e) for e in s.only_b])


@strawberry.type(description="What a comparison shows of one side's file.")
class FileState:
    path: str | None = strawberry.field(description="Absolute path.")
    sha256: str | None = strawberry.field(description="Content hash.")
    size: int | None = strawberry.field(description="Size in bytes.")
    mtime: int | None = strawberry.field(description="Modification time.",
                                         graphql_type=Time | None)
    prior_write: int | None = strawberry.field(
        description="Last write anyone made before the run read it.", graphql_type=Time | None)
    written: int | None = strawberry.field(description="The run's last write.",
                                           graphql_type=Time | None)

    @classmethod
    def of(cls, v: FileValue) -> FileState:
        return cls(path=v.path, sha256=v.sha256, size=v.size, mtime=v.mtime,
                   prior_write=v.prior_write, written=v.written)


@strawberry.type(description="A file of both runs.")
class FileChange:
    name: str = strawberry.field(description="Name it was matched by.")
    match: str = strawberry.field(description="How: relative, absolute or basename.")
    basis: str = strawberry.field(
        description="What judged the content: sha256, size+mtime, prior write, write time.")
    a: FileState = strawberry.field(description="The file in run A.")
    b: FileState = strawberry.field(description="The file in run B.")

    @classmethod
    def of(cls, e: FileEntry) -> FileChange:
        return cls(name=e.name, match=e.match, basis=e.basis, a=FileState.of(e.a),
                   b=FileState.of(e.b))


@strawberry.type(description="A file only one run has.")
class OneSidedFileEntry:
    name: str = strawberry.field(description="Its name (relative path, else absolute).")
    value: FileState = strawberry.field(description="The file.")

    @classmethod
    def of(cls, e: OneSidedFile) -> OneSidedFileEntry:
        return cls(name=e.name, value=FileState.of(e.value))


@strawberry.type(description="A comparison section of files: same, changed, only in A, "
                             "only in B.")
class FileComparison:
    same: list[FileChange] = strawberry.field(description="Same content in both runs.")
    changed: list[FileChange] = strawberry.field(description="Different content.")
    only_a: list[OneSidedFileEntry] = strawberry.field(description="Only run A has it.")
    only_b: list[OneSidedFileEntry] = strawberry.field(description="Only run B has it.")

    @classmethod
    def of(cls, s: FileSection) -> FileComparison:
        return cls(same=[FileChange.of(e) for e in s.same],
                   changed=[FileChange.of(e) for e in s.changed],
                   only_a=[OneSidedFileEntry.of(e) for e in s.only_a],
                   only_b=[OneSidedFileEntry.of(e) for e in s.only_b])


@strawberry.type(description="A changed fact upstream of a changed output.")
class ExplainingFact:
    section: str = strawberry.field(description="inputs, params, programs or environment.")
    name: str = strawberry.field(description="Its name in that section of the comparison.")
    change: str = strawberry.field(description="changed, only_a or only_b.")
    a_distance: int | None = strawberry.field(
        description="Hops from the output to it in run A (null: not upstream there).")
    b_distance: int | None = strawberry.field(
        description="Hops from the output to it in run B (null: not upstream there).")
    a_via: str | None = strawberry.field(
        description="Command line of the nearest process of run A that used it.")
    b_via: str | None = strawberry.field(
        description="Command line of the nearest process of run B that used it.")


@strawberry.type(description="Why an output changed: the changed facts on its upstream.")
class Explanation:
    output: str = strawberry.field(description="The changed output (its comparison name).")
    facts: list[ExplainingFact] = strawberry.field(
        description="Changed facts upstream of it within each run, nearest first; empty "
                    "when nothing upstream of it changed.")


@strawberry.type(description="Explanations of every changed output.")
class Explanations:
    items: list[Explanation] = strawberry.field(description="One per changed output.")
    truncated: bool = strawberry.field(description="True when a walk stopped early.")
    reason: str | None = strawberry.field(description="Why, if one did.")

    @classmethod
    def of(cls, e: ExplanationsResult) -> Explanations:
        return cls(items=[Explanation(output=i.output, facts=[
            ExplainingFact(section=f.section, name=f.name, change=f.change,
                           a_distance=f.a_distance, b_distance=f.b_distance, a_via=f.a_via,
                           b_via=f.b_via) for f in i.facts]) for i in e.items],
            truncated=e.truncated, reason=e.reason)


@strawberry.type(description="Two runs side by side, section by section (`runs compare`).")
class RunComparison:
    a: Run = strawberry.field(description="Run A.")
    b: Run = strawberry.field(description="Run B.")
    differs: bool = strawberry.field(description="Whether any section has a difference.")
    params: ValueComparison = strawberry.field(description="Parameters.")
    inputs: FileComparison = strawberry.field(description="Input files.")
    outputs: FileComparison = strawberry.field(description="Output files.")
    programs: FileComparison = strawberry.field(description="Programs and scripts.")
    environment: ValueComparison = strawberry.field(description="Software environment.")
    metrics: ValueComparison = strawberry.field(description="Metrics.")
    exit: ValueComparison = strawberry.field(description="Exit status.")
    duration: ValueComparison = strawberry.field(
        description="Duration in seconds (same within max(0.5 s, 10 %)).")
    result: strawberry.Private[object]

    @strawberry.field(description="For each changed output, the changed inputs, parameters, "
                                  "programs and environment upstream of it, nearest first.")
    async def explanations(self, info: Info) -> Explanations:
        ctx = info.context
        # half the budget kept for what follows the walks: the nodes of hundreds of walks,
        # matching every changed fact against every output's upstream
        found = await ctx.call(explain, ctx.store, self.a.summary, self.b.summary,
                               self.result, classifier=ctx.classifier,
                               max_nodes=ctx.limits.default_max_nodes,
                               deadline=ctx.deadline - ctx.limits.time_budget / 2)
        ctx.truncated += found.truncated
        return Explanations.of(found)


# --------------------------------------------------------------------------- query


_STATUS: dict[RunStatus, Status] = {
    RunStatus.SUCCEEDED: "succeeded", RunStatus.FAILED: "failed", RunStatus.UNKNOWN: "unknown"}


def _page(ctx: Context, first: int | None) -> int:
    first = ctx.limits.default_page if first is None else first
    if not 1 <= first <= ctx.limits.max_page:
        raise ApiError(f"first must be between 1 and {ctx.limits.max_page}")
    return first


def _text(value: str, name: str) -> str:
    """A string argument, refused when it is too long or holds a NUL (no path, command
    line or id does; the store's parameter header could not carry it)."""
    if len(value) > 1000:
        raise ApiError(f"{name} is longer than 1000 characters")
    if "\x00" in value:
        raise ApiError(f"{name} holds a NUL character")
    return value


def _opt(value: str | None, name: str) -> str | None:
    return None if value is None else _text(value, name)


async def _find_run(ctx: Context, ref: str) -> RunSummary:
    _text(ref, "run id")
    try:
        return await ctx.call(find_run, ctx.store, ref)
    except AmbiguousRun as exc:
        raise ApiError(str(exc), "AMBIGUOUS") from exc
    except LookupError as exc:
        raise ApiError(f"no run {ref!r}", "NOT_FOUND") from exc


@strawberry.type(description="Provenance of files, processes and pipeline runs (read-only).")
class Query:
    @strawberry.field(description="A file by path (and host, when several hosts have it).")
    async def file(self, info: Info,
                   path: Annotated[str, strawberry.argument(description="Absolute path.")],
                   host: Annotated[str | None, strawberry.argument(
                       description="Host or shared file system of the file.")] = None,
                   ) -> File | None:
        ctx = info.context
        try:
            return File.of(await ctx.call(file_node, ctx.store, _text(path, "path"),
                                          _opt(host, "host")))
        except lineage_q.AmbiguousPath as exc:
            raise ApiError(str(exc).replace("--host", "host"), "AMBIGUOUS") from exc
        except LookupError:
            return None

    @strawberry.field(description="A process by its global id or graph key.")
    async def process(self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(
            description="Global id or graph key (`p:host:pid:start`).")]) -> Process | None:
        ctx = info.context
        key = key_of(_text(id, "id"), "Process")
        n = await ctx.nodes.load(key)
        return Process.of(n) if isinstance(n, ProcessNode) else None

    @strawberry.field(description="Any object by its global id (Relay).")
    async def node(self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(
            description="A global id.")]) -> Node | None:
        ctx = info.context
        try:
            type_name, key = from_base64(_text(id, "id"))
        except Exception as exc:
            raise ApiError(f"not a global id: {id!r}") from exc
        if type_name == "Run":
            try:
                run = await ctx.call(find_run, ctx.store, key.removeprefix("run:"))
            except LookupError:
                return None
            return Run.of(run) if run.key == key else None
        if type_name not in _TYPE_OF_KIND.values():
            raise ApiError(f"no type {type_name!r} has global ids")
        n = await ctx.nodes.load(key)
        if n is None or _TYPE_OF_KIND[n.kind] != type_name:
            return None
        node: Node = graph_node(n)
        return node

    @strawberry.field(description="Files by path (substring, or glob with * ? [..]), "
                                  "processes by command line or executable, runs by "
                                  "pipeline or parameter (`name=value`).")
    async def search(self, info: Info,
                     text: Annotated[str, strawberry.argument(
                         description="What to look for.")],
                     kinds: Annotated[list[SearchKind] | None, strawberry.argument(
                         description="What to look among (default: all).")] = None,
                     first: Annotated[int | None, strawberry.argument(
                         description="Page size (default 20, at most 100).")] = None,
                     after: Annotated[str | None, strawberry.argument(
                         description="Cursor to continue after.")] = None,
                     ) -> SearchConnection:
        ctx = info.context
        size = _page(ctx, first)
        try:
            page = await ctx.call(search, ctx.store, _text(text, "text"),
                                  kinds=None if kinds is None else [k.value for k in kinds],
                                  first=size, after=_opt(after, "after"))
        except ValueError as exc:
            raise ApiError(str(exc)) from exc
        edges = []
        for hit in page.hits:
            n = hit.node
            node: File | Process | Run = (Run.of(n) if isinstance(n, RunSummary)
                                          else File.of(n) if isinstance(n, FileNode)
                                          else Process.of(n))
            edges.append(SearchEdge(cursor=hit.cursor, node=node))
        return SearchConnection(edges=edges, page_info=PageInfo(
            has_next_page=page.has_next, end_cursor=page.end_cursor))

    @strawberry.field(description="Time-respecting lineage of a node (by id) or a file (by "
                                  "path and host), exactly as `ursprung lineage`.")
    async def lineage(self, info: Info,
                      id: Annotated[strawberry.ID | None, strawberry.argument(
                          description="Global id or graph key of the start node.")] = None,
                      path: Annotated[str | None, strawberry.argument(
                          description="Path of the start file (instead of id).")] = None,
                      host: Annotated[str | None, strawberry.argument(
                          description="Host of that file, when several have it.")] = None,
                      direction: _DIRECTION = Direction.UPSTREAM, depth: _DEPTH = None,
                      as_of: _AS_OF = None, kinds: _KINDS = None,
                      include_system: _SYSTEM = False,
                      max_nodes: _MAX_NODES = None) -> Lineage:
        ctx = info.context
        if (id is None) == (path is None):
            raise ApiError("give either id or path")
        if id is not None:
            key = key_of(_text(id, "id"), *_TYPE_OF_KIND.values())
        else:
            assert path is not None
            try:
                key = await ctx.call(lineage_q.find_file, ctx.store, _text(path, "path"),
                                     _opt(host, "host"))
            except lineage_q.AmbiguousPath as exc:
                raise ApiError(str(exc).replace("--host", "host"), "AMBIGUOUS") from exc
            except LookupError as exc:
                raise ApiError(str(exc), "NOT_FOUND") from exc
        return await _lineage_of(info, key, direction, depth, as_of, kinds, include_system,
                                 max_nodes)

    @strawberry.field(description="Runs, oldest first, filtered (Relay connection).")
    async def runs(self, info: Info,
                   pipeline: Annotated[str | None, strawberry.argument(
                       description="Only runs of this pipeline.")] = None,
                   status: Annotated[RunStatus | None, strawberry.argument(
                       description="Only runs that ended so.")] = None,
                   since: Annotated[int | None, strawberry.argument(
                       description="Only runs that started at or after this time.",
                       graphql_type=Time | None)] = None,
                   until: Annotated[int | None, strawberry.argument(
                       description="Only runs that started at or before this time.",
                       graphql_type=Time | None)] = None,
                   param: Annotated[str | None, strawberry.argument(
                       description="Only runs with this parameter value: `name=value`.")
                   ] = None,
                   first: Annotated[int | None, strawberry.argument(
                       description="Page size (default 20, at most 100).")] = None,
                   after: Annotated[str | None, strawberry.argument(
                       description="Cursor (a run id) to continue after.")] = None,
                   ) -> RunConnection:
        ctx = info.context
        size = _page(ctx, first)
        wanted: tuple[str, str] | None = None
        if param is not None:
            name, sep, value = _text(param, "param").partition("=")
            if not sep or not name:
                raise ApiError("param must be name=value")
            wanted = (name, value)
        where = RunFilter(pipeline=None if pipeline is None else _text(pipeline, "pipeline"),
                          status=None if status is None else _STATUS[status], since=since,
                          until=until, param=wanted)
        try:
            page = await ctx.call(find_runs, ctx.store, where, first=size,
                                  after=_opt(after, "after"))
        except ValueError as exc:
            raise ApiError(str(exc)) from exc
        return RunConnection(
            edges=[RunEdge(cursor=r.id, node=Run.of(r)) for r in page.runs],
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
            total_count=page.total)

    @strawberry.field(description="One run by id (or a unique prefix of one).")
    async def run(self, info: Info, id: Annotated[str, strawberry.argument(
            description="Run id or a unique prefix.")]) -> Run | None:
        try:
            return Run.of(await _find_run(info.context, id))
        except ApiError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise

    @strawberry.field(description="Pipelines with their number of runs and last run.")
    async def pipelines(self, info: Info) -> list[Pipeline]:
        ctx = info.context
        return [Pipeline(name=p.name, run_count=p.runs,
                         last_run=None if p.last_run is None else Run.of(p.last_run))
                for p in await ctx.call(list_pipelines, ctx.store)]

    @strawberry.field(description="What differs between two runs (`runs compare`), with "
                                  "explanations of each changed output.")
    async def compare_runs(self, info: Info,
                           a: Annotated[str, strawberry.argument(
                               description="Run A: id or unique prefix.")],
                           b: Annotated[str, strawberry.argument(
                               description="Run B: id or unique prefix.")]) -> RunComparison:
        ctx = info.context
        run_a, run_b = await _find_run(ctx, a), await _find_run(ctx, b)
        # together: the loader reads both runs' facts in one batch
        facts_a, facts_b = await asyncio.gather(ctx.run_facts(run_a), ctx.run_facts(run_b))
        result = compare(facts_a, facts_b)
        return RunComparison(
            a=Run.of(run_a), b=Run.of(run_b), differs=differs(result),
            params=ValueComparison.of(result.params),
            inputs=FileComparison.of(result.inputs), outputs=FileComparison.of(result.outputs),
            programs=FileComparison.of(result.programs),
            environment=ValueComparison.of(result.environment),
            metrics=ValueComparison.of(result.metrics), exit=ValueComparison.of(result.exit),
            duration=ValueComparison.of(result.duration), result=result)

    anomalies: AnomalyReport = strawberry.field(
        resolver=resolve_anomalies,
        description="Rare and new behaviour of a Winnower model, rarest first, with the node "
                    "or run it came from and concrete instances (`ursprung winnower "
                    "anomalies`).")


    @strawberry.field(description="The auditor reports (cypher/*.cypher) and their "
                                  "parameters.")
    async def reports(self, info: Info) -> list[Report]:
        return await info.context.call(list_reports)

    @strawberry.field(description="Run an auditor report with parameters (never pasted "
                                  "into its Cypher).")
    async def run_report(self, info: Info, name: NAME, params: PARAMS = None,
                         max_rows: MAX_ROWS = None) -> ReportResult:
        return await run_report_api(info, name, params, max_rows)


#: How many distinct query texts keep their parsed and validated document.
DOCUMENT_CACHE = 256


def build_schema(limits: Limits | None = None) -> strawberry.Schema:
    """The schema with the validation of ``limits`` (tokens at parse time; depth, aliases
    and cost in one rule: :mod:`.limits`). Parsed and validated documents are cached by
    their text (and the token limit and rules, which are part of the cache keys): an
    analyst's or the GUI's repeated query skips both steps."""
    limits = limits or Limits()
    rule = limits_rule(limits)

    def tokens() -> MaxTokensLimiter:
        return MaxTokensLimiter(max_token_count=limits.max_tokens)

    def validation() -> AddValidationRules:
        return AddValidationRules([rule])

    def parsed() -> ParserCache:
        return ParserCache(maxsize=DOCUMENT_CACHE)

    def validated() -> ValidationCache:
        return ValidationCache(maxsize=DOCUMENT_CACHE)

    return strawberry.Schema(
        query=Query, types=[File, Process, Pipe, Endpoint, Run],
        extensions=[tokens, validation, parsed, validated],
        config=StrawberryConfig(scalar_map={Time: TIME_SCALAR}))
