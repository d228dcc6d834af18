"""Auditor reports: one ``cypher/NAME.cypher`` file each, run with typed parameters.

A report file starts with a header of ``//`` lines, then one read-only statement::

    // title: Files deleted
    // description: Files unlinked between two times, with the process
    // that deleted them.
    // param: since integer = 0 -- epoch nanoseconds
    // param: host string = null -- optional; null matches every host
    MATCH ...

``param:`` lines are ``NAME TYPE [= DEFAULT] [-- text]``; TYPE is ``string``, ``integer``,
``float`` or ``boolean``; DEFAULT is a JSON value (``null`` allowed: the parameter is then
optional and passed as null); a parameter without one is required. A line holds one
parameter and no comma (the grammar test reads the same lines). Values are only ever
passed as query parameters, never put into the statement's text. The columns are the
aliases of the statement's last ``RETURN`` (every returned item must have one).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import UrsprungError
from ..schema.names import printable
from ..store.base import GraphStore
from ..store.cypher import Cypher

#: The reports that come with the project (the repository's ``cypher/`` folder).
REPORTS_DIR = Path(__file__).resolve().parents[2] / "cypher"

TYPES = ("string", "integer", "float", "boolean")
Value = str | int | float | bool | None

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_KEY_LINE = re.compile(r"//\s*(title|description|params?)\s*:\s*(.*)\Z", re.IGNORECASE)
_PARAM = re.compile(
    r"\$?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s+(?P<type>[a-z]+)"
    r"(?:\s*=\s*(?P<default>.*?))?(?:\s+--\s*(?P<text>.*))?\Z")
_LAST_RETURN = re.compile(r"\bRETURN\b(?!.*\bRETURN\b)(?P<items>.*?)(?:\bORDER\s+BY\b|\bSKIP\b|"
                          r"\bLIMIT\b|\Z)", re.IGNORECASE | re.DOTALL)
_ALIAS = re.compile(r"\bAS\s+`?([A-Za-z_][A-Za-z0-9_]*)`?", re.IGNORECASE)
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


class ReportError(UrsprungError, ValueError):
    """A report that cannot be loaded, or parameters it cannot run with (the message says
    which and why)."""

    exit_code = 2  # a usage error


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: str
    default: Value
    required: bool
    description: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    name: str
    title: str
    description: str
    parameters: tuple[Parameter, ...]
    columns: tuple[str, ...]
    statement: Cypher


@dataclass(frozen=True, slots=True)
class ReportResult:
    report: str
    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]


def parse_report(name: str, text: str) -> Report:
    """A report from its file's text; ReportError names the line that is wrong."""
    if not _NAME.match(name):
        raise ReportError(f"report name {name!r}: use lower-case letters, digits and _")
    title = ""
    description: list[str] = []
    params: list[Parameter] = []
    body_start = None
    lines = text.splitlines()
    last_key = None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("//"):
            body_start = number - 1
            break
        match = _KEY_LINE.match(stripped)
        if match is None:  # a continuation of the description, or a plain comment
            if last_key == "description":
                description.append(stripped[2:].strip())
            continue
        key, value = match.group(1).lower(), match.group(2).strip()
        last_key = key
        if key == "title":
            title = value
        elif key == "description":
            description.append(value)
        else:
            params.append(_parse_param(name, number, value))
    if body_start is None:
        raise ReportError(f"report {name}: no statement after the header")
    if not title:
        raise ReportError(f"report {name}: the header has no '// title:' line")
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ReportError(f"report {name}: a parameter is declared twice")
    body = "\n".join(lines[body_start:]).strip().rstrip(";")
    return Report(name=name, title=title, description=" ".join(description),
                  parameters=tuple(params), columns=_columns(name, body),
                  statement=Cypher(body))


def _parse_param(report: str, number: int, text: str) -> Parameter:
    where = f"report {report}, line {number}"
    if "," in text:
        raise ReportError(f"{where}: one parameter per 'param:' line, without commas")
    match = _PARAM.match(text)
    if match is None:
        raise ReportError(f"{where}: expected 'param: NAME TYPE [= DEFAULT] [-- text]'")
    name, kind = match.group("name"), match.group("type")
    if kind not in TYPES:
        raise ReportError(f"{where}: type {kind!r} is not one of {', '.join(TYPES)}")
    raw_default = match.group("default")
    if raw_default is None:
        return Parameter(name, kind, None, True, match.group("text") or "")
    try:
        default = json.loads(raw_default)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{where}: default {raw_default!r} is not a JSON value") from exc
    if default is not None:
        default = _typed(kind, default, f"{where}: default", text=False)
    return Parameter(name, kind, default, False, match.group("text") or "")


def _columns(report: str, body: str) -> tuple[str, ...]:
    match = _LAST_RETURN.search(body)
    if match is None:
        raise ReportError(f"report {report}: the statement has no RETURN")
    items = _split_items(match.group("items"))
    columns = []
    for item in items:
        alias = _ALIAS.findall(item)
        if not alias:
            raise ReportError(f"report {report}: returned item {item.strip()!r} needs "
                              "'AS name'")
        columns.append(alias[-1])
    return tuple(columns)


def _split_items(text: str) -> list[str]:
    """The comma-separated items of a RETURN, commas inside brackets and strings kept."""
    items, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [i for i in items if i.strip()]


def load_reports(directory: Path = REPORTS_DIR) -> dict[str, Report]:
    """Every ``*.cypher`` report of the directory, by name."""
    if not directory.is_dir():
        raise ReportError(f"no reports directory {directory}")
    reports = {}
    for path in sorted(directory.glob("*.cypher")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ReportError(f"{path}: cannot read: {exc}") from exc
        reports[path.stem] = parse_report(path.stem, text)
    return reports


def get_report(name: str, directory: Path = REPORTS_DIR) -> Report:
    reports = load_reports(directory)
    if name not in reports:
        raise ReportError(f"no report {name!r}; reports: {', '.join(sorted(reports))}")
    return reports[name]


def _typed(kind: str, value: object, where: str, *, text: bool = True) -> Value:
    """A value of the parameter's type: text (from a command line) is parsed when ``text``,
    values from JSON are checked (an integer is not taken for a boolean, nor a boolean for
    a number)."""
    if text and isinstance(value, str) and kind != "string":
        value = _parse_text(kind, value, where)
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[kind]
    if not ok:
        raise ReportError(f"{where}: expected {_article(kind)}, got {value!r}")
    if kind == "integer" and not -(2**63) <= value < 2**63:  # type: ignore[operator]
        raise ReportError(f"{where}: {value} does not fit in 64 bits")
    return float(value) if kind == "float" else value  # type: ignore[arg-type,return-value]


def _parse_text(kind: str, text: str, where: str) -> Value:
    clean = text.strip()
    if kind == "integer":
        try:
            return int(clean.replace("_", ""), 10)
        except ValueError:
            raise ReportError(f"{where}: expected an integer, got {text!r}") from None
    if kind == "float":
        try:
            return float(clean)
        except ValueError:
            raise ReportError(f"{where}: expected a number, got {text!r}") from None
    if clean.lower() in _TRUE:
        return True
    if clean.lower() in _FALSE:
        return False
    raise ReportError(f"{where}: expected true or false, got {text!r}")


def _article(kind: str) -> str:
    return "an integer" if kind == "integer" else f"a {kind}"


def bind(report: Report, given: Mapping[str, object]) -> dict[str, Value]:
    """Every parameter of the report with its value: the given ones converted to their
    types, defaults for the rest. Unknown names and missing required ones are errors."""
    known = {p.name: p for p in report.parameters}
    unknown = sorted(set(given) - set(known))
    if unknown:
        names = ", ".join(known) or "none"
        raise ReportError(f"report {report.name} has no parameter {', '.join(unknown)} "
                          f"(its parameters: {names})")
    values: dict[str, Value] = {}
    for param in report.parameters:
        if param.name in given:
            raw = given[param.name]
            values[param.name] = None if raw is None and not param.required else _typed(
                param.type, raw, f"report {report.name}: parameter {param.name}")
        elif param.required:
            raise ReportError(f"report {report.name}: parameter {param.name} "
                              f"({param.type}) is required")
        else:
            values[param.name] = param.default
    return values


def run_report(store: GraphStore, report: Report,
               given: Mapping[str, object] | None = None) -> ReportResult:
    """Run the report with the given parameters (validated first) in a read transaction."""
    values = bind(report, given or {})
    rows = store.read(report.statement, dict(values))
    return ReportResult(report=report.name, columns=report.columns,
                        rows=[tuple(row.get(c) for c in report.columns) for row in rows])


#: What a spreadsheet reads as the start of a formula (OWASP's CSV injection list; tab and
#: carriage return are escaped by :func:`printable` already).
_FORMULA = ("=", "+", "-", "@")


def cell_text(value: object) -> str:
    """A result value as one line of text: strings escaped by :func:`printable` (a newline,
    a bidi override or an escape sequence shows as ``\\xNN``/``\\uNNNN``), other values
    as JSON, null as nothing."""
    if value is None:
        return ""
    if isinstance(value, str):
        return printable(value)
    return printable(json.dumps(value, default=str))


def report_csv(result: ReportResult) -> str:
    """The result as CSV, header row first, cells as :func:`cell_text`. A text cell that
    starts like a formula (``= + - @``) gets a leading ``'``, so a spreadsheet shows it
    rather than evaluating it; numbers stay numbers."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        cells = []
        for value in row:
            text = cell_text(value)
            if isinstance(value, str) and text.startswith(_FORMULA):
                text = "'" + text
            cells.append(text)
        writer.writerow(cells)
    return out.getvalue()
