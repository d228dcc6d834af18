"""The GraphQL view of Winnower's anomalies (`Query.anomalies`): the rare and new
behaviour of a model kept in the graph store by `ursprung winnower monitor`, or of the
model over one pipeline's runs, exactly as `ursprung winnower anomalies --json` (and
`winnower.runs.runs_anomalies`) give it: the one read is :mod:`ursprung_graph.winnower.stored`.

State and transition ids are 63-bit and epochs and times may pass 2^31, so they are decimal
strings (GraphQL's ``Int`` has 32 bits).
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from ..winnower import anomalies as anomalies_w
from ..winnower.abstraction import Abstractor
from ..winnower.runs import NoRuns, runs_anomalies
from ..winnower.stored import CLUSTER_MODEL, NoModel, stored_anomalies
from .context import Context
from .errors import ApiError

Info = strawberry.Info[Context, None]

#: Longest model or pipeline name accepted.
MAX_NAME = 1000


@strawberry.type(description="How often one node (or run) exhibited a behaviour.")
class OriginCount:
    origin: str = strawberry.field(description="The node (replica) or run id.")
    count: int = strawberry.field(description="How many times it exhibited it.")


@strawberry.type(description="A concrete instance behind an anomaly.")
class AnomalyInstance:
    origin: str = strawberry.field(description="The node (replica) or run it happened on.")
    ts: str = strawberry.field(description="When: epoch nanoseconds as a decimal string.")
    text: str = strawberry.field(description="The concrete vertices, as text.")


@strawberry.type(description="A rare or new label-level behaviour of a Winnower model.")
class Anomaly:
    kind: str = strawberry.field(description="`transition` or `state` (a root process).")
    reasons: list[str] = strawberry.field(
        description="`rare` (few origins exhibited it), `new` (first seen at or after "
                    "`since`), or both.")
    source: str = strawberry.field(
        description="The label of the transition's source, or of the state.")
    rel: str = strawberry.field(description="The transition's edge type (empty for a state).")
    target: str = strawberry.field(
        description="The label of the transition's target (empty for a state).")
    text: str = strawberry.field(description="The behaviour in one line.")
    first: str = strawberry.field(
        description="The epoch (or run index) it was first seen in, as a decimal string.")
    origins: list[OriginCount] = strawberry.field(
        description="The nodes or runs that exhibited it, by name.")
    examples: list[AnomalyInstance] = strawberry.field(
        description="Concrete instances, oldest first (at most 5).")
    ids: list[str] = strawberry.field(
        description="The model's state or transition ids (decimal strings), for "
                    "`ursprung winnower drill`.")

    @classmethod
    def of(cls, a: anomalies_w.Anomaly) -> Anomaly:
        return cls(kind=a.kind, reasons=list(a.reasons), source=a.source, rel=a.rel,
                   target=a.target, text=a.text(), first=str(a.first),
                   origins=[OriginCount(origin=o, count=n) for o, n in a.origins.items()],
                   examples=[AnomalyInstance(origin=e.origin, ts=str(e.ts), text=e.text)
                             for e in a.examples],
                   ids=[str(i) for i in a.ids])


@strawberry.type(description="The anomalies of one Winnower model, rarest first.")
class AnomalyReport:
    model: str = strawberry.field(
        description="The stored model's name, or `runs:PIPELINE` for a pipeline's runs.")
    origins: list[str] = strawberry.field(
        description="Every node (or run) the model has seen.")
    transitions: int = strawberry.field(
        description="Label-level transitions in the model.")
    total_count: int = strawberry.field(description="Anomalies in all (before `first`).")
    anomalies: list[Anomaly] = strawberry.field(
        description="The first `first` anomalies, rarest first.")


def _name(value: str, what: str) -> str:
    if not value or len(value) > MAX_NAME or "\x00" in value:
        raise ApiError(f"{what} must be 1 to {MAX_NAME} characters without NUL")
    return value


async def resolve_anomalies(
        info: Info,
        model: Annotated[str | None, strawberry.argument(
            description=f"The stored model (default `{CLUSTER_MODEL}`, what `ursprung "
                        "winnower monitor` keeps).")] = None,
        pipeline: Annotated[str | None, strawberry.argument(
            description="Instead of a stored model: the model over this pipeline's "
                        "recorded runs (runs as replicas; origins are run ids).")] = None,
        rare: Annotated[float | None, strawberry.argument(
            description=f"Rare: exhibited by at most this fraction of the origins "
                        f"(0 to 1, default {anomalies_w.RARE}).")] = None,
        since: Annotated[int | None, strawberry.argument(
            description="Also report what was first seen in this epoch (or run index) or "
                        "later: new relative to the model before it.")] = None,
        first: Annotated[int | None, strawberry.argument(
            description="How many anomalies (default 20, at most 100).")] = None,
) -> AnomalyReport:
    ctx = info.context
    size = ctx.limits.default_page if first is None else first
    if not 1 <= size <= ctx.limits.max_page:
        raise ApiError(f"first must be between 1 and {ctx.limits.max_page}")
    fraction = anomalies_w.RARE if rare is None else rare
    if not 0 <= fraction <= 1:
        raise ApiError("rare must be between 0 and 1")
    if model is not None and pipeline is not None:
        raise ApiError("give model or pipeline, not both")
    try:
        if pipeline is not None:
            name = f"runs:{_name(pipeline, 'pipeline')}"
            report = await ctx.call(runs_anomalies, ctx.store, pipeline, Abstractor(),
                                    rare=fraction, since=since)
        else:
            name = _name(model or CLUSTER_MODEL, "model")
            report = await ctx.call(stored_anomalies, ctx.store, name, rare=fraction,
                                    since=since)
    except (NoModel, NoRuns) as exc:
        raise ApiError(str(exc), "NOT_FOUND") from exc
    return AnomalyReport(model=name, origins=report.origins, transitions=report.transitions,
                         total_count=len(report.anomalies),
                         anomalies=[Anomaly.of(a) for a in report.anomalies[:size]])
