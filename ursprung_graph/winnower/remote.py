"""Drill over the bus: a request for the concrete events behind some state or transition
ids, answered by the agent of the node that holds them.

A request (``PREFIX.drill``, keyed by node) names the node, the ids, optionally the epochs,
a correlation id and a deadline (wall clock); the agent of that node reads its own epoch
archive (`agent.drill`) and publishes the reply (``PREFIX.drill.replies``) with the same
correlation id. Agents skip requests for other nodes and requests past their deadline (an
agent that starts late does not answer questions nobody waits for any more). The
requester reads the replies with a consumer group of its own and waits for its correlation
id until the deadline; then :class:`DrillTimeout` says which node did not answer.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import msgspec

from ..errors import UrsprungError
from ..ingest.bus import Bus, Publisher, Subscription
from .agent import Found, Topics, drill

log = logging.getLogger(__name__)

#: How long a requester waits for the agent unless told otherwise (seconds).
TIMEOUT = 30.0


class DrillRequest(msgspec.Struct):
    id: str  # correlation id
    node: str
    ids: list[int]
    epochs: list[int] | None = None
    deadline_ns: int = 0  # wall clock; 0: no deadline


class DrillReply(msgspec.Struct):
    id: str
    node: str
    found: list[Found] = msgspec.field(default_factory=list)
    error: str = ""


class DrillTimeout(UrsprungError):
    """No agent answered in time (it may be down, or the bus slow: try again)."""

    retryable = True


class DrillFailed(UrsprungError):
    """The agent answered with an error."""


_enc = msgspec.msgpack.Encoder()
_req = msgspec.msgpack.Decoder(DrillRequest)
_rep = msgspec.msgpack.Decoder(DrillReply)


def answer(sub: Subscription, pub: Publisher, topics: Topics, node: str, archive: Path,
           timeout: float = 0.0) -> int:
    """Answer the requests for ``node`` that have arrived (from ``archive``); how many."""
    messages = sub.poll(100, timeout)
    n = 0
    now = time.time_ns()
    for msg in messages:
        if msg.value is None:
            continue
        try:
            req = _req.decode(msg.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("ignoring a message on %s: not a drill request (%s)", msg.topic, exc)
            continue
        if req.node != node or (req.deadline_ns and req.deadline_ns < now):
            continue
        try:
            reply = DrillReply(req.id, node, drill(archive, set(req.ids),
                                                   set(req.epochs) if req.epochs else None))
        except (OSError, ValueError) as exc:  # a torn or unreadable archive file
            reply = DrillReply(req.id, node, error=f"the archive of {node} is unreadable: {exc}")
        pub.publish(topics.drill_replies, node.encode(), _enc.encode(reply))
        n += 1
    if n:
        pub.flush()
    if messages:
        offsets: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic, m.partition)
            offsets[key] = max(offsets.get(key, 0), m.offset + 1)
        sub.commit(offsets)
    return n


def request(bus: Bus, topics: Topics, node: str, ids: list[int],
            epochs: list[int] | None = None, *, timeout: float = TIMEOUT) -> list[Found]:
    """Ask the agent of ``node`` for what is behind ``ids``; DrillTimeout when no answer
    came within ``timeout`` seconds, DrillFailed when it answered with an error."""
    bus.ensure_topics([topics.drill, topics.drill_replies], 1)
    cid = uuid.uuid4().hex
    deadline = time.monotonic() + timeout
    sub = bus.subscribe(f"{topics.prefix}-drill-client-{cid}", [topics.drill_replies])
    pub = bus.publisher()
    try:
        req = DrillRequest(cid, node, sorted(ids), sorted(epochs) if epochs else None,
                           time.time_ns() + int(timeout * 1e9))
        pub.publish(topics.drill, node.encode(), _enc.encode(req))
        pub.flush()
        while (left := deadline - time.monotonic()) > 0:
            for msg in sub.poll(100, min(left, 0.5)):
                if msg.value is None:
                    continue
                try:
                    reply = _rep.decode(msg.value)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
                if reply.id != cid:
                    continue
                if reply.error:
                    raise DrillFailed(reply.error)
                return reply.found
    finally:
        sub.close()
        pub.close()
    raise DrillTimeout(f"no answer from the agent of node {node!r} within {timeout:g} s (is "
                       f"`ursprung winnower agent --node {node}` running on that bus?)")
