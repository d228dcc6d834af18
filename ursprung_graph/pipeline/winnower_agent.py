"""The Winnower agent as a pipeline: the node's audit log read by the one follower
(:class:`~.follow.Follower`, the same block-fed parse loop with checkpoints as `ursprung
collect auditd`), its events cut into epochs, each epoch's graph checked against the global
model and its delta sent over the bus; model views taken from the bus and drill requests
answered while it runs.

Checkpoints. The follower saves a checkpoint after each chunk is delivered; here the
checkpoint and the agent's state (its counters, the processes it knows, the open epoch and
its events so far) are one file, written only where they agree: when the follower's
checkpoint covers exactly the events the agent has taken (its ``events`` count equals the
agent's, i.e. the point is at the end of the chunk just delivered, not at an earlier clean
point the follower would re-read from). A restart resumes from that file: the agent's
state is as of the checkpoint, so the events re-read after it are counted once, and an
epoch's delta is sent once more at most (the same cumulative counts: the monitor's merge
changes nothing). An epoch's delta is published and flushed before the state that counts
it is saved. When following, the open epoch is closed when its end has passed (event
time) and the log has been quiet for ``close_after`` seconds; stopping keeps it open (in
the state file) for the next start. Reading a finished log (``follow=False``) closes the
last epoch at the end.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ..collectors.auditd.source import IDLE_FLUSH, AuditdSource
from ..ingest.bus import Bus, Publisher, Subscription
from ..schema.event import DeadLetter, Event
from ..winnower.agent import Agent, EpochCutter, Topics
from ..winnower.delta import DeltaError, NodeState
from ..winnower.pgraph import ProcessFacts
from ..winnower.remote import answer
from .checkpoint import Checkpoint, CheckpointStore
from .follow import Follower, FollowOptions, FollowStats, stream_name

log = logging.getLogger(__name__)

#: How often (seconds) the agent takes model views, answers drill requests and looks
#: whether the open epoch is due.
TICK_SECONDS = 0.5
#: A followed log quiet this long (seconds) closes an epoch whose end has passed: longer
#: than the parser waits before it completes events left open (their events come first).
CLOSE_AFTER = IDLE_FLUSH + 1.0


class AgentState(msgspec.Struct):
    """What a node's agent keeps between runs (one file, replaced atomically)."""

    node: NodeState
    processes: dict[str, ProcessFacts] = msgspec.field(default_factory=dict)
    epoch: int | None = None  # the open epoch
    batch: list[Event] = msgspec.field(default_factory=list)  # its events so far
    stream: str = ""  # what the checkpoint is of
    checkpoint: Checkpoint | None = None


@dataclass(frozen=True, slots=True)
class EpochSent:
    """One epoch's delta, sent."""

    epoch: int
    events: int
    states: int
    transitions: int
    bytes: int


def load_state(path: Path) -> AgentState | None:
    """The agent state saved at ``path``, or None when there is none."""
    try:
        return msgspec.msgpack.decode(path.read_bytes(), type=AgentState)
    except FileNotFoundError:
        return None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DeltaError(f"{path}: not a Winnower agent state ({exc})") from exc


class EpochSink:
    """The follower's sink: events into epochs, each finished epoch's delta onto the bus.
    Everything it does holds ``lock`` (the follower's delivering thread and the ticker)."""

    def __init__(self, agent: Agent, cutter: EpochCutter, pub: Publisher, topics: Topics, *,
                 views: Subscription | None = None, close_after: float = CLOSE_AFTER,
                 report: Callable[[EpochSent], None] | None = None) -> None:
        self.agent = agent
        self.cutter = cutter
        self.pub = pub
        self.topics = topics
        self.views = views
        self.close_after = close_after
        self.report = report
        self.lock = threading.Lock()
        self.received = 0  # events taken in this run (the follower counts the same)
        self.last_input = time.monotonic()
        self.sent: list[EpochSent] = []

    def emit(self, events: Sequence[Event], dead: Sequence[DeadLetter], host: str) -> None:
        with self.lock:
            self.received += len(events)
            if events:
                self.last_input = time.monotonic()
            self._close(self.cutter.add(events))

    def tick(self, now_ns: int) -> None:
        """Take model views; close the open epoch if it is due and the log is quiet."""
        with self.lock:
            self._take_views()
            if time.monotonic() - self.last_input >= self.close_after:
                self._close(self.cutter.due(now_ns))

    def finish(self) -> None:
        """The end of a finished log: close the open epoch."""
        with self.lock:
            self._close(self.cutter.flush())

    def _take_views(self) -> None:
        if self.views is not None:
            self.agent.take_views(self.views)

    def _close(self, done: list[tuple[int, list[Event]]]) -> None:
        for epoch, events in done:
            self._take_views()
            delta = self.agent.epoch(events, epoch)
            size = self.agent.send(self.pub, delta, self.topics.deltas)
            sent = EpochSent(epoch, len(events), len(delta.states), len(delta.transitions),
                             size)
            self.sent.append(sent)
            if self.report is not None:
                self.report(sent)

    def state(self, stream: str, checkpoint: Checkpoint | None) -> AgentState:
        return AgentState(self.agent.state, self.agent.processes, self.cutter.current,
                          self.cutter.batch, stream, checkpoint)


class AgentCheckpoints(CheckpointStore):
    """The follower's checkpoints, kept with the agent's state in one file (see the module
    docstring): a checkpoint is saved only when the agent's state is exactly as of it."""

    def __init__(self, path: Path, sink: EpochSink, saved: AgentState | None) -> None:
        super().__init__(path.parent)
        self.path = path
        self.sink = sink
        self.point = saved.checkpoint if saved is not None else None
        self.stream = saved.stream if saved is not None else ""
        self.at = 0  # the sink's event count where the saved state is exact

    def load(self, stream: str) -> Checkpoint | None:
        return self.point if stream == self.stream else None

    def save(self, stream: str, checkpoint: Checkpoint) -> None:
        with self.sink.lock:
            if checkpoint.events != self.sink.received:
                return  # an earlier clean point: the agent has taken events beyond it
            self.point, self.stream, self.at = checkpoint, stream, self.sink.received
            self._write()

    def save_if_exact(self) -> None:
        """After an epoch closed without new input (the ticker, the end of a log)."""
        with self.sink.lock:
            if self.sink.received == self.at:
                self._write()

    def _write(self) -> None:
        data = msgspec.msgpack.encode(self.sink.state(self.stream, self.point))
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


@dataclass(slots=True)
class AgentRun:
    """What one run of the agent did."""

    follow: FollowStats
    sent: list[EpochSent]
    drills: int


def run_agent(log_path: Path, agent: Agent, bus: Bus, topics: Topics, *, state_path: Path,
              saved: AgentState | None, epoch_ns: int, follow: bool,
              stop: threading.Event, options: FollowOptions | None = None,
              close_after: float = CLOSE_AFTER,
              report: Callable[[EpochSent], None] | None = None,
              view_group: str | None = None) -> AgentRun:
    """Follow ``log_path`` (to its end, or as it grows) into epochs and deltas on ``bus``,
    resuming from ``saved``; until the end of the log (``follow=False``) or ``stop``."""
    node = agent.node
    if saved is not None:
        agent.processes = dict(saved.processes)
    cutter = EpochCutter(epoch_ns, grace_ns=int(close_after * 1e9))
    if saved is not None and saved.epoch is not None:
        cutter.current, cutter.batch = saved.epoch, list(saved.batch)
    bus.ensure_topics([topics.deltas, topics.model, topics.drill, topics.drill_replies], 1)
    pub = bus.publisher()
    views = bus.subscribe(view_group or f"{topics.prefix}-agent-{node}", [topics.model])
    drills = bus.subscribe(f"{topics.prefix}-drill-{node}", [topics.drill])
    sink = EpochSink(agent, cutter, pub, topics, views=views, close_after=close_after,
                     report=report)
    checkpoints = AgentCheckpoints(state_path, sink, saved)
    opt = dataclasses.replace(options or FollowOptions(), follow=follow)
    follower = Follower(log_path, lambda state: AuditdSource(node, state), sink, host=node,
                        checkpoints=checkpoints, options=opt, stop=stop,
                        stream=stream_name("winnower", node, log_path))
    failed: list[BaseException] = []
    answered = [0]
    done = threading.Event()

    def ticker() -> None:
        try:
            while not done.wait(TICK_SECONDS):
                if follow:
                    closed = len(sink.sent)
                    sink.tick(time.time_ns())
                    if len(sink.sent) > closed:
                        checkpoints.save_if_exact()
                with sink.lock:  # one thread at a time on the bus clients
                    if agent.archive is not None:
                        answered[0] += answer(drills, pub, topics, node, agent.archive)
        except BaseException as exc:  # stop the follower with it
            failed.append(exc)
            stop.set()

    thread = threading.Thread(target=ticker, name="winnower-agent-tick", daemon=True)
    thread.start()
    try:
        stats = follower.run()
        done.set()
        thread.join()
        if failed:
            raise failed[0]
        if not follow:
            sink.finish()
            checkpoints.save_if_exact()
    finally:
        done.set()
        thread.join()
        for client in (views, drills):
            client.close()
        pub.close()
    return AgentRun(stats, sink.sent, answered[0])
