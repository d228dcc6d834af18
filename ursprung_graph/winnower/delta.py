"""Epoch deltas: what a node sends the monitor, and the compact encoding on the wire.

After each epoch a node sends the parts of its epoch model that the global model (as the
monitor last sent it) does not contain, in full (label, structure, the first time also one
concrete example), and for every part it exhibited in the epoch its cumulative count
(support, a grow-only counter per node: re-sending it changes nothing). Parts the monitor
knows are named by their ordinal in the monitor's view, so that a delta is mostly small
integers. The monitor applies a delta by merging (`model.merge_into`): a delta applied twice
leaves the global model as it was.

Wire format: a msgspec msgpack array (structs as arrays, no field names), compressed with
zstd, behind a one-byte format tag.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec
import zstandard

from .induction import depth1_state_id, label_signature, state_id, transition_id
from .model import Example, Model, State, Transition, merge_into, merge_support

FORMAT = b"W1"
ZSTD_LEVEL = 19

T = TypeVar("T")


class NewState(msgspec.Struct, array_like=True, omit_defaults=True):
    """A state the monitor does not know. ``id`` is 0 at depth k <= 1, where the monitor
    derives it from the label and the delta's transitions (saving 9 bytes a state)."""

    id: int
    label: str
    example: Example | None = None


class NewTransition(msgspec.Struct, array_like=True, omit_defaults=True):
    """A transition between two state references (see `Delta`); its id is derived."""

    src: int
    rel: str
    dst: int
    example: Example | None = None


class Delta(msgspec.Struct, array_like=True):
    """One node's epoch.

    A *state reference* is a state's ordinal in the monitor's view (>= 0) or ``-(i + 1)``
    for the i-th of ``states`` (the states this delta introduces); a *transition reference*
    likewise (ordinal, or ``-(i + 1)`` for the i-th of ``transitions``). Counts are the
    node's cumulative counts: ``state_counts[j]`` of ``state_refs[j]``, and so on. Only the
    states are sent with their 63-bit ids; the rest are small integers.
    """

    origin: str
    epoch: int
    k: int
    states: list[NewState]
    transitions: list[NewTransition]
    state_refs: list[int]
    state_counts: list[int]
    transition_refs: list[int]
    transition_counts: list[int]


class ModelView(msgspec.Struct, array_like=True):
    """What the monitor sends back: the ids the global model accepts, in the order it first
    saw them (their ordinals; the lists only grow), and the epoch the view is as of."""

    k: int
    epoch: int
    states: list[int]
    transitions: list[int]


class Ordinals:
    """A monitor's numbering of states and transitions in the order it first saw them."""

    def __init__(self, states: list[int] | None = None,
                 transitions: list[int] | None = None) -> None:
        self.states: list[int] = []
        self.transitions: list[int] = []
        self.state_index: dict[int, int] = {}
        self.transition_index: dict[int, int] = {}
        self.extend(states or [], transitions or [])

    def extend(self, states: list[int], transitions: list[int]) -> None:
        for sid in states:
            if sid not in self.state_index:
                self.state_index[sid] = len(self.states)
                self.states.append(sid)
        for tid in transitions:
            if tid not in self.transition_index:
                self.transition_index[tid] = len(self.transitions)
                self.transitions.append(tid)

    def cover(self, model: Model) -> None:
        """Number what ``model`` has and this does not yet (new ids in sorted order)."""
        self.extend(sorted(s for s in model.states if s not in self.state_index),
                    sorted(t for t in model.transitions if t not in self.transition_index))

    def view(self, k: int, epoch: int) -> ModelView:
        return ModelView(k, epoch, list(self.states), list(self.transitions))


class NodeState(msgspec.Struct):
    """A node's side: its cumulative counts, the parts it has sent an example of, and the
    monitor's view (ids by ordinal)."""

    origin: str
    k: int
    state_counts: dict[int, int] = msgspec.field(default_factory=dict)
    transition_counts: dict[int, int] = msgspec.field(default_factory=dict)
    exemplified: set[int] = msgspec.field(default_factory=set)
    view_states: list[int] = msgspec.field(default_factory=list)
    view_transitions: list[int] = msgspec.field(default_factory=list)

    def learn(self, view: ModelView) -> None:
        """Take a newer view of the global model (a view is never shorter than an older)."""
        if len(view.states) >= len(self.view_states) and \
                len(view.transitions) >= len(self.view_transitions):
            self.view_states, self.view_transitions = view.states, view.transitions


class DeltaError(ValueError):
    """Bytes that are not a delta (or a view) of this format, or a delta that refers to
    parts the monitor does not know."""


def epoch_delta(node: NodeState, local: Model, epoch: int) -> Delta:
    """The delta of ``local`` (the node's model of one epoch, support from this node only)
    against the node's view of the global model; updates the node's counts."""
    state_ord = {sid: i for i, sid in enumerate(node.view_states)}
    trans_ord = {tid: i for i, tid in enumerate(node.view_transitions)}
    states: list[NewState] = []
    sref: dict[int, int] = {}
    # a state that a transition leads to is exemplified by that transition's example
    reached = {t.dst for t in local.transitions.values()}
    for sid, s in local.states.items():
        node.state_counts[sid] = node.state_counts.get(sid, 0) + s.support.get(node.origin, 0)
        if sid in state_ord:
            sref[sid] = state_ord[sid]
            continue
        example = s.example if sid not in node.exemplified and sid not in reached else None
        node.exemplified.add(sid)
        states.append(NewState(0 if node.k <= 1 else sid, s.label, example))
        sref[sid] = -len(states)
    transitions: list[NewTransition] = []
    tref: dict[int, int] = {}
    for tid, t in local.transitions.items():
        node.transition_counts[tid] = (node.transition_counts.get(tid, 0)
                                       + t.support.get(node.origin, 0))
        if tid in trans_ord:
            tref[tid] = trans_ord[tid]
            continue
        example = t.example if tid not in node.exemplified else None
        node.exemplified.add(tid)
        transitions.append(NewTransition(sref[t.src], t.rel, sref[t.dst], example))
        tref[tid] = -len(transitions)
    return Delta(
        node.origin, epoch, node.k, states, transitions,
        list(sref.values()), [node.state_counts[sid] for sid in sref],
        list(tref.values()), [node.transition_counts[tid] for tid in tref],
    )


def delta_model(delta: Delta, order: Ordinals, known: Model) -> Model:
    """The delta as a model to merge into ``known`` (which ``order`` numbers): its new
    parts, and its counts. DeltaError if it refers to an ordinal ``order`` lacks."""
    out = Model(k=delta.k)
    origin = delta.origin
    ids = _state_ids(delta, order, known)

    def state(ref: int) -> int:
        if ref < 0:
            return ids[-ref - 1]
        if ref >= len(order.states):
            raise DeltaError(f"delta of {origin} epoch {delta.epoch}: unknown state {ref}")
        return order.states[ref]

    try:
        for sid, s in zip(ids, delta.states, strict=True):
            out.states[sid] = State(s.label, delta.epoch, {}, s.example)
        new_tids = []
        for t in delta.transitions:
            src, dst = state(t.src), state(t.dst)
            tid = transition_id(src, t.rel, dst)
            new_tids.append(tid)
            out.transitions[tid] = Transition(src, t.rel, dst, delta.epoch, {}, t.example)
        for ref, count in zip(delta.state_refs, delta.state_counts, strict=True):
            sid = state(ref)
            target = out.states.get(sid)
            if target is None:
                target = out.states[sid] = State("", delta.epoch)
            merge_support(target.support, {origin: count})
        for ref, count in zip(delta.transition_refs, delta.transition_counts, strict=True):
            if ref < 0:
                tid = new_tids[-ref - 1]
            elif ref < len(order.transitions):
                tid = order.transitions[ref]
            else:
                raise DeltaError(f"delta of {origin} epoch {delta.epoch}: unknown "
                                 f"transition {ref}")
            tt = out.transitions.get(tid)
            if tt is None:
                tt = out.transitions[tid] = Transition(0, "", 0, delta.epoch)
            merge_support(tt.support, {origin: count})
    except (IndexError, ValueError) as exc:
        if isinstance(exc, DeltaError):
            raise
        raise DeltaError(f"delta of {origin} epoch {delta.epoch} is inconsistent: {exc}") \
            from exc
    return out


def _state_ids(delta: Delta, order: Ordinals, known: Model) -> list[int]:
    """The ids of the delta's new states: sent (k > 1), or derived from labels (k <= 1)."""
    if delta.k > 1:
        return [s.id for s in delta.states]
    if delta.k <= 0:
        return [state_id(label_signature(s.label)) for s in delta.states]
    out: list[set[tuple[str, str]]] = [set() for _ in delta.states]
    try:
        for t in delta.transitions:
            if t.src >= 0:
                continue  # from a known state: not part of a new state's structure
            if t.dst < 0:
                dst = delta.states[-t.dst - 1].label
            else:
                dst = known.states[order.states[t.dst]].label
            out[-t.src - 1].add((t.rel, dst))
    except (IndexError, KeyError) as exc:
        raise DeltaError(f"delta of {delta.origin} epoch {delta.epoch}: a transition refers "
                         f"to an unknown state ({exc})") from exc
    return [depth1_state_id(s.label, o) for s, o in zip(delta.states, out, strict=True)]


def apply_delta(model: Model, delta: Delta, order: Ordinals) -> tuple[set[int], set[int]]:
    """Merge ``delta`` into ``model`` (in place) and number its new parts in ``order``;
    the ids of the states and transitions it touched. Counts for known parts come as
    placeholders (no label) that only raise support: the label and first epoch of a known
    part are the model's."""
    part = delta_model(delta, order, model)
    touched = (set(part.states), set(part.transitions))
    for sid, s in list(part.states.items()):
        known = model.states.get(sid)
        if known is None and not s.label:
            raise DeltaError(f"delta of {delta.origin}: counts for unknown state {sid}")
        if known is not None and not s.label:
            merge_support(known.support, s.support)
            part.states.pop(sid)
    for tid, t in list(part.transitions.items()):
        known_t = model.transitions.get(tid)
        if known_t is None and not t.rel:
            raise DeltaError(f"delta of {delta.origin}: counts for unknown transition {tid}")
        if known_t is not None and not t.rel:
            merge_support(known_t.support, t.support)
            part.transitions.pop(tid)
    merge_into(model, part)
    order.cover(model)
    return touched


class Codec(Generic[T]):
    """One message type on the wire: msgpack (structs as arrays), zstd, behind `FORMAT`;
    decoding anything else is a DeltaError naming what was expected."""

    def __init__(self, kind: type[T], what: str) -> None:
        self._dec = msgspec.msgpack.Decoder(kind)
        self.what = what

    def encode(self, value: T) -> bytes:
        return FORMAT + zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(_enc.encode(value))

    def decode(self, data: bytes) -> T:
        if not data.startswith(FORMAT):
            raise DeltaError("not a Winnower message (format tag missing)")
        try:
            raw = zstandard.ZstdDecompressor().decompress(data[len(FORMAT):])
        except zstandard.ZstdError as exc:
            raise DeltaError(f"corrupt Winnower message: {exc}") from exc
        try:
            return self._dec.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DeltaError(f"not a Winnower {self.what}: {exc}") from exc


_enc = msgspec.msgpack.Encoder()
DELTAS = Codec(Delta, "delta")
VIEWS = Codec(ModelView, "model view")
MODELS = Codec(Model, "model")

encode_delta, decode_delta = DELTAS.encode, DELTAS.decode
encode_view, decode_view = VIEWS.encode, VIEWS.decode
encode_model, decode_model = MODELS.encode, MODELS.decode
