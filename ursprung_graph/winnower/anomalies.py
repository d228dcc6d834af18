"""Anomalies: behaviour that few origins exhibit, or that is new since a baseline epoch.

Ranking is at the label level (depth 0) whatever the model's k: the states of one label are
one behaviour, so a rare child does not make its parent look rare too. A label-level
transition (source label, edge type, target label) has the union of the support of the
model's transitions with those labels. It is *rare* when at most ``rare`` (a fraction) of
all origins exhibited it, and never when every origin did; it is *new* when it was first
seen in epoch ``since`` or later (an attack on every replica at once looks common, but it is
new relative to the model before it). States are reported only where no transition leads to
them (a root process): every other state comes with its incoming transition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec

from .induction import AS_LABEL
from .model import Example, Model, Support

MAX_EXAMPLES = 5
#: Rare unless told otherwise: exhibited by at most this fraction of the origins.
RARE = 0.2


class Instance(msgspec.Struct):
    """A concrete instance behind an anomaly: the node or run, when (epoch ns), what."""

    origin: str
    ts: int
    text: str


class Anomaly(msgspec.Struct, omit_defaults=True):
    """A rare or new label-level behaviour with where it was seen and concrete instances."""

    kind: str  # transition | state
    reasons: list[str]  # rare, new
    source: str  # the label (of the transition's source, or of the state)
    origins: Support  # origin -> count
    first: int
    rel: str = ""
    target: str = ""
    examples: list[Instance] = msgspec.field(default_factory=list)
    ids: list[int] = msgspec.field(default_factory=list)  # the model's ids (for drill)

    def text(self) -> str:
        what = f"{self.source} -{self.rel}-> {self.target}" if self.kind == "transition" \
            else self.source
        return what


class Report(msgspec.Struct):
    origins: list[str]  # every origin the model has seen
    transitions: int  # label-level transitions in the model
    anomalies: list[Anomaly]


class _Group(msgspec.Struct):
    support: Support
    first: int
    examples: list[Example]
    ids: list[int]


def _add(groups: dict[tuple[str, str, str], _Group], key: tuple[str, str, str], pid: int,
         support: Support, first: int, example: Example | None) -> None:
    g = groups.get(key)
    if g is None:
        g = groups[key] = _Group({}, first, [], [])
    g.ids.append(pid)
    for origin, count in support.items():
        g.support[origin] = g.support.get(origin, 0) + count
    g.first = min(g.first, first)
    if example is not None:
        g.examples.append(example)


def _expand(text: str, target: str) -> str:
    """An example whose target is written `AS_LABEL`, with the target spelled out."""
    if text.endswith(f"-> {AS_LABEL}"):
        return text[:-len(AS_LABEL)] + target.partition(" ")[2]
    return text


def label_transitions(model: Model) -> dict[tuple[str, str, str], _Group]:
    groups: dict[tuple[str, str, str], _Group] = {}
    states = model.states
    for tid, t in model.transitions.items():
        src, dst = states.get(t.src), states.get(t.dst)
        if src is None or dst is None:
            continue
        _add(groups, (src.label, t.rel, dst.label), tid, t.support, t.first, t.example)
    return groups


def origins_of(model: Model) -> list[str]:
    seen: set[str] = set()
    for s in model.states.values():
        seen.update(s.support)
    return sorted(seen)


def rank(model: Model, *, rare: float = RARE, since: int | None = None,
         origins: Iterable[str] | None = None) -> Report:
    """The anomalies of ``model``, rarest first (fewest origins, then fewest instances)."""
    everyone = sorted(origins) if origins is not None else origins_of(model)
    n = len(everyone)
    limit = max(1, math.floor(rare * n))
    transitions = label_transitions(model)
    targets = {dst for (_, _, dst) in transitions}
    states: dict[tuple[str, str, str], _Group] = {}
    for sid, s in model.states.items():
        if s.label not in targets:
            _add(states, (s.label, "", ""), sid, s.support, s.first, s.example)
    found: list[Anomaly] = []
    for kind, groups in (("transition", transitions), ("state", states)):
        for (src, rel, dst), grp in groups.items():
            reasons = []
            if len(grp.support) <= limit and len(grp.support) < n:
                reasons.append("rare")
            if since is not None and grp.first >= since:
                reasons.append("new")
            if not reasons:
                continue
            examples = [Instance(e.origin, e.ts, _expand(e.text, dst)) for e in
                        sorted(grp.examples, key=lambda e: (e.ts, e.origin))[:MAX_EXAMPLES]]
            found.append(Anomaly(kind, reasons, src, dict(sorted(grp.support.items())),
                                 grp.first, rel, dst, examples, sorted(grp.ids)))
    found.sort(key=lambda a: (len(a.origins), sum(a.origins.values()), a.kind != "transition",
                              a.source, a.rel, a.target))
    return Report(everyone, len(transitions), found)
