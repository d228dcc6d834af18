"""`ursprung run`: trace a command into the graph and record it as a pipeline run.

1. The command runs under strace (:mod:`.runner`); its events go into the store in chunks
   while it runs, and into the run's ledger (:mod:`.ledger`).
   While it runs, :mod:`.prehash` hashes the files it wrote or read once they are quiet;
   each slice of those hashes is queued as ``version`` events (the content the run observed
   at the time of the hash), after a first ``run`` event that announces the run (its
   ``PipelineRun`` node, without an end yet, which their ``OBSERVED`` edges need).
2. When it has ended, its inputs, outputs and programs are taken from the ledger by the
   query layer's rules (:func:`ursprung_graph.query.runs.classify_files`: one definition
   for traced runs, stored runs and runs from audit data), without reading the graph.
3. While the last events are being stored, each of those files gets its version: an early
   one that ``stat`` proves still holds is already stored; any other file is hashed now
   (streaming, with the size limit) and queued as a ``version`` event at the run's end,
   after the final ``run`` event (end, exit status, member processes and the environment:
   interpreter versions, Python distributions the run imported, asked meanwhile). The run's
   version of a file is the latest it observed (:func:`ursprung_graph.query.runs.run_files`),
   so an early one that no longer held is superseded. Files matching the content patterns
   are copied into the content store (at most ``store_max_files`` per run: programs first,
   then inputs, then outputs).
4. :func:`record_run` returns once the store has acknowledged all of it.
"""

from __future__ import annotations

import os
import pwd
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ..collectors.trace.launch import Launched, TraceUnavailable
from ..collectors.trace.runner import CHUNK_EVENTS, CHUNK_SECONDS, Tracer, TraceResult
from ..config import RunsConfig
from ..content import ContentStore
from ..content.hashing import FileVersion
from ..ingest.runs import params_of
from ..query.classify import Classifier, matcher
from ..query.runs import RunFiles
from ..schema.event import (
    SCHEMA_VERSION,
    Event,
    FileRef,
    GapWindow,
    Kind,
    ProcessInfo,
    RunInfo,
    VersionInfo,
)
from ..schema.names import name_from_os
from ..store.base import GraphStore
from .environment import environment_of
from .ledger import RunLedger
from .prehash import EarlyHashes, Hashed
from .sinks import StoreSink

if TYPE_CHECKING:
    from ..collectors.ebpf.runner import EbpfTracer

#: Versions go to the store's queue in chunks of this many while the rest is hashed.
VERSION_CHUNK = 500


@dataclass(slots=True)
class RecordedRun:
    id: str
    trace: TraceResult
    versions: int
    stored: int
    error: str | None = None
    hashed_early: int = 0  # versions whose hash was taken while the command ran
    stored_early: int = 0  # of them, stored while it ran
    after: int = 0  # ns from the command's end until everything was stored

    @property
    def returncode(self) -> int:
        return self.trace.returncode


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def record_run(store: GraphStore | Callable[[], GraphStore], argv: Sequence[str], *,
               host: str, pipeline: str | None,
               params: dict[str, str] | None = None, config: RunsConfig | None = None,
               content_root: Path | None = None, cwd: str | None = None,
               env: dict[str, str] | None = None, live: bool = True,
               run_id: str | None = None, check: bool = True,
               cache_dir: Path | None = None, tracer: str = "strace",
               observe: Callable[[Sequence[Event]], None] | None = None,
               stdout: int | None = None, launched: Launched | None = None) -> RecordedRun:
    """Trace ``argv`` and record it as a run. Returns when everything is in the store.

    ``store`` may be a function that opens it: it is called once the command has started,
    and a failure is reported like a failed write (``RecordedRun.error``). ``tracer``:
    ``strace``, ``ebpf``, or ``auto`` (eBPF where it works, else strace). ``launched``: the
    command already started under strace (:func:`~ursprung_graph.collectors.trace.launch.
    launch`, with these ``argv``, ``cwd``, ``env`` and ``stdout``), which is then followed."""
    config = config or RunsConfig()
    run_id = run_id or uuid.uuid4().hex
    cwd = os.path.abspath(cwd or os.getcwd())
    environ = env if env is not None else dict(os.environ)
    # Names in the text form events have (schema/names.py), the command's bytes kept.
    names, here = [name_from_os(a) for a in argv], name_from_os(cwd)
    values = {k: name_from_os(v) for k, v in environ.items()}
    all_params = params_of(names, values, config.param_env)
    all_params.update(params or {})
    info = RunInfo(id=run_id, pipeline=pipeline or _default_pipeline(names), argv=names,
                   cwd=here, user=_user(), origin="trace", params=all_params)
    ledger = RunLedger()
    classifier = Classifier(config.system_prefixes, config.ignore_patterns)
    running = LiveRun(info, host)
    early = EarlyHashes(config.hash_limit, classifier, here,
                        publish=running.publish if live else None)
    sink = StoreSink(store, observe)

    def seen(events: list[Event]) -> None:
        ledger.add(events)
        early.observe(events)

    try:
        tracing, result = _trace(tracer, argv, sink, host=host, cwd=cwd, env=env,
                                 check=check, observe=seen, prepare=sink.open,
                                 stdout=stdout, attach=running.attach, launched=launched,
                                 chunk_events=CHUNK_EVENTS if live else 1 << 62,
                                 chunk_seconds=CHUNK_SECONDS if live else float("inf"))
    finally:
        early.stop()
    # The command has ended and its trace is parsed; the last events may still be on their
    # way to the store while the run's files are hashed.
    root_pid = result.root_pid if result.root_pid is not None else 0
    root_start = result.root_start if result.root_start is not None else result.start
    files = ledger.run_files(result.start, result.end, here, classifier)
    root = ProcessInfo(pid=root_pid, start=root_start)
    source = tracing.source
    events = RunEvents(source, host, run_id, root)

    info = msgspec.structs.replace(info, start=result.start, end=result.end,
                                   exit_code=result.returncode,
                                   members=sorted(result.members),
                                   environment=capture_gap(result))
    # Into the store's queue, after the trace's events (its processes and files): the run
    # (with its environment: the interpreters are asked for their versions while the files
    # are hashed), then the versions it observed, in chunks as they are hashed.
    cache = cache_dir / "interpreters.json" if cache_dir is not None else None
    gaps = run_gaps(result, run_id, source, host, root)
    if gaps:
        tracing.put(gaps)
    try:
        versions, stored, already = _queue_facts(tracing, files, config, content_root,
                                                 events, info, cache, early)
    except BaseException:
        tracing.wait_stored(result)  # what the run did is stored even so
        raise
    result = tracing.wait_stored(result)
    if result.sink_error is not None:
        return RecordedRun(run_id, result, 0, 0,
                           error=f"the trace could not be stored: {result.sink_error}")
    return RecordedRun(run_id, result, versions, stored, hashed_early=early.reused,
                       stored_early=already,
                       after=max(0, time.time_ns() - result.end))


#: The run's environment entry that says the trace is incomplete (records the kernel dropped).
CAPTURE_GAP = "ursprung.capture_gap"


def capture_gap(result: TraceResult) -> dict[str, str]:
    """``{CAPTURE_GAP: what was lost, when}`` if the tracer lost records, else nothing: a
    run with a gap in its trace says so wherever its environment is shown or compared."""
    if not result.lost:
        return {}
    first, last = min(ts for ts, _ in result.gaps), max(ts for ts, _ in result.gaps)
    return {CAPTURE_GAP: f"{result.lost} records lost in {len(result.gaps)} gaps between "
                         f"{first} and {last} (epoch ns)"}


def run_gaps(result: TraceResult, run_id: str, source: str, host: str,
             root: ProcessInfo) -> list[Event]:
    """The records the tracer lost, as capture gaps of the run (the eBPF tracer reported
    them as it went: the same gaps, now linked to the run)."""
    kind = "ebpf-lost" if source == "ebpf" else "trace-lost"
    return [Event(v=SCHEMA_VERSION, source=source, host=host, ts=ts, seq=f"run:{run_id}:gap:{i}",
                  kind=Kind.GAP, proc=root, gap=f"{count} records lost by the tracer",
                  window=GapWindow(source=kind, end=ts, count=count, run=run_id))
            for i, (ts, count) in enumerate(result.gaps)]


@dataclass(frozen=True, slots=True)
class RunEvents:
    """Makes the run's own events (``run`` and ``version``), from its tracer (``source``)
    and root process, with sequence names unique within the run."""

    source: str
    host: str
    run_id: str
    root: ProcessInfo

    def run(self, seq: str, ts: int, info: RunInfo) -> Event:
        return self._event(Kind.RUN, seq, ts, run=info)

    def version(self, seq: str, ts: int, path: str, v: FileVersion, *,
                stored: bool = False) -> Event:
        return self._event(Kind.VERSION, seq, ts, file=FileRef(path), version=VersionInfo(
            run=self.run_id, size=v.size, mtime=v.mtime, sha256=v.sha256, stored=stored))

    def _event(self, kind: Kind, seq: str, ts: int, **fields: Any) -> Event:
        return Event(v=SCHEMA_VERSION, source=self.source, host=self.host, ts=ts,
                     seq=f"run:{self.run_id}:{seq}", kind=kind, proc=self.root, **fields)


class LiveRun:
    """What a run stores while its command runs: the versions :mod:`.prehash` hashed, as
    ``version`` events at the time of their hash, into the tracer's queue (in order with
    the trace). The first slice is preceded by a ``run`` event that announces the run (the
    facts known at its start; no end, exit status or members yet), so that the versions'
    ``OBSERVED`` edges have their run; the run's last event completes it."""

    def __init__(self, info: RunInfo, host: str) -> None:
        self.info = info
        self.host = host
        self.tracer: Tracer | EbpfTracer | None = None
        self._events: RunEvents | None = None  # once the run is announced
        self._count = 0

    def attach(self, tracer: Tracer | EbpfTracer) -> None:
        """The tracer about to run the command (called before it runs)."""
        self.tracer = tracer

    def publish(self, hashed: list[Hashed]) -> bool:
        """Queue a slice of early hashes (from the hashing thread); False while the command's
        process is not known yet (the end stores them then)."""
        tracer = self.tracer
        root = None if tracer is None else tracer.root()
        if tracer is None or root is None or tracer.started is None:
            return False
        queued: list[Event] = []
        make = self._events
        if make is None:
            make = self._events = RunEvents(tracer.source, self.host, self.info.id,
                                            ProcessInfo(pid=root[0], start=root[1]))
            queued.append(make.run("start", tracer.started,
                                   msgspec.structs.replace(self.info, start=tracer.started)))
        for path, v, at in hashed:
            queued.append(make.version(f"e{self._count}", at, path, v))
            self._count += 1
        tracer.put(queued)
        return True


def _trace(mode: str, argv: Sequence[str], sink: StoreSink, *,
           attach: Callable[[Tracer | EbpfTracer], None], launched: Launched | None = None,
           **kw: Any) -> tuple[Tracer | EbpfTracer, TraceResult]:
    """Run the command under the chosen tracer (handed to ``attach`` before it runs);
    ``auto`` falls back to strace when eBPF cannot work here (not root, no bpftrace, the
    program does not load) before anything ran."""
    if launched is not None and mode != "strace":
        raise ValueError("a command launched under strace is traced by strace")
    if mode in ("ebpf", "auto"):
        from ..collectors.ebpf.runner import EbpfTracer

        try:
            ebpf = EbpfTracer(argv, sink, **kw)
            attach(ebpf)
            return ebpf, ebpf.run()
        except TraceUnavailable:
            if mode == "ebpf":
                raise
    elif mode != "strace":
        raise ValueError(f"unknown tracer {mode!r} (auto, ebpf or strace)")
    strace = Tracer(argv, sink, **kw)
    attach(strace)
    return strace, strace.run(launched)


def _queue_facts(tracer: Tracer | EbpfTracer, files: RunFiles, config: RunsConfig,
                 content_root: Path | None, events: RunEvents, info: RunInfo,
                 cache: Path | None, early: EarlyHashes) -> tuple[int, int, int]:
    """Queue the run (once its environment is known) and its versions at its end (as they
    are hashed, held back until the run is queued, whose node their edges need); returns
    how many versions, stored contents, and versions stored while the command ran."""
    assert info.end is not None
    end = info.end
    with ThreadPoolExecutor(max_workers=1) as pool:
        probing = pool.submit(environment_of, files, probe=True, cache=cache)
        held: list[Event] = []
        queued = False

        def put(versions: list[Event]) -> None:
            nonlocal queued
            if not queued and (probing.done() or not versions):
                environment = probing.result()
                tracer.put([events.run("run", end, msgspec.structs.replace(
                    info, environment={**environment, **info.environment}))])
                queued = True
            if queued:
                tracer.put([*held, *versions])
                held.clear()
            else:
                held.extend(versions)

        counts = _versions(files, config, content_root, events, end, put, early)
        put([])  # the run, if its environment came last, and what waited for it
    return counts


def _versions(files: RunFiles, config: RunsConfig, content_root: Path | None,
              events: RunEvents, end: int, put: Callable[[list[Event]], None],
              early: EarlyHashes) -> tuple[int, int, int]:
    """Each observed file's version now (programs, inputs, outputs), handed to ``put`` in
    chunks unless it was stored while the command ran, and the bytes of some of them in
    the content store (programs first). Returns how many versions, how many stored
    contents, and how many versions were stored while the command ran."""
    contents = ContentStore(content_root) if content_root is not None else None
    versions: list[Event] = []
    count = stored = already = 0
    for f in files.observed():
        v = early.version(f.path)
        if v is None:
            continue
        keep = False
        if (contents is not None and v.sha256 and v.size <= config.store_limit
                and stored < config.store_max_files
                and _matches(f.path, config.store_patterns)):
            keep = contents.put(f.path, v.sha256)
            stored += keep
        if not keep and early.stored(f.path, v):  # stored while the command ran
            count += 1
            already += 1
            continue
        versions.append(events.version(f"v{count}", end, f.path, v, stored=keep))
        count += 1
        if len(versions) >= VERSION_CHUNK:
            put(versions)
            versions = []
    if versions:
        put(versions)
    return count, stored, already


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    """Whether the file's name or its whole path matches one of the fnmatch ``patterns``."""
    test = matcher(patterns)
    return test(os.path.basename(path)) or test(path)


def _default_pipeline(argv: Sequence[str]) -> str:
    """Without --pipeline: the script's name (``python train.py`` -> ``train.py``), else the
    program's."""
    for arg in argv[1:]:
        if not arg.startswith("-") and ("/" in arg or "." in arg):
            return os.path.basename(arg)
        if not arg.startswith("-"):
            break
    return os.path.basename(argv[0])
