"""The reports page's question, read from the URL: which report, with which parameters.

``/gui/reports/NAME?PARAM=VALUE...`` runs report NAME with its parameters as typed in the
form (text, converted to the declared types by :func:`..query.reports.bind`, the one
parser of report parameters); a parameter left empty takes its default. The same query
string on ``/gui/reports/NAME.csv`` downloads the whole result as CSV. The page shows the
first :data:`ROW_CAP` rows with a notice when there are more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from ...query.reports import Parameter, Report, ReportError, bind

#: Rows the page shows at most (the CSV has them all).
ROW_CAP = 500


@dataclass(frozen=True, slots=True)
class ReportField:
    """One input of the form: ``value`` as the form shows it (what was given, else the
    default as text; empty for a null default), ``kind`` the input to draw."""

    param: Parameter
    value: str
    kind: str  # "text", "integer", "float", "boolean"


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """The parameters the URL gives (empty ones left out: they take their defaults),
    the form's fields, and what is missing before the report can run."""

    report: Report
    given: dict[str, str]
    fields: list[ReportField]
    missing: list[str]

    @property
    def ready(self) -> bool:
        return not self.missing

    def check(self) -> None:
        """ReportError (one line naming the parameter) when a value does not convert."""
        bind(self.report, self.given)


def _shown(param: Parameter) -> str:
    if param.default is None:
        return ""
    if isinstance(param.default, bool | int | float):
        return json.dumps(param.default)
    return str(param.default)


def read_query(report: Report, params: Mapping[str, str]) -> ReportQuery:
    """The report's parameters from the URL; a name the report does not declare is an
    error (a mistyped parameter would otherwise silently take its default)."""
    declared = {p.name for p in report.parameters}
    unknown = sorted(k for k in params if k not in declared)
    if unknown:
        raise ReportError(f"report {report.name} has no parameter {', '.join(unknown)} "
                          f"(its parameters: {', '.join(sorted(declared)) or 'none'})")
    given = {p.name: params[p.name] for p in report.parameters
             if params.get(p.name, "").strip()}
    fields = [ReportField(p, given.get(p.name, _shown(p)),
                          "text" if p.type == "string" else p.type)
              for p in report.parameters]
    missing = [p.name for p in report.parameters if p.required and p.name not in given]
    return ReportQuery(report, given, fields, missing)
