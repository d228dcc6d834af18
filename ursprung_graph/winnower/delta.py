"""Epoch deltas: what a node sends the monitor, and the compact encoding on the wire.

After each epoch a node sends the parts of its epoch model that neither the global model
(as the monitor last sent it) nor the node's own earlier deltas contain, in full (label,
structure, one concrete example), and for every part it exhibited in the epoch its
cumulative count (support, a grow-only counter per node: re-sending it changes nothing).
The monitor applies a delta by merging (`model.merge_into`), so a delta applied twice or
late leaves the global model as it would be otherwise.

Wire format: a msgspec msgpack array (structs as arrays, no field names), compressed with
zstd, behind a one-byte format tag.
"""

from __future__ import annotations

import msgspec
import zstandard

from .model import Example, Model, State, Transition, merge_into, merge_support

FORMAT = b"W1"
ZSTD_LEVEL = 19


class NewState(msgspec.Struct, array_like=True, omit_defaults=True):
    id: int
    label: str
    example: Example | None = None


class NewTransition(msgspec.Struct, array_like=True, omit_defaults=True):
    id: int
    src: int
    rel: str
    dst: int
    example: Example | None = None


class Delta(msgspec.Struct, array_like=True):
    """One node's epoch: new parts and cumulative counts (id -> count)."""

    origin: str
    epoch: int
    k: int
    states: list[NewState]
    transitions: list[NewTransition]
    state_counts: dict[int, int]
    transition_counts: dict[int, int]


class ModelView(msgspec.Struct, array_like=True):
    """What the monitor sends back: the ids the global model accepts (all an agent needs
    to check its epochs), and the epoch the view is as of."""

    k: int
    epoch: int
    states: list[int]
    transitions: list[int]


class NodeState(msgspec.Struct):
    """A node's side: its cumulative counts, what it has sent, the global model's ids."""

    origin: str
    k: int
    state_counts: dict[int, int] = msgspec.field(default_factory=dict)
    transition_counts: dict[int, int] = msgspec.field(default_factory=dict)
    sent_states: set[int] = msgspec.field(default_factory=set)
    sent_transitions: set[int] = msgspec.field(default_factory=set)
    known_states: set[int] = msgspec.field(default_factory=set)
    known_transitions: set[int] = msgspec.field(default_factory=set)

    def learn(self, view: ModelView) -> None:
        """Take the global model's ids (a newer view replaces nothing it already knows)."""
        self.known_states.update(view.states)
        self.known_transitions.update(view.transitions)


class DeltaError(ValueError):
    """Bytes that are not a delta (or a view) of this format."""


def epoch_delta(node: NodeState, local: Model, epoch: int) -> Delta:
    """The delta of ``local`` (the node's model of one epoch, support from this node only)
    against what the monitor has; updates the node's counts and its sent sets."""
    states, transitions = [], []
    for sid, s in local.states.items():
        node.state_counts[sid] = node.state_counts.get(sid, 0) + s.support.get(node.origin, 0)
        if sid not in node.known_states and sid not in node.sent_states:
            states.append(NewState(sid, s.label, s.example))
            node.sent_states.add(sid)
    for tid, t in local.transitions.items():
        node.transition_counts[tid] = (node.transition_counts.get(tid, 0)
                                       + t.support.get(node.origin, 0))
        if tid not in node.known_transitions and tid not in node.sent_transitions:
            transitions.append(NewTransition(tid, t.src, t.rel, t.dst, t.example))
            node.sent_transitions.add(tid)
    return Delta(
        node.origin, epoch, node.k, states, transitions,
        {sid: node.state_counts[sid] for sid in local.states},
        {tid: node.transition_counts[tid] for tid in local.transitions},
    )


def delta_model(delta: Delta, known: Model) -> tuple[Model, int]:
    """The delta as a model to merge into ``known``: its new parts and its counts for parts
    that are new or that ``known`` has. Also returns how many counts referred to parts
    neither has (a delta that arrived before the one that introduced them; they are kept by
    the next delta, which carries the cumulative count again)."""
    out = Model(k=delta.k)
    origin = delta.origin
    for s in delta.states:
        out.states[s.id] = State(s.label, delta.epoch, {}, s.example)
    for t in delta.transitions:
        out.transitions[t.id] = Transition(t.src, t.rel, t.dst, delta.epoch, {}, t.example)
    missing = 0
    for sid, count in delta.state_counts.items():
        target = out.states.get(sid)
        if target is None:
            ks = known.states.get(sid)
            if ks is None:
                missing += 1
                continue
            target = out.states[sid] = State(ks.label, ks.first)
        merge_support(target.support, {origin: count})
    for tid, count in delta.transition_counts.items():
        tt = out.transitions.get(tid)
        if tt is None:
            kt = known.transitions.get(tid)
            if kt is None:
                missing += 1
                continue
            tt = out.transitions[tid] = Transition(kt.src, kt.rel, kt.dst, kt.first)
        merge_support(tt.support, {origin: count})
    return out, missing


def apply_delta(model: Model, delta: Delta) -> int:
    """Merge ``delta`` into ``model`` (in place); the number of counts it could not place."""
    part, missing = delta_model(delta, model)
    merge_into(model, part)
    return missing


def view_of(model: Model, epoch: int) -> ModelView:
    return ModelView(model.k, epoch, sorted(model.states), sorted(model.transitions))


_enc = msgspec.msgpack.Encoder()
_delta_dec = msgspec.msgpack.Decoder(Delta)
_view_dec = msgspec.msgpack.Decoder(ModelView)
_model_dec = msgspec.msgpack.Decoder(Model)


def _pack(data: bytes) -> bytes:
    return FORMAT + zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)


def _unpack(data: bytes) -> bytes:
    if not data.startswith(FORMAT):
        raise DeltaError("not a Winnower message (format tag missing)")
    try:
        return zstandard.ZstdDecompressor().decompress(data[len(FORMAT):])
    except zstandard.ZstdError as exc:
        raise DeltaError(f"corrupt Winnower message: {exc}") from exc


def encode_delta(delta: Delta) -> bytes:
    return _pack(_enc.encode(delta))


def decode_delta(data: bytes) -> Delta:
    try:
        return _delta_dec.decode(_unpack(data))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DeltaError(f"not a Winnower delta: {exc}") from exc


def encode_view(view: ModelView) -> bytes:
    return _pack(_enc.encode(view))


def decode_view(data: bytes) -> ModelView:
    try:
        return _view_dec.decode(_unpack(data))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DeltaError(f"not a Winnower model view: {exc}") from exc


def encode_model(model: Model) -> bytes:
    return _pack(_enc.encode(model))


def decode_model(data: bytes) -> Model:
    try:
        return _model_dec.decode(_unpack(data))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DeltaError(f"not a Winnower model: {exc}") from exc
