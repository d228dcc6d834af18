"""The model in the graph store: a ``WinnowerModel`` node per model name, its states as
``WinnowerState`` nodes and its transitions as ``WINNOWER_NEXT`` edges between them, each
with its support (``origins`` and ``counts``, parallel lists sorted by origin; ``support``,
the number of origins; ``total``, the sum of counts), the first epoch and one example.

Writes are MERGEs on the state key (``MODEL:ID``) and the transition id, setting the values
of the merged model: saving a model twice, or saving parts of it in any order, leaves the same
graph. One monitor owns a model name: it loads the stored model at start and merges into it,
so what it writes is always the merge of everything stored and received.

Queryable with Cypher, e.g. the transitions only one node exhibits::

    MATCH (a:WinnowerState {model: 'cluster'})-[t:WINNOWER_NEXT]->(b)
    WHERE t.support = 1 RETURN a.label, t.rel, b.label, t.origins
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..store.base import GraphStore
from ..store.cypher import Cypher
from .delta import Ordinals
from .model import Example, Model, State, Support, Transition

ROWS_PER_STATEMENT = 1000

UPSERT_MODEL = Cypher(
    "MERGE (m:WinnowerModel {name: $name}) "
    "SET m.k = $k, m.epoch = CASE WHEN m.epoch IS NULL OR $epoch > m.epoch THEN $epoch "
    "ELSE m.epoch END"
)

UPSERT_STATES = Cypher(
    "UNWIND $rows AS r "
    "MERGE (s:WinnowerState {key: r.key}) "
    "ON CREATE SET s.model = r.model, s.id = r.id, s.label = r.label "
    "SET s.ordinal = r.ordinal, s.first = r.first, s.origins = r.origins, "
    "s.counts = r.counts, "
    "s.support = r.support, s.total = r.total, s.example_ts = r.example_ts, "
    "s.example_origin = r.example_origin, s.example_text = r.example_text"
)

UPSERT_TRANSITIONS = Cypher(
    "UNWIND $rows AS r "
    "MATCH (a:WinnowerState {key: r.src}) "
    "MATCH (b:WinnowerState {key: r.dst}) "
    "MERGE (a)-[t:WINNOWER_NEXT {id: r.id}]->(b) "
    "SET t.ordinal = r.ordinal, t.rel = r.rel, t.first = r.first, t.origins = r.origins, "
    "t.counts = r.counts, "
    "t.support = r.support, t.total = r.total, t.example_ts = r.example_ts, "
    "t.example_origin = r.example_origin, t.example_text = r.example_text"
)

READ_MODEL = Cypher(
    "MATCH (m:WinnowerModel {name: $name}) RETURN m.k AS k, m.epoch AS epoch"
)

READ_STATES = Cypher(
    "MATCH (s:WinnowerState {model: $name}) "
    "RETURN s.id AS id, s.ordinal AS ordinal, s.label AS label, s.first AS first, "
    "s.origins AS origins, "
    "s.counts AS counts, s.example_ts AS example_ts, s.example_origin AS example_origin, "
    "s.example_text AS example_text"
)

READ_TRANSITIONS = Cypher(
    "MATCH (a:WinnowerState {model: $name})-[t:WINNOWER_NEXT]->(b:WinnowerState) "
    "RETURN t.id AS id, t.ordinal AS ordinal, a.id AS src, t.rel AS rel, b.id AS dst, "
    "t.first AS first, "
    "t.origins AS origins, t.counts AS counts, t.example_ts AS example_ts, "
    "t.example_origin AS example_origin, t.example_text AS example_text"
)

LIST_MODELS = Cypher(
    "MATCH (m:WinnowerModel) RETURN m.name AS name, m.k AS k, m.epoch AS epoch ORDER BY name"
)


def _support_fields(support: Support, example: Example | None) -> dict[str, Any]:
    origins = sorted(support)
    return {
        "origins": origins, "counts": [support[o] for o in origins], "support": len(origins),
        "total": sum(support.values()),
        "example_ts": example.ts if example else None,
        "example_origin": example.origin if example else None,
        "example_text": example.text if example else None,
    }


def _key(name: str, sid: int) -> str:
    return f"{name}:{sid}"


def save(store: GraphStore, name: str, model: Model, order: Ordinals | None = None, *,
         epoch: int = 0, states: Iterable[int] | None = None,
         transitions: Iterable[int] | None = None) -> None:
    """Write ``model`` (or only the given state and transition ids of it) under ``name``,
    with the monitor's ordinals (``order``, which must cover the model; default: a
    numbering by id)."""
    if order is None:
        order = Ordinals()
        order.cover(model)
    sids = list(model.states) if states is None else [s for s in states if s in model.states]
    tids = (list(model.transitions) if transitions is None
            else [t for t in transitions if t in model.transitions])
    srows = []
    for sid in sids:
        s = model.states[sid]
        srows.append({"key": _key(name, sid), "model": name, "id": sid, "label": s.label,
                      "ordinal": order.state_index[sid],
                      "first": s.first, **_support_fields(s.support, s.example)})
    trows = []
    for tid in tids:
        t = model.transitions[tid]
        trows.append({"id": tid, "src": _key(name, t.src), "dst": _key(name, t.dst),
                      "ordinal": order.transition_index[tid],
                      "rel": t.rel, "first": t.first,
                      **_support_fields(t.support, t.example)})
    statements: list[tuple[Cypher, dict[str, Any]]] = [
        (UPSERT_MODEL, {"name": name, "k": model.k, "epoch": epoch})]
    for statement, rows in ((UPSERT_STATES, srows), (UPSERT_TRANSITIONS, trows)):
        for i in range(0, len(rows), ROWS_PER_STATEMENT):
            statements.append((statement, {"rows": rows[i:i + ROWS_PER_STATEMENT]}))
    store.write(statements)


def _support(row: dict[str, Any]) -> Support:
    return dict(zip(row["origins"] or [], row["counts"] or [], strict=False))


def _example(row: dict[str, Any]) -> Example | None:
    if row["example_text"] is None:
        return None
    return Example(row["example_ts"] or 0, row["example_origin"] or "", row["example_text"])


def load(store: GraphStore, name: str) -> tuple[Model, Ordinals] | None:
    """The model stored under ``name`` and its ordinals, or None."""
    head = store.read(READ_MODEL, {"name": name})
    if not head:
        return None
    model = Model(k=head[0]["k"] or 0)
    srows = store.read(READ_STATES, {"name": name})
    trows = store.read(READ_TRANSITIONS, {"name": name})
    for row in srows:
        model.states[row["id"]] = State(row["label"], row["first"] or 0, _support(row),
                                        _example(row))
    for row in trows:
        model.transitions[row["id"]] = Transition(row["src"], row["rel"], row["dst"],
                                                  row["first"] or 0, _support(row),
                                                  _example(row))

    def by_ordinal(rows: list[dict[str, Any]]) -> list[int]:
        return [r["id"] for r in sorted(rows, key=lambda r: (r["ordinal"], r["id"]))]

    return model, Ordinals(by_ordinal(srows), by_ordinal(trows))


def model_names(store: GraphStore) -> list[str]:
    return [r["name"] for r in store.read(LIST_MODELS)]
