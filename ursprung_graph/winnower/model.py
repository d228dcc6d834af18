"""The model: states and transitions, each with support.

Support says which origins (nodes, or runs) exhibited a part and how often: a map origin ->
count, where each origin's count is its own cumulative total (a grow-only counter per
origin). Merging two models is the union of their parts with, per part and origin, the
larger count, the earlier first epoch and the smaller example: a join in a semilattice, so
merging is commutative, associative and idempotent. Deltas may arrive twice, late or in any
order and the global model comes out the same.

State and transition ids are 63-bit integers derived from labels and structure (`induction`),
so every node names the same behaviour with the same id without coordination.
"""

from __future__ import annotations

import msgspec

Support = dict[str, int]


class Example(msgspec.Struct, frozen=True, array_like=True, omit_defaults=True):
    """A concrete instance of a part: where (origin), when (epoch ns) and what (the concrete
    vertices, as text)."""

    ts: int
    origin: str
    text: str


class State(msgspec.Struct, array_like=True, omit_defaults=True):
    label: str
    first: int = 0  # the epoch it was first seen in
    support: Support = msgspec.field(default_factory=dict)
    example: Example | None = None


class Transition(msgspec.Struct, array_like=True, omit_defaults=True):
    src: int
    rel: str
    dst: int
    first: int = 0
    support: Support = msgspec.field(default_factory=dict)
    example: Example | None = None


class Model(msgspec.Struct, omit_defaults=True):
    """States and transitions by id, learned at structure depth ``k``."""

    k: int = 0
    states: dict[int, State] = msgspec.field(default_factory=dict)
    transitions: dict[int, Transition] = msgspec.field(default_factory=dict)

    def copy(self) -> Model:
        return msgspec.msgpack.decode(msgspec.msgpack.encode(self), type=Model)


class ModelMismatch(ValueError):
    """Models learned at different depths cannot be merged."""


def merge_support(into: Support, other: Support) -> None:
    for origin, count in other.items():
        if count > into.get(origin, 0):
            into[origin] = count


def _min_example(a: Example | None, b: Example | None) -> Example | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b, key=lambda e: (e.ts, e.origin, e.text))


def _first(a: int, b: int) -> int:
    return min(a, b)


def merge_into(into: Model, other: Model) -> Model:
    """Merge ``other`` into ``into`` (in place) and return it."""
    if into.k != other.k and (into.states or into.transitions):
        raise ModelMismatch(f"models of depth {into.k} and {other.k} cannot be merged")
    if not into.states and not into.transitions:
        into.k = other.k
    for sid, s in other.states.items():
        known = into.states.get(sid)
        if known is None:
            into.states[sid] = State(s.label, s.first, dict(s.support), s.example)
            continue
        known.first = _first(known.first, s.first)
        merge_support(known.support, s.support)
        known.example = _min_example(known.example, s.example)
    for tid, t in other.transitions.items():
        tk = into.transitions.get(tid)
        if tk is None:
            into.transitions[tid] = Transition(t.src, t.rel, t.dst, t.first, dict(t.support),
                                               t.example)
            continue
        tk.first = _first(tk.first, t.first)
        merge_support(tk.support, t.support)
        tk.example = _min_example(tk.example, t.example)
    return into


def merge(*models: Model) -> Model:
    """A new model, the merge of ``models``."""
    out = Model(k=models[0].k if models else 0)
    for m in models:
        merge_into(out, m)
    return out


def canonical(model: Model) -> bytes:
    """A byte string equal for equal models (sorted ids and origins): tests, change checks."""
    def sup(s: Support) -> list[tuple[str, int]]:
        return sorted(s.items())

    states = [(sid, s.label, s.first, sup(s.support), s.example)
              for sid, s in sorted(model.states.items())]
    transitions = [(tid, t.src, t.rel, t.dst, t.first, sup(t.support), t.example)
                   for tid, t in sorted(model.transitions.items())]
    return msgspec.msgpack.encode((model.k, states, transitions))
