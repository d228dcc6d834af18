"""What every resolver of one request shares: the store, the limits, the request's
deadline, and the DataLoaders that batch and cache its reads (no N+1 storms: the nodes
at the ends of many edges are one statement; the facts of all runs a response lists are a
few statements together, each run's read once per request however often asked for).

Store calls are blocking; :meth:`Context.call` runs them in a worker thread so that the
event loop keeps serving other requests, and refuses to start one after the deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from strawberry.dataloader import DataLoader

from ..query.classify import Classifier
from ..query.nodes import nodes_by_key
from ..query.runs import runs_facts
from ..query.types import LineageNode, RunFacts, RunSummary
from ..store.base import GraphStore
from .errors import ApiError
from .limits import Limits

T = TypeVar("T")


@dataclass
class Context:
    store: GraphStore
    classifier: Classifier
    limits: Limits
    deadline: float
    nodes: DataLoader[str, LineageNode | None] = field(init=False)
    facts: DataLoader[str, RunFacts] = field(init=False)
    summaries: dict[str, RunSummary] = field(default_factory=dict)
    truncated: int = 0  # partial answers given in this request

    def __post_init__(self) -> None:
        self.nodes = DataLoader(load_fn=self._load_nodes)
        self.facts = DataLoader(load_fn=self._load_facts)

    @property
    def walk_deadline(self) -> float:
        """When walks must stop: a quarter of the budget is kept for what follows them
        (reading the nodes found, building the answer)."""
        return self.deadline - self.limits.time_budget / 4

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """``fn(*args, **kwargs)`` in a worker thread, unless the time budget is spent."""
        if self.left() <= 0:
            raise ApiError(f"the request's time budget of {self.limits.time_budget:g} s is "
                           "spent; this field was not computed", "TIME_BUDGET")
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _load_nodes(self, keys: list[str]) -> list[LineageNode | None]:
        found = await self.call(nodes_by_key, self.store, keys)
        return [found.get(k) for k in keys]

    async def _load_facts(self, run_keys: list[str]) -> list[RunFacts]:
        runs = [self.summaries[k] for k in run_keys]
        return await self.call(runs_facts, self.store, runs, self.classifier)

    async def run_facts(self, run: RunSummary) -> RunFacts:
        self.summaries[run.key] = run
        return await self.facts.load(run.key)
