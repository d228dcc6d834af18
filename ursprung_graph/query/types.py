"""What the query layer answers: lineage, runs, run facts and run comparisons.

These frozen structs are the contract the CLI and the API read. ``msgspec.to_builtins`` (or
``msgspec.json.encode``) gives their JSON form, the shape ``--json`` prints: field names are
the JSON keys. Fields that default to None with ``omit_defaults`` are left out when None;
fields that may be ``UNSET`` are left out when unset (the fact does not apply: a file with
no observed version has no ``sha256`` key at all, one above the hashing limit has
``"sha256": null``). Times are epoch nanoseconds.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

# --------------------------------------------------------------------------- lineage


class ProcessNode(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    kind: Literal["process"]
    host: str | None = None
    pid: int | None = None
    exe: str | None = None
    cmdline: str | None = None
    cwd: str | None = None
    start: int | None = None
    end: int | None = None
    exit_code: int | None = None


class FileNode(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    kind: Literal["file"]
    path: str | None = None
    host: str | None = None
    fs: str | None = None


class PipeNode(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    kind: Literal["pipe"]
    host: str | None = None


class EndpointNode(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    kind: Literal["endpoint"]
    host: str | None = None
    family: str | None = None
    address: str | None = None
    port: int | None = None


LineageNode = ProcessNode | FileNode | PipeNode | EndpointNode


class LineageEdge(msgspec.Struct, frozen=True):
    """``kind`` is the relationship type (``WROTE``, ``READ``, ...); ``first`` and ``last``
    bound when it happened."""

    source: str
    target: str
    kind: str
    first: int
    last: int


class GapInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """A capture gap (``Gap`` node): on ``host`` from ``start`` to ``end`` (None: still
    open) events may be missing; ``source`` says how it is known (``schema.event.
    GAP_SOURCES``), ``count`` how many were lost when known, ``run`` the run it happened in."""

    key: str
    host: str
    source: str
    start: int
    end: int | None = None
    count: int | None = None
    reason: str | None = None
    run: str | None = None


class Lineage(msgspec.Struct, frozen=True):
    """``complete`` is False when the walk crosses capture gaps (``gaps``): a gap on the
    host of a node of the answer overlapping the answer's time window."""

    root: str
    direction: Literal["up", "down"]
    nodes: list[LineageNode] = msgspec.field(default_factory=list)
    edges: list[LineageEdge] = msgspec.field(default_factory=list)
    complete: bool = True
    gaps: list[GapInfo] = msgspec.field(default_factory=list)


# --------------------------------------------------------------------------- runs


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One ``PipelineRun``; ``duration`` in seconds."""

    id: str
    pipeline: str | None = None
    command: str | None = None
    argv: list[str] = msgspec.field(default_factory=list)
    cwd: str | None = None
    host: str | None = None
    user: str | None = None
    start: int | None = None
    end: int | None = None
    duration: float | None = None
    exit_code: int | None = None
    origin: str | None = None
    params: dict[str, str] = msgspec.field(default_factory=dict)
    environment: dict[str, str] = msgspec.field(default_factory=dict)
    metrics: dict[str, str] = msgspec.field(default_factory=dict)
    key: str
    root: str | None = None


class FileVersion(msgspec.Struct, frozen=True):
    """The content of a file as a run observed it (``sha256`` None above the hashing
    limit); ``stored`` when the content store has the bytes."""

    sha256: str | None
    size: int | None
    mtime: int | None
    stored: bool


class RunFileFact(msgspec.Struct, frozen=True, omit_defaults=True):
    """A file of a run: ``rel`` is its path relative to the run's working directory (None
    outside it); the version fields are set when the run observed a version; ``first_read``
    and ``prior_write`` (the last write anyone made at or before that read, None if none was
    seen) when the run read it; ``written`` is the run's last write."""

    path: str
    rel: str | None
    sha256: str | None | UnsetType = UNSET
    size: int | None | UnsetType = UNSET
    mtime: int | None | UnsetType = UNSET
    stored: bool | UnsetType = UNSET
    first_read: int | None = None
    prior_write: int | None | UnsetType = UNSET
    written: int | None = None


class ProcessFact(msgspec.Struct, frozen=True):
    """A process (step) of a run; ``command`` is its command line, else its program."""

    pid: int
    start: int | None
    end: int | None
    exit_code: int | None
    command: str | None
    cwd: str | None


class RunFacts(RunSummary, frozen=True, kw_only=True):
    """Everything about one run: its summary, its files and its processes;
    ``environment_files`` counts the files of the software environment it read."""

    inputs: list[RunFileFact] = msgspec.field(default_factory=list)
    outputs: list[RunFileFact] = msgspec.field(default_factory=list)
    intermediates: list[RunFileFact] = msgspec.field(default_factory=list)
    programs: list[RunFileFact] = msgspec.field(default_factory=list)
    environment_files: int = 0
    processes: list[ProcessFact] = msgspec.field(default_factory=list)
    #: False when events of the run may be missing: the capture ``gaps`` of the run or of
    #: its host during it.
    complete: bool = True
    gaps: list[GapInfo] = msgspec.field(default_factory=list)


class RunProcess(msgspec.Struct, frozen=True):
    """A process of a run as the file classification needs it (``RUN_PROCESSES``)."""

    key: str
    pid: int
    start: int | None = None
    end: int | None = None
    exit_code: int | None = None
    exe: str | None = None
    argv: list[str] | None = None
    cmdline: str | None = None
    cwd: str | None = None


class CandidateProcess(msgspec.Struct, frozen=True):
    """A process that may root a run (``CANDIDATE_PROCESSES``); ``first``/``last``: when it
    was first and last seen."""

    key: str
    host: str
    pid: int
    cmdline: str | None = None
    argv: list[str] | None = None
    cwd: str | None = None
    start: int | None = None
    end: int | None = None
    exit_code: int | None = None
    uid: int | None = None
    first: int | None = None
    last: int | None = None


class Rename(msgspec.Struct, frozen=True):
    """A ``RENAMED_TO`` edge from file ``src`` to file ``key`` at ``path``."""

    src: str
    key: str
    path: str
    first: int
    last: int


# --------------------------------------------------------------------------- comparison

#: A compared value: a parameter, environment or metric value, an exit code, seconds.
Value = str | int | float


class RunHead(msgspec.Struct, frozen=True):
    """Which run a side of a comparison is."""

    id: str
    pipeline: str | None
    command: str | None
    cwd: str | None
    host: str | None
    start: int | None
    end: int | None
    origin: str | None


class ValueEntry(msgspec.Struct, frozen=True):
    """A name both runs have, with each one's value."""

    name: str
    a: Value
    b: Value


class OneSidedValue(msgspec.Struct, frozen=True):
    """A name only one run has."""

    name: str
    value: Value


class FileValue(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a comparison shows of one side's file."""

    path: str | None = None
    sha256: str | None = None
    size: int | None = None
    mtime: int | None = None
    prior_write: int | None = None
    written: int | None = None


class FileEntry(msgspec.Struct, frozen=True):
    """A file of both runs: how it was matched (``relative``, ``absolute``, ``basename``)
    and on what basis its content was judged (``sha256``, ``size+mtime``, ``prior write``,
    ``write time``)."""

    name: str
    match: str
    basis: str
    a: FileValue
    b: FileValue


class OneSidedFile(msgspec.Struct, frozen=True):
    name: str
    value: FileValue


class ValueSection(msgspec.Struct, frozen=True):
    same: list[ValueEntry] = msgspec.field(default_factory=list)
    changed: list[ValueEntry] = msgspec.field(default_factory=list)
    only_a: list[OneSidedValue] = msgspec.field(default_factory=list)
    only_b: list[OneSidedValue] = msgspec.field(default_factory=list)


class FileSection(msgspec.Struct, frozen=True):
    same: list[FileEntry] = msgspec.field(default_factory=list)
    changed: list[FileEntry] = msgspec.field(default_factory=list)
    only_a: list[OneSidedFile] = msgspec.field(default_factory=list)
    only_b: list[OneSidedFile] = msgspec.field(default_factory=list)


Section = ValueSection | FileSection


class Comparison(msgspec.Struct, frozen=True):
    """Two runs side by side, section by section (see :mod:`.compare`)."""

    a: RunHead
    b: RunHead
    params: ValueSection
    inputs: FileSection
    outputs: FileSection
    programs: FileSection
    environment: ValueSection
    metrics: ValueSection
    exit: ValueSection
    duration: ValueSection

    def sections(self) -> tuple[tuple[str, Section], ...]:
        """(name, section) in the order of the JSON form."""
        return (("params", self.params), ("inputs", self.inputs),
                ("outputs", self.outputs), ("programs", self.programs),
                ("environment", self.environment), ("metrics", self.metrics),
                ("exit", self.exit), ("duration", self.duration))
