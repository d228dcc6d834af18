"""`ursprung runs compare` as a table: the changed and one-sided entries of each section."""

from __future__ import annotations

from collections.abc import Callable

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
