"""`ursprung runs compare` as a table: the changed and one-sided entries of each section."""

from __future__ import annotations

from collections.abc import Callable

from ..query.explain import Explanations
from ..query.types import Comparison, FileValue, Value


def _short(value: Value | FileValue, text: Callable[[str], str] = str, width: int = 40) -> str:
    if isinstance(value, FileValue):
        if value.sha256:
            shown = value.sha256[:12]
        elif value.size is not None:
            shown = f"{value.size} B"
        elif value.prior_write is not None:
            shown = "written before" if value.prior_write else "no write seen"
        else:
            shown = value.path or "?"
    else:
        shown = str(value)
    shown = text(shown)
    return shown if len(shown) <= width else shown[:width - 3] + "..."


def render(result: Comparison, text: Callable[[str], str] = str) -> str:
    """The human-readable table. ``text`` makes each string from the runs (ids, command
    lines, names, values) fit for the output, e.g. escapes control characters for a
    terminal (:func:`ursprung_graph.cli.common.printable`)."""
    a, b = result.a, result.b
    lines = [f"A: {text(str(a.id))}  {text(a.command or '')}",
             f"B: {text(str(b.id))}  {text(b.command or '')}", ""]
    rows: list[tuple[str, str, str, str, str]] = []
    sections = result.sections()
    for section, part in sections:
        for e in part.changed:
            rows.append((section, "changed", text(str(e.name)), _short(e.a, text),
                         _short(e.b, text)))
        for o in part.only_a:
            rows.append((section, "only in A", text(str(o.name)), _short(o.value, text), ""))
        for o in part.only_b:
            rows.append((section, "only in B", text(str(o.name)), "", _short(o.value, text)))
    if rows:
        head = ("section", "status", "name", "A", "B")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
        widths[2] = min(widths[2], 60)
        for r in [head, tuple("-" * w for w in widths), *rows]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    else:
        lines.append("no differences")
    same = [f"{s} {len(part.same)}" for s, part in sections if part.same]
    if same:
        lines += ["", "same: " + ", ".join(same)]
    return "\n".join(lines)


_FACT = {"inputs": "input", "params": "parameter", "programs": "program",
         "environment": "environment"}


def render_explanations(why: Explanations, text: Callable[[str], str] = str) -> str:
    """Why each changed output changed: the changed facts upstream of it, nearest first,
    with the process that used each (``runs compare --explain``)."""
    lines = ["why the outputs changed:"]
    if not why.items:
        lines.append("  no output changed")
    for item in why.items:
        if not item.facts:
            lines.append(f"  {text(item.output)}: nothing upstream of it changed")
            continue
        lines.append(f"  {text(item.output)}:")
        for f in item.facts:
            via = f.b_via or f.a_via
            by = f" (used by {text(via)})" if via else ""
            change = {"changed": "changed", "only_a": "only in A",
                      "only_b": "only in B"}[f.change]
            lines.append(f"    {_FACT[f.section]} {text(f.name)} {change}, "
                         f"{f.nearest()} hops up{by}")
    if why.truncated:
        lines.append(f"  (partial: {why.reason})")
    return "\n".join(lines)
