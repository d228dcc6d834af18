"""The API's explanations of a comparison (:func:`...query.explain.explain`), as the compare
page shows them beside the sections: for each changed output, the changed facts upstream of
it, nearest first, each linked to its node in the overlay graph.

A fact's node: an input or program is the file at either run's path of it; a parameter is
the process that used it (the command line the explanation names as ``via``), or the run's
own process when only the run's command has it; an environment entry named by a path is
that file. A fact whose node is not in the overlay gets no link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...query.explain import ExplainedFact, Explanations, changed_facts
from ...query.types import Comparison, FileNode, LineageNode, ProcessNode

_CHANGE = {"changed": "changed", "only_a": "only in A", "only_b": "only in B"}


@dataclass(frozen=True, slots=True)
class FactLink:
    section: str
    name: str
    change: str  # changed, only in A, only in B
    where: str  # hops in each run
    via: str  # the nearest process that used it
    node: str  # the overlay node's id, or ""


@dataclass(frozen=True, slots=True)
class OutputWhy:
    output: str
    node: str
    facts: list[FactLink]


class _Index:
    """Overlay node ids by file path and by process command line."""

    def __init__(self, nodes: Sequence[LineageNode]) -> None:
        self.paths: dict[str, str] = {}
        self.commands: dict[str, str] = {}
        for n in nodes:
            if isinstance(n, FileNode) and n.path:
                self.paths.setdefault(n.path, n.id)
            elif isinstance(n, ProcessNode) and n.cmdline:
                self.commands.setdefault(n.cmdline, n.id)

    def file(self, *paths: str | None) -> str:
        return next((self.paths[p] for p in paths if p and p in self.paths), "")

    def process(self, *commands: str | None) -> str:
        return next((self.commands[c] for c in commands if c and c in self.commands), "")


def _hops(d: int | None) -> str:
    return "not upstream" if d is None else f"{d} hop{'' if d == 1 else 's'}"


def explained(found: Explanations, cmp: Comparison,
              nodes: Sequence[LineageNode]) -> dict[str, OutputWhy]:
    """Each explained output by its name in the comparison's outputs section."""
    index = _Index(nodes)
    paths = {(f.section, f.name): (f.a, f.b) for f in changed_facts(cmp)}
    outputs = {e.name: (e.a.path, e.b.path) for e in cmp.outputs.changed}

    def node_of(f: ExplainedFact) -> str:
        a, b = paths.get((f.section, f.name), (None, None))
        if f.section in ("inputs", "programs"):
            return index.file(a, b)
        if f.section == "environment" and f.name.startswith("/"):
            return index.file(f.name)
        return index.process(f.a_via, f.b_via) or index.process(cmp.a.command, cmp.b.command)

    out: dict[str, OutputWhy] = {}
    for item in found.items:
        facts = [FactLink(f.section, f.name, _CHANGE[f.change],
                          f"A: {_hops(f.a_distance)}, B: {_hops(f.b_distance)}",
                          f.a_via or f.b_via or "", node_of(f)) for f in item.facts]
        out[item.output] = OutputWhy(item.output, index.file(*outputs.get(item.output, ())),
                                     facts)
    return out
