"""Induction: the model of an abstracted provenance graph, and acceptance of a new graph.

A vertex's signature to depth 0 is its label; to depth i it is its label together with the
*set* of (edge type, signature to depth i-1) of its out-neighbours. Vertices with equal
signatures to depth k become one state; an edge becomes the transition (state of its source,
type, state of its target). Because the neighbours enter as a set, a thousand identical
requests handled by one server collapse into one repeated pattern, and the model of a graph
is a function of the graph alone: the same behaviour on any node gives the same states
with the same ids.

The set is combined by summing the hashes of its distinct elements (order-free, no sorting),
so computing all signatures costs k passes over the edges, and accepting a graph (computing
its states and transitions and looking each up in the model) is linear in its size.

Structure follows out-edges (process -> child, file, socket; old name -> new name), so an
anomaly changes the states of the vertices above it up to k levels; report anomalies at the
label level (`anomalies`) and use k > 0 for a finer model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from hashlib import blake2b

from .abstraction import Abstractor, Context
from .model import Example, Model, State, Transition
from .pgraph import ENDPOINT, FILE, PROCESS, ProvGraph, Vertex

MASK64 = (1 << 64) - 1
EXAMPLE_CHARS = 240


def _h(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


def state_id(sig: int) -> int:
    """Ids fit a signed 64-bit integer (both graph stores' integer type)."""
    return sig >> 1


def transition_id(src: int, rel: str, dst: int) -> int:
    return _h(b"t%d\0%s\0%d" % (src, rel.encode(), dst)) >> 1


#: An example's target written as this is exactly what its label says (nothing abstracted).
AS_LABEL = "="


def target_text(v: Vertex, label: str) -> str:
    """The concrete target of an edge, or `AS_LABEL` when its label already is concrete
    (most library and system files): examples cost bytes only where they tell something."""
    if v.kind == FILE and label == f"file {v.path}":
        return AS_LABEL
    if v.kind == ENDPOINT and label == f"{v.family} {v.address}:{v.port}":
        return AS_LABEL
    return describe(v)


def brief(v: Vertex) -> str:
    """The acting side of an edge, briefly: where and which process (what it ran is in the
    example of the edge that created it)."""
    return f"{v.host} pid {v.pid}" if v.kind == PROCESS else describe(v)


def describe(v: Vertex) -> str:
    """The concrete vertex as one short line (for examples)."""
    if v.kind == PROCESS:
        text = f"{v.host} pid {v.pid} {v.exe or '?'} {' '.join(v.argv)}"
    elif v.kind == FILE:
        text = f"{v.host}:{v.path}"
    elif v.kind == ENDPOINT:
        text = f"{v.family} {v.address}:{v.port}" if v.port is not None else f"{v.address}"
    else:
        text = f"{v.host} {v.kind} {v.key}"
    return text[:EXAMPLE_CHARS]


@dataclass(slots=True)
class Induced:
    """The model of one graph (support from ``origin`` only) and each vertex's state."""

    model: Model
    state_of: dict[str, int] = field(default_factory=dict)


def label_signature(label: str) -> int:
    """A vertex's signature to depth 0."""
    return _h(b"l" + label.encode())


def _element(rel: bytes, child: int) -> int:
    return _h(b"e%s\0%d" % (rel, child))


def _node(label_hash: int, elements: set[int], alone: int) -> int:
    return _h(b"s%d\0%d" % (label_hash, sum(elements) & MASK64)) if elements else alone


def depth1_state_id(label: str, out: Iterable[tuple[str, str]]) -> int:
    """The id of a depth-1 state from its label and the (edge type, target label) of its
    transitions: what a monitor computes instead of receiving ids (at k = 1 a state is its
    label and the labels one step below it)."""
    elements = {_element(rel.encode(), label_signature(dst)) for rel, dst in out}
    return state_id(_node(_h(b"L" + label.encode()), elements, label_signature(label)))


def signatures(graph: ProvGraph, labels: dict[str, str], k: int) -> dict[str, int]:
    """Each vertex's signature to depth ``k`` (see the module docstring)."""
    sig = {key: label_signature(label) for key, label in labels.items()}
    if k <= 0:
        return sig
    out = graph.out_edges()
    label_hash = {key: _h(b"L" + label.encode()) for key, label in labels.items()}
    rel_hash: dict[str, bytes] = {}
    for _ in range(k):
        nxt: dict[str, int] = {}
        for key, edges in out.items():
            seen: set[int] = set()
            for e in edges:
                rb = rel_hash.get(e.rel)
                if rb is None:
                    rb = rel_hash[e.rel] = e.rel.encode()
                seen.add(_element(rb, sig[e.dst]))
            nxt[key] = _node(label_hash[key], seen, sig[key])
        sig = nxt
    return sig


def induce(graph: ProvGraph, abstractor: Abstractor, *, k: int, origin: str, epoch: int = 0,
           context: Context | Callable[[Vertex], Context] | None = None,
           examples: bool = True) -> Induced:
    """The model of ``graph`` as seen from ``origin`` in ``epoch``: each state and
    transition counted once per vertex or edge that maps to it, with the earliest concrete
    instance as its example."""
    ctx_of: Callable[[Vertex], Context]
    if context is None:
        ctx = Context()
        ctx_of = lambda v: ctx  # noqa: E731
    elif isinstance(context, Context):
        fixed = context
        ctx_of = lambda v: fixed  # noqa: E731
    else:
        ctx_of = context
    labels = {key: abstractor.label(v, ctx_of(v)) for key, v in graph.vertices.items()}
    sig = signatures(graph, labels, k)
    model = Model(k=k)
    state_of: dict[str, int] = {}
    for key, v in graph.vertices.items():
        sid = state_id(sig[key])
        state_of[key] = sid
        s = model.states.get(sid)
        ex = Example(v.first, origin, describe(v)) if examples else None
        if s is None:
            model.states[sid] = State(labels[key], epoch, {origin: 1}, ex)
        else:
            s.support[origin] += 1
            if ex is not None and (s.example is None or ex.ts < s.example.ts):
                s.example = ex
    vertices = graph.vertices
    for e in graph.edges.values():
        if e.src not in vertices or e.dst not in vertices:
            continue
        src, dst = state_of[e.src], state_of[e.dst]
        tid = transition_id(src, e.rel, dst)
        t = model.transitions.get(tid)
        ex = (Example(e.first, origin,
                      f"{brief(vertices[e.src])} -{e.rel}-> "
                      f"{target_text(vertices[e.dst], labels[e.dst])}")
              if examples else None)
        if t is None:
            model.transitions[tid] = Transition(src, e.rel, dst, epoch, {origin: 1}, ex)
        else:
            t.support[origin] += 1
            if ex is not None and (t.example is None or ex.ts < t.example.ts):
                t.example = ex
    return Induced(model, state_of)


@dataclass(slots=True)
class Unaccepted:
    """What a model does not accept of a graph's model: state and transition ids."""

    states: list[int] = field(default_factory=list)
    transitions: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.states or self.transitions)


def unaccepted(known_states: set[int] | dict[int, State],
               known_transitions: set[int] | dict[int, Transition],
               local: Model) -> Unaccepted:
    """The parts of ``local`` that the model with these ids does not accept (linear)."""
    return Unaccepted(
        [sid for sid in local.states if sid not in known_states],
        [tid for tid in local.transitions if tid not in known_transitions],
    )


def accepts(model: Model, graph: ProvGraph, abstractor: Abstractor,
            context: Context | None = None) -> bool:
    """Whether ``model`` accepts ``graph``: every state and transition of it is known."""
    local = induce(graph, abstractor, k=model.k, origin="", context=context,
                   examples=False).model
    return not unaccepted(model.states, model.transitions, local)
