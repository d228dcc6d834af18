"""The rule engine: every rule against the event stream, in order; actions off the hot path.

The ingest path calls :meth:`RuleEngine.observe` with each batch once the store has it.
That only tests conditions (rules are indexed by the event kinds they can match, and each
test is one compiled function) and puts (rule, action, event) tasks into a bounded queue.
One worker thread runs the tasks in order: a failing task is retried with backoff, then
dead-lettered (a ``DeadLetter`` node with the reason, and a log line); failures are
counted in Prometheus metrics and never reach the ingest path. When the queue stays full
for ``put_timeout`` seconds the task is dead-lettered as well, so ingestion goes on.

When the worker is idle (and at :meth:`flush`), it defines the runs that RUN rules marked
and sets the run metrics of runs whose processes got metric records.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge

from ..content import ContentStore
from ..schema.event import SCHEMA_VERSION, DeadLetter, Event, Kind, ProcessInfo, RunInfo
from . import cypher as c
from . import model as m
from .actions import ActionError, Context, capture_records, handler
from .compile import compile_group
from .records import metric_name
from .sinks import local_state

log = logging.getLogger("ursprung.rules")

QUEUE_SIZE = 10000
PUT_TIMEOUT = 5.0
RETRIES = 3
RETRY_INITIAL = 0.2
IDLE_SECONDS = 0.5
#: Captured stdout lines kept until the run is flushed, at most.
MAX_CAPTURED = 100_000
#: The deferred work runs at least this often (seconds) while tasks keep coming.
DEFERRED_EVERY = 2.0


class Matcher:
    """Rules indexed by the kinds of event they can match: per kind, one compiled function
    that tests all of that kind's rules (None when no rule can match it)."""

    def __init__(self, rules: Sequence[m.Rule]) -> None:
        self.rules = list(rules)
        self.by_kind: dict[Kind, Callable[[Event], list[int]] | None] = {}
        for kind in Kind:
            conds = [(i, r.condition) for i, r in enumerate(self.rules)
                     if r.kinds is None or kind in r.kinds]
            self.by_kind[kind] = compile_group(conds) if conds else None

    def matches(self, events: Iterable[Event]) -> Iterator[tuple[int, Event]]:
        """(rule index, event) for each match, in event order then rule order."""
        by_kind = self.by_kind
        for ev in events:
            group = by_kind[ev.kind]
            if group is not None:
                for i in group(ev):
                    yield i, ev


class RuleMetrics:
    """Prometheus metrics of the engine (in a worker's registry, or its own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.matched = Counter("ursprung_rules_matched", "Events a rule matched", ["rule"],
                               registry=r).labels
        self.actions = Counter("ursprung_rules_actions", "Action runs by result",
                               ["action", "result"], registry=r).labels  # ok|retried|dead
        self.dropped = Counter("ursprung_rules_queue_full",
                               "Tasks dead-lettered because the action queue stayed full",
                               registry=r)
        self.depth = Gauge("ursprung_rules_queue_depth", "Tasks waiting", registry=r)

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels or None) or 0.0


@dataclass(frozen=True, slots=True)
class Task:
    rule: int
    action: int
    event: Event


_STOP = object()


class RuleEngine:
    """Rules on an event stream. ``store`` is the graph store or a function that opens it
    (``ursprung run`` connects while the command runs); ``home`` holds the rule state and
    content store."""

    def __init__(self, rules: Sequence[m.Rule], store: Any, home: Path, *,
                 metrics: RuleMetrics | None = None, queue_size: int = QUEUE_SIZE,
                 put_timeout: float = PUT_TIMEOUT, retries: int = RETRIES,
                 retry_initial: float = RETRY_INITIAL) -> None:
        self.rules = list(rules)
        self.matcher = Matcher(self.rules)
        self.metrics = metrics or RuleMetrics()
        self.ctx = Context(store=store, local=local_state(home),
                           content=ContentStore(home / "content"))
        self.handlers = [[handler(r, i, a, self.ctx) for i, a in enumerate(r.actions)]
                         for r in self.rules]
        self.names = [[f"{type(a).__name__.lower()}:{r.id}.{i}" for i, a in
                       enumerate(r.actions)] for r in self.rules]
        self.put_timeout, self.retries, self.retry_initial = put_timeout, retries, retry_initial
        self.queue: queue.Queue[Task | object] = queue.Queue(queue_size)
        self._pending = 0
        self._cond = threading.Condition()
        self._dirty = False  # events came since the deferred work last ran
        self._last_deferred = time.monotonic()
        self._by_tag = {f"{r.id}.{i}": (n, i) for n, r in enumerate(self.rules)
                        for i in range(len(r.actions))}
        self._captures = [a for r in self.rules for a in r.actions
                          if isinstance(a, m.CaptureStdout)]
        self._lines: list[tuple[int, str, int]] = []
        self._line_count = 0
        self._lines_lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="ursprung-rules", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ hot path

    def observe(self, events: Iterable[Event]) -> None:
        """Test the rules on a batch (already in the store) and queue their actions."""
        if not self.rules:
            return
        matched = self.metrics.matched
        for i, ev in self.matcher.matches(events):
            rule = self.rules[i]
            matched(rule.id).inc()
            for a in range(len(rule.actions)):
                self._put(Task(i, a, ev))
        self._dirty = True

    def _put(self, task: Task) -> None:
        with self._cond:
            self._pending += 1
        try:
            self.queue.put(task, timeout=self.put_timeout)
        except queue.Full:
            self.metrics.dropped.inc()
            self._dead(task, "the action queue stayed full (actions too slow for the stream)")
            self._done()
        self.metrics.depth.set(self.queue.qsize())

    @property
    def wants_stdout(self) -> bool:
        """Whether CAPTURESOUT rules want the stdout of `ursprung run`'s command."""
        return bool(self._captures)

    def capture_line(self, text: str, ts: int) -> None:
        """A line of the traced command's stdout (from :class:`.capture.StdoutTee`); kept
        when a CAPTURESOUT rule's regex matches it, up to ``MAX_CAPTURED`` lines."""
        with self._lines_lock:
            self._line_count += 1
            if len(self._lines) < MAX_CAPTURED and any(
                    a.match.search(text) for a in self._captures):
                self._lines.append((self._line_count, text, ts))

    # ------------------------------------------------------------------ worker

    def _done(self) -> None:
        with self._cond:
            self._pending -= 1
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            try:
                task = self.queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                self._deferred()
                continue
            if task is _STOP:
                return
            if isinstance(task, _Call):
                task.fn()
                task.done.set()
                continue
            assert isinstance(task, Task)
            try:
                self._run(task)
            finally:
                self._done()

    def _run(self, task: Task) -> None:
        self._attempt(task, self.handlers[task.rule][task.action])
        if time.monotonic() - self._last_deferred > DEFERRED_EVERY:
            self._deferred()  # under constant load too

    def _attempt(self, task: Task, fn: Callable[[Event], None]) -> None:
        name = self.names[task.rule][task.action]
        kind = name.partition(":")[0]
        delay = self.retry_initial
        for attempt in range(self.retries + 1):
            try:
                fn(task.event)
                self.metrics.actions(kind, "ok").inc()
                break
            except ActionError as exc:
                self._dead(task, str(exc))
                break
            except Exception as exc:
                if attempt == self.retries:
                    self._dead(task, f"failed {attempt + 1} times: {type(exc).__name__}: {exc}")
                    break
                self.metrics.actions(kind, "retried").inc()
                log.warning("rule action %s failed (%s), retrying in %.1fs", name, exc, delay)
                time.sleep(delay)
                delay *= 2
        self._write_dead()

    def _dead(self, task: Task, reason: str) -> None:
        rule = self.rules[task.rule]
        name = self.names[task.rule][task.action]
        self.metrics.actions(name.partition(":")[0], "dead").inc()
        log.error("rule %s (%s) action %d: %s", rule.at, rule.id, task.action, reason)
        ev = task.event
        self.ctx.dead.append(DeadLetter(
            source="rules", reason=f"{rule.at}: {reason}",
            raw=json.dumps({"rule": rule.text, "event": ev.seq, "kind": ev.kind.value}),
            where=f"{name}:{ev.host}:{ev.seq}"))

    def _write_dead(self) -> None:
        if not self.ctx.dead:
            return
        from ..ingest.upserts import Batch

        batch = Batch()
        for dead in self.ctx.dead:
            batch.add_dead(dead, "rules")
        try:
            self.ctx.graph().write(batch.statements())
            self.ctx.dead.clear()
        except Exception as exc:
            log.error("rule dead letters could not be stored (%s); kept for later", exc)

    # ------------------------------------------------------------------ deferred work

    def _deferred(self) -> None:
        self._last_deferred = time.monotonic()
        self._settle()
        if not self._dirty:  # processes waiting for their run: tried when events come
            return
        self._dirty = False
        try:
            self._define_runs()
            self._set_run_metrics()
        except Exception as exc:
            self._dirty = True
            log.error("rules: defining runs or setting run metrics failed: %s", exc)
        self._write_dead()

    def _settle(self) -> None:
        """TRACK and DBLOAD of the files whose writes have settled."""
        settling, self.ctx.settling = self.ctx.settling, {}
        for (tag, _, _), (fn, event) in settling.items():
            rule, action = self._by_tag[tag]
            self._attempt(Task(rule, action, event), fn)
            self._dirty = True

    def _define_runs(self) -> None:
        """Each process a RUN rule marked becomes the root of a run of its pipeline, with
        its subtree as members (the rule form of `ursprung runs define`: same ids)."""
        if not self.ctx.run_roots:
            return
        from ..ingest.runs import params_from_argv
        from ..ingest.upserts import Batch
        from ..query.runs import subtree
        from ..query.types import CandidateProcess

        store = self.ctx.graph()
        batch = Batch()
        for key, pipeline in sorted(self.ctx.run_roots.items()):
            rows = store.read(c.PROCESS_BY_KEY, {"key": key})
            if not rows:
                continue
            root = msgspec.convert(rows[0], CandidateProcess)
            members, last = subtree(store, root)
            run_id = hashlib.sha256(f"{pipeline}\n{key}".encode()).hexdigest()[:32]
            start = root.start or root.first or 0
            end = root.end if root.end is not None else max(last, root.last or 0)
            argv = list(root.argv or [])
            info = RunInfo(id=run_id, pipeline=pipeline, argv=argv, cwd=root.cwd,
                           user=None if root.uid is None else str(root.uid),
                           start=start, end=end, exit_code=root.exit_code, origin="rule",
                           params=params_from_argv(argv), members=members)
            batch.add(Event(v=SCHEMA_VERSION, source="rules", host=root.host,
                            ts=end or start, seq=f"run:{run_id}", kind=Kind.RUN,
                            proc=ProcessInfo(pid=root.pid, start=root.start or 0),
                            run=info))
            self.ctx.metric_procs.add(key)
        store.write(batch.statements())

    def _set_run_metrics(self) -> None:
        """Run metrics from the metric records of the run's processes: ``name`` is the last
        value, ``name[step=N]`` the value at each step. Derived from the records alone, so
        setting them again changes nothing."""
        if not self.ctx.metric_procs:
            return
        store = self.ctx.graph()
        keys = sorted(self.ctx.metric_procs)
        runs = [r["run"] for r in store.read(c.RUNS_OF_PROCESSES, {"keys": keys})]
        rows = []
        for run in runs:
            found: dict[str, str] = {}
            for rec in store.read(c.RUN_METRIC_RECORDS, {"run": run}):
                step_name, _, step = (rec["step"] or "").partition("=")
                for name, value in json.loads(rec["metrics"]).items():
                    text = f"{value:g}"
                    found[name] = text
                    if rec["step"] is not None:
                        found[metric_name(name, step_name, step)] = text
            have = store.read(c.RUN_METRICS, {"run": run})
            old = json.loads(have[0]["metrics"] or "{}") if have else {}
            merged = {**old, **found}
            if merged != old:
                rows.append({"run": run, "metrics": json.dumps(merged, sort_keys=True)})
        if rows:
            store.write([(c.SET_RUN_METRICS, {"rows": rows})])
        # processes whose runs are not in the graph yet stay, to be tried again
        self.ctx.metric_procs.difference_update(keys if runs else ())

    # ------------------------------------------------------------------ control

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued task has run, then do the deferred work now; False if
        ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        done = threading.Event()
        self.queue.put(_Call(done, self._force_deferred))
        return done.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _force_deferred(self) -> None:
        self._dirty = True
        with self._lines_lock:
            lines, self._lines = self._lines, []
        if lines:
            try:
                capture_records(self.ctx, lines)
            except Exception as exc:
                log.error("rules: captured stdout lines could not be stored: %s", exc)
        self._deferred()

    def close(self, timeout: float | None = 60.0) -> None:
        with contextlib.suppress(Exception):
            self.flush(timeout)
        self.queue.put(_STOP)
        self._thread.join(timeout)


@dataclass(slots=True)
class _Call:
    done: threading.Event
    fn: Callable[[], None]
