"""The auditor reports of ``cypher/`` in the GraphQL API: ``reports`` lists them,
``runReport(name, params)`` runs one (:mod:`ursprung_graph.query.reports` does the work).

Parameters arrive as name/value pairs of text, converted to the declared types exactly as
``ursprung report run --param k=v`` does; a bad one is a ``BAD_USER_INPUT`` error naming
it, and values only ever travel as query parameters. A result is its columns and rows of
cells; a cell is null, a string as it is, or any other value as its JSON text (integers
stay exact: epoch nanoseconds do not fit a JSON number's double). A run starts only within
the request's time budget, answers ``TIME_BUDGET`` when the statement outlasts it, and
keeps at most ``maxRows`` rows (the API's node limit), saying so in ``truncated``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import strawberry

from ..query import reports as q
from .context import Context
from .errors import ApiError

Info = strawberry.Info[Context, None]


@strawberry.type(description="A parameter of a report.")
class ReportParameter:
    name: str = strawberry.field(description="Its name, as `runReport` takes it.")
    type: str = strawberry.field(description="string, integer, float or boolean.")
    required: bool = strawberry.field(description="Whether it must be given.")
    default: str | None = strawberry.field(
        description="The default as JSON text (null when required or when the default is "
                    "null, which makes the parameter optional).")
    description: str = strawberry.field(description="What it means.")

    @classmethod
    def of(cls, p: q.Parameter) -> ReportParameter:
        return cls(name=p.name, type=p.type, required=p.required,
                   default=None if p.default is None else json.dumps(p.default),
                   description=p.description)


@strawberry.type(description="An auditor report: one parameterized Cypher statement.")
class Report:
    name: str = strawberry.field(description="Its name (the file's, without .cypher).")
    title: str = strawberry.field(description="One line saying what it lists.")
    description: str = strawberry.field(description="What it is for and how to read it.")
    columns: list[str] = strawberry.field(description="The columns of its rows, in order.")
    parameters: list[ReportParameter] = strawberry.field(description="Its parameters.")

    @classmethod
    def of(cls, r: q.Report) -> Report:
        return cls(name=r.name, title=r.title, description=r.description,
                   columns=list(r.columns),
                   parameters=[ReportParameter.of(p) for p in r.parameters])


@strawberry.input(description="One parameter of a report run.")
class ReportParamInput:
    name: str = strawberry.field(description="The parameter's name.")
    value: str | None = strawberry.field(
        description="Its value as text (converted to the declared type, as on the command "
                    "line); null for an optional parameter means null.")


@strawberry.type(description="The rows a report returned.")
class ReportResult:
    report: str = strawberry.field(description="The report's name.")
    columns: list[str] = strawberry.field(description="Column names, in order.")
    rows: list[list[str | None]] = strawberry.field(
        description="Rows of cells: null, a string as it is, or another value as JSON text.")
    truncated: bool = strawberry.field(
        description="Whether rows past `maxRows` were left out.")


def cell(value: object) -> str | None:
    """A value of a row as the API gives it."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _given(params: list[ReportParamInput] | None) -> dict[str, object]:
    given: dict[str, object] = {}
    for p in params or ():
        if p.name in given:
            raise ApiError(f"parameter {p.name} given twice")
        given[p.name] = p.value
    return given


def list_reports() -> list[Report]:
    return [Report.of(r) for r in q.load_reports().values()]


async def run_report(info: Info, name: str, params: list[ReportParamInput] | None,
                     max_rows: int | None) -> ReportResult:
    ctx = info.context
    limits = ctx.limits
    max_rows = limits.default_max_nodes if max_rows is None else max_rows
    if not 1 <= max_rows <= limits.max_nodes:
        raise ApiError(f"maxRows must be between 1 and {limits.max_nodes}")
    report = q.get_report(name)  # a ReportError is BAD_USER_INPUT with its message
    given = _given(params)
    q.bind(report, given)  # refused before the store is asked
    try:
        result = await asyncio.wait_for(ctx.call(q.run_report, ctx.store, report, given),
                                        timeout=max(ctx.left(), 0.001))
    except TimeoutError:
        raise ApiError(f"report {name} did not finish within the request's time budget of "
                       f"{limits.time_budget:g} s", "TIME_BUDGET") from None
    return ReportResult(report=result.report, columns=list(result.columns),
                        rows=[[cell(v) for v in row] for row in result.rows[:max_rows]],
                        truncated=len(result.rows) > max_rows)


NAME = Annotated[str, strawberry.argument(description="The report's name (see `reports`).")]
PARAMS = Annotated[list[ReportParamInput] | None, strawberry.argument(
    description="Its parameters; the others take their defaults.")]
MAX_ROWS = Annotated[int | None, strawberry.argument(
    description="Keep at most this many rows (default 1000, at most 5000) and say so in "
                "`truncated`.")]
