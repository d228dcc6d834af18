"""Conditions compiled once: each rule's condition becomes one Python function of the event.

The function's source is generated from the condition tree: field access is the field's
expression from :mod:`.fields` (resolved at load), values and precompiled regexes are bound
as constants of the function, never pasted into its text. So testing a rule against an
event is one call, with no lookups by name. :func:`possible_kinds` says which event kinds a
condition can be true for, which lets the engine skip a rule for all other events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..schema.event import Event, Kind
from . import fields as F
from . import model as m

_NUMERIC_OPS = {"=": "==", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}


def compile_condition(cond: m.Condition) -> Callable[[Event], bool]:
    consts: dict[str, Any] = dict(F.EXPR_GLOBALS)
    body = _expr(cond, consts, {})
    return eval(f"lambda e: bool({body})", consts)  # text from our field table only


def compile_group(conds: list[tuple[int, m.Condition]]) -> Callable[[Event], list[int]]:
    """One function testing several conditions on an event: the indexes of those that
    hold, in order. Each field they use is computed once per event (a command line joined
    once for all the rules that look at it)."""
    consts: dict[str, Any] = dict(F.EXPR_GLOBALS)
    used: dict[str, str] = {}
    by_name: dict[str, F.Field] = {}
    for _, cond in conds:
        for f in _fields(cond):
            used.setdefault(f.name, f"_f{len(used)}")
            by_name[f.name] = f
    lines = ["def _group(e):"]
    lines += [f"    {var} = {by_name[name].expr}" for name, var in used.items()]
    lines.append("    out = []")
    for index, cond in conds:
        lines.append(f"    if {_expr(cond, consts, used)}: out.append({index})")
    lines.append("    return out")
    exec("\n".join(lines), consts)  # text from our field table only
    group: Callable[[Event], list[int]] = consts["_group"]
    return group


def _fields(cond: m.Condition) -> list[F.Field]:
    if isinstance(cond, m.And | m.Or):
        return [f for c in cond.items for f in _fields(c)]
    if isinstance(cond, m.Not):
        return _fields(cond.item)
    return [cond.field] if cond.field is not None else []


def _expr(cond: m.Condition, consts: dict[str, Any], hoisted: dict[str, str]) -> str:
    """The condition as a Python expression over ``e``; a field named in ``hoisted`` is
    read from that variable instead of computed."""
    if isinstance(cond, m.And):
        return "(" + " and ".join(_expr(c, consts, hoisted) for c in cond.items) + ")"
    if isinstance(cond, m.Or):
        return "(" + " or ".join(_expr(c, consts, hoisted) for c in cond.items) + ")"
    if isinstance(cond, m.Not):
        return f"(not {_expr(cond.item, consts, hoisted)})"
    field = cond.field
    if field is None:
        return "False"
    name = f"_c{len(consts)}"
    var = hoisted.get(field.name)
    value, ref = (var, var) if var else (f"(_x := {field.expr})", "_x")
    if cond.regex is not None:
        consts[name] = cond.regex.fullmatch
        text = ref if field.type == F.TEXT else f"str({ref})"
        return f"({value} is not None and {name}({text}) is not None)"
    consts[name] = cond.value
    if field.type == F.NUMBER:
        return f"({value} is not None and {ref} {_NUMERIC_OPS[cond.op]} {name})"
    if cond.op == "=":
        return f"({var or field.expr} == {name})"
    return f"({value} is not None and {ref} != {name})"


def _test_value(cond: m.Compare, value: object) -> bool:
    if value is None:
        return False
    if cond.regex is not None:
        return cond.regex.fullmatch(str(value)) is not None
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
        ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
    }
    return ops[cond.op](value, cond.value)


_ALL = frozenset(Kind)


def _kinds(cond: m.Condition) -> tuple[frozenset[Kind], bool]:
    """(kinds the condition may be true for, whether that set is exact)."""
    if isinstance(cond, m.And):
        parts = [_kinds(c) for c in cond.items]
        out = _ALL
        for kinds, _ in parts:
            out = out & kinds
        return out, all(exact for _, exact in parts)
    if isinstance(cond, m.Or):
        parts = [_kinds(c) for c in cond.items]
        out = frozenset()
        for kinds, _ in parts:
            out = out | kinds
        return out, all(exact for _, exact in parts)
    if isinstance(cond, m.Not):
        kinds, exact = _kinds(cond.item)
        return (_ALL - kinds, True) if exact else (_ALL, False)
    if cond.field is None:
        return frozenset(), True
    of_kind = cond.field.of_kind
    if of_kind is None:
        return _ALL, False
    return frozenset(k for k in Kind if _test_value(cond, of_kind(k))), True


def possible_kinds(cond: m.Condition) -> frozenset[Kind] | None:
    """The kinds of event the condition can be true for; None when it may be any."""
    kinds, _ = _kinds(cond)
    return None if kinds == _ALL else kinds
