"""The anomalies of a model kept in the graph store: the one read behind `ursprung winnower
anomalies` and the API's ``anomalies`` field, so both answer the same."""

from __future__ import annotations

from ..store.base import GraphStore
from . import persist
from .anomalies import RARE, Report, rank
from .model import Model

#: The model `ursprung winnower monitor` keeps and readers read unless told otherwise.
CLUSTER_MODEL = "cluster"


class NoModel(LookupError):
    """No model of that name in the store."""


def stored_model(store: GraphStore, name: str) -> Model:
    """The model stored under ``name``; NoModel (naming the stored ones) when there is none."""
    loaded = persist.load(store, name)
    if loaded is None:
        known = ", ".join(persist.model_names(store)) or "none"
        raise NoModel(f"no Winnower model {name!r} in the store (models: {known})")
    return loaded[0]


def stored_anomalies(store: GraphStore, name: str = CLUSTER_MODEL, *, rare: float = RARE,
                     since: int | None = None) -> Report:
    """The anomalies of the stored model ``name``, rarest first (see `anomalies.rank`)."""
    return rank(stored_model(store, name), rare=rare, since=since)
