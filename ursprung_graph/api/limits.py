"""The limits every GraphQL request runs under, and the validation rule that checks them
before anything is executed.

Defaults follow graphql-armor's (depth 6-10, 15 aliases, 1,000-2,000 tokens) and are
documented in docs/api.md. Introspection counts like any other query, with one allowance:
in the depth, ``ofType`` hops inside introspection do not count (GraphiQL's own schema
query nests them seven deep); they still count as tokens and cost.

Depth, aliases and cost are computed once per fragment (memoized), so a document that
spreads fragments into each other exponentially is measured in linear time and refused,
never expanded. Cost: every field costs 1, a field that reads the store costs
:data:`STORE_COST`, and everything selected under a field with a ``first`` argument
counts ``first`` times (the largest page when ``first`` is a variable, whose value
validation does not see).
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request limits (see docs/api.md); times in seconds."""

    max_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 2000
    max_cost: int = 2000
    max_page: int = 100
    default_page: int = 20
    max_lineage_depth: int = 50
    default_lineage_depth: int = 10
    max_nodes: int = 5000
    default_max_nodes: int = 1000
    time_budget: float = 2.0
    max_body_bytes: int = 64 * 1024


#: Fields whose resolvers read the store.
STORE_FIELDS = frozenset({
    "file", "process", "node", "search", "lineage", "runs", "run", "pipelines",
    "compareRuns", "explanations", "inputs", "outputs", "intermediates", "programs",
    "processes", "environmentFiles", "usedBy", "lastRun", "sourceNode", "targetNode",
    "anomalies",
    "runReport",
})

STORE_COST = 10


class _Measure:
    """(depth, aliases, cost) of selection sets, fragments measured once."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode], limits: Limits) -> None:
        self.fragments = fragments
        self.default_page = limits.default_page
        self.max_page = limits.max_page
        self.done: dict[str, tuple[int, int, int]] = {}
        self.busy: set[str] = set()

    def selection(self, node: SelectionSetNode | None,
                  introspection: bool) -> tuple[int, int, int]:
        if node is None:
            return 0, 0, 0
        depth = aliases = cost = 0
        for sel in node.selections:
            if isinstance(sel, FieldNode):
                d, a, c = self.field(sel, introspection)
            elif isinstance(sel, InlineFragmentNode):
                d, a, c = self.selection(sel.selection_set, introspection)
            elif isinstance(sel, FragmentSpreadNode):
                d, a, c = self.fragment(sel.name.value, introspection)
            else:  # pragma: no cover - graphql has no other selection
                continue
            depth = max(depth, d)
            aliases += a
            cost += c
        return depth, aliases, cost

    def fragment(self, name: str, introspection: bool) -> tuple[int, int, int]:
        key = f"{name}|{introspection}"
        if key in self.done:
            return self.done[key]
        fragment = self.fragments.get(name)
        if fragment is None or key in self.busy:
            return 0, 0, 0  # unknown or circular: other rules report it
        self.busy.add(key)
        measured = self.selection(fragment.selection_set, introspection)
        self.busy.discard(key)
        self.done[key] = measured
        return measured

    def field(self, node: FieldNode, introspection: bool) -> tuple[int, int, int]:
        name = node.name.value
        inside = introspection or name.startswith("__")
        d, a, c = self.selection(node.selection_set, inside)
        hop = 0 if (inside and name == "ofType") or node.selection_set is None else 1
        own = STORE_COST if name in STORE_FIELDS else 1
        return d + hop, a + (1 if node.alias else 0), own + c * self.page(node)

    def page(self, node: FieldNode) -> int:
        for arg in node.arguments or ():
            if arg.name.value != "first":
                continue
            value = arg.value
            if isinstance(value, IntValueNode):
                return max(1, int(value.value))
            if isinstance(value, VariableNode):
                return self.max_page  # not known before execution: the worst case
        return 1 if not _is_connection(node) else self.default_page


def _is_connection(node: FieldNode) -> bool:
    return node.name.value in ("search", "runs")


def limits_rule(limits: Limits) -> type[ValidationRule]:
    """A validation rule refusing documents over ``limits`` (depth, aliases, cost), each
    with its own error code (``DEPTH_LIMIT``, ``ALIAS_LIMIT``, ``COST_LIMIT``)."""

    class LimitsRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            fragments = {d.name.value: d for d in document.definitions
                         if isinstance(d, FragmentDefinitionNode)}
            measure = _Measure(fragments, limits)
            for op in document.definitions:
                if not isinstance(op, OperationDefinitionNode):
                    continue
                depth, aliases, cost = measure.selection(op.selection_set, False)
                for value, limit, what, code in (
                        (depth, limits.max_depth, "depth", "DEPTH_LIMIT"),
                        (aliases, limits.max_aliases, "aliases", "ALIAS_LIMIT"),
                        (cost, limits.max_cost, "cost", "COST_LIMIT")):
                    if value > limit:
                        context.report_error(GraphQLError(
                            f"query {what} {value} is over the limit of {limit}",
                            op, extensions={"code": code}))

    return LimitsRule
