"""Comparing two runs: everything that can explain a difference.

``compare(a, b)`` takes two fact dicts from :func:`ursprung_graph.query.runs.run_facts` and
returns sections ``params``, ``inputs``, ``outputs``, ``programs``, ``environment``,
``metrics``, ``exit`` and ``duration``, each with ``same``, ``changed``, ``only_a`` and
``only_b``. Entries are ``{"name", "a", "b"}`` (``only_*``: ``{"name", "value"}``); file
entries also say how they were matched (``match``: relative, absolute, basename) and on what
basis their content was judged (``basis``).

Files are matched by path relative to each run's working directory, then by absolute path,
then by basename (only when the basename is unique on both sides among what is left).
Content is judged, in order of strength, by sha256; by size and mtime (files above the
hashing limit); for inputs without versions (runs from audit data) by the last write anyone
made before the run read the file (equal, including "none seen", means the same bytes as far
as the graph knows); for outputs without versions by their write times.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

SECTIONS = ("params", "inputs", "outputs", "programs", "environment", "metrics", "exit",
            "duration")

#: Durations within max(0.5 s, 10 % of the longer) count as the same.
DURATION_ABS_TOLERANCE = 0.5
DURATION_REL_TOLERANCE = 0.10


def _section() -> dict[str, list[dict[str, Any]]]:
    return {"same": [], "changed": [], "only_a": [], "only_b": []}


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "a": _head(a), "b": _head(b),
        "params": _maps(a.get("params") or {}, b.get("params") or {}),
        "inputs": _files(a.get("inputs") or [], b.get("inputs") or [], "input"),
        "outputs": _files(a.get("outputs") or [], b.get("outputs") or [], "output"),
        "programs": _files(a.get("programs") or [], b.get("programs") or [], "program",
                           relative_first=False),
        "environment": _maps(a.get("environment") or {}, b.get("environment") or {}),
        "metrics": _maps(a.get("metrics") or {}, b.get("metrics") or {}),
        "exit": _values({"exit_code": a.get("exit_code")}, {"exit_code": b.get("exit_code")}),
        "duration": _duration(a.get("duration"), b.get("duration")),
    }
    return out


def differs(result: dict[str, Any]) -> bool:
    """True if any section has a change or a one-sided entry."""
    return any(result[s][k] for s in SECTIONS for k in ("changed", "only_a", "only_b"))


def _head(run: dict[str, Any]) -> dict[str, Any]:
    return {k: run.get(k) for k in ("id", "pipeline", "command", "cwd", "host", "start",
                                    "end", "origin")}


def _maps(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out = _section()
    for name in sorted(set(a) | set(b)):
        if name in a and name in b:
            kind = "same" if a[name] == b[name] else "changed"
            out[kind].append({"name": name, "a": a[name], "b": b[name]})
        elif name in a:
            out["only_a"].append({"name": name, "value": a[name]})
        else:
            out["only_b"].append({"name": name, "value": b[name]})
    return out


def _values(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return _maps({k: v for k, v in a.items() if v is not None},
                 {k: v for k, v in b.items() if v is not None})


def _duration(a: float | None, b: float | None) -> dict[str, list[dict[str, Any]]]:
    out = _section()
    if a is None and b is None:
        return out
    if a is None:
        out["only_b"].append({"name": "seconds", "value": b})
    elif b is None:
        out["only_a"].append({"name": "seconds", "value": a})
    else:
        tolerance = max(DURATION_ABS_TOLERANCE, DURATION_REL_TOLERANCE * max(a, b))
        kind = "same" if abs(a - b) <= tolerance else "changed"
        out[kind].append({"name": "seconds", "a": round(a, 3), "b": round(b, 3)})
    return out


def match_files(a: list[dict[str, Any]], b: list[dict[str, Any]], *,
                relative_first: bool = True) -> tuple[list[tuple[str, str, dict, dict]],
                                                      list[dict], list[dict]]:
    """Pairs (name, how, fa, fb) and the unmatched of each side."""
    left = list(a)
    right = list(b)
    pairs: list[tuple[str, str, dict, dict]] = []
    keys = [("relative", lambda f: f.get("rel")), ("absolute", lambda f: f.get("path"))]
    if not relative_first:
        keys.reverse()
    keys.append(("basename", lambda f: posixpath.basename(f.get("path") or "")))
    for how, key in keys:
        index_b: dict[str, list[dict]] = {}
        for f in right:
            k = key(f)
            if k:
                index_b.setdefault(k, []).append(f)
        index_a: dict[str, list[dict]] = {}
        for f in left:
            k = key(f)
            if k:
                index_a.setdefault(k, []).append(f)
        matched_a, matched_b = set(), set()
        for k, fas in index_a.items():
            fbs = index_b.get(k)
            if not fbs or len(fas) != 1 or len(fbs) != 1:
                continue
            pairs.append((k, how, fas[0], fbs[0]))
            matched_a.add(id(fas[0]))
            matched_b.add(id(fbs[0]))
        left = [f for f in left if id(f) not in matched_a]
        right = [f for f in right if id(f) not in matched_b]
    pairs.sort(key=lambda p: p[0])
    return pairs, left, right


def same_content(fa: dict[str, Any], fb: dict[str, Any], role: str) -> tuple[bool, str]:
    """(equal?, basis) for two observed files (see the module docstring)."""
    ha, hb = fa.get("sha256"), fb.get("sha256")
    if ha and hb:
        return ha == hb, "sha256"
    if fa.get("size") is not None and fb.get("size") is not None:
        return (fa.get("size"), fa.get("mtime")) == (fb.get("size"), fb.get("mtime")), \
            "size+mtime"
    if role == "input" or role == "program":
        return fa.get("prior_write") == fb.get("prior_write"), "prior write"
    return False, "write time"


def _file_value(f: dict[str, Any]) -> dict[str, Any]:
    keys = ("path", "sha256", "size", "mtime", "prior_write", "written")
    return {k: f[k] for k in keys if f.get(k) is not None}


def _files(a: list[dict[str, Any]], b: list[dict[str, Any]], role: str, *,
           relative_first: bool = True) -> dict[str, list[dict[str, Any]]]:
    out = _section()
    pairs, only_a, only_b = match_files(a, b, relative_first=relative_first)
    for name, how, fa, fb in pairs:
        equal, basis = same_content(fa, fb, role)
        out["same" if equal else "changed"].append(
            {"name": name, "match": how, "basis": basis, "a": _file_value(fa),
             "b": _file_value(fb)})
    for side, files in (("only_a", only_a), ("only_b", only_b)):
        for f in sorted(files, key=lambda f: f.get("path") or ""):
            out[side].append({"name": f.get("rel") or f.get("path"), "value": _file_value(f)})
    return out


# --------------------------------------------------------------------------- text


def _short(value: Any, text: Callable[[str], str] = str, width: int = 40) -> str:
    if isinstance(value, dict):
        if value.get("sha256"):
            shown = value["sha256"][:12]
        elif value.get("size") is not None:
            shown = f"{value['size']} B"
        elif "prior_write" in value:
            shown = "written before" if value["prior_write"] else "no write seen"
        else:
            shown = value.get("path", "?")
    else:
        shown = str(value)
    shown = text(shown)
    return shown if len(shown) <= width else shown[:width - 3] + "..."


def render(result: dict[str, Any], text: Callable[[str], str] = str) -> str:
    """The human-readable table. ``text`` makes each string from the runs (ids, command
    lines, names, values) fit for the output, e.g. escapes control characters for a
    terminal (:func:`ursprung_graph.cli.common.printable`)."""
    a, b = result["a"], result["b"]
    lines = [f"A: {text(str(a['id']))}  {text(a.get('command') or '')}",
             f"B: {text(str(b['id']))}  {text(b.get('command') or '')}", ""]
    rows: list[tuple[str, str, str, str, str]] = []
    for section in SECTIONS:
        part = result[section]
        for e in part["changed"]:
            rows.append((section, "changed", text(str(e["name"])), _short(e["a"], text),
                         _short(e["b"], text)))
        for e in part["only_a"]:
            rows.append((section, "only in A", text(str(e["name"])), _short(e["value"], text),
                         ""))
        for e in part["only_b"]:
            rows.append((section, "only in B", text(str(e["name"])), "",
                         _short(e["value"], text)))
    if rows:
        head = ("section", "status", "name", "A", "B")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
        widths[2] = min(widths[2], 60)
        for r in [head, tuple("-" * w for w in widths), *rows]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    else:
        lines.append("no differences")
    same = [f"{s} {len(result[s]['same'])}" for s in SECTIONS if result[s]["same"]]
    if same:
        lines += ["", "same: " + ", ".join(same)]
    return "\n".join(lines)
