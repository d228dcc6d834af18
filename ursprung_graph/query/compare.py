"""Comparing two runs: everything that can explain a difference.

``compare(a, b)`` takes two runs' facts (:func:`ursprung_graph.query.runs.run_facts`) and
returns a :class:`~.types.Comparison`: sections ``params``, ``inputs``, ``outputs``,
``programs``, ``environment``, ``metrics``, ``exit`` and ``duration``, each with ``same``,
``changed``, ``only_a`` and ``only_b``. File entries also say how they were matched
(``match``: relative, absolute, basename) and on what basis their content was judged
(``basis``).

Files are matched by path relative to each run's working directory, then by absolute path,
then by basename (only when the basename is unique on both sides among what is left).
Content is judged, in order of strength, by sha256; by size and mtime (files above the
hashing limit); for inputs without versions (runs from audit data) by the last write anyone
made before the run read the file (equal, including "none seen", means the same bytes as far
as the graph knows); for outputs without versions by their write times.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from msgspec import UnsetType

from .types import (
    Comparison,
    FileEntry,
    FileSection,
    FileValue,
    OneSidedFile,
    OneSidedValue,
    RunFacts,
    RunFileFact,
    RunHead,
    Value,
    ValueEntry,
    ValueSection,
)

#: Durations within max(0.5 s, 10 % of the longer) count as the same.
DURATION_ABS_TOLERANCE = 0.5
DURATION_REL_TOLERANCE = 0.10

_T = TypeVar("_T")


def compare(a: RunFacts, b: RunFacts) -> Comparison:
    return Comparison(
        a=_head(a), b=_head(b),
        params=_maps(a.params, b.params),
        inputs=_files(a.inputs, b.inputs, "input"),
        outputs=_files(a.outputs, b.outputs, "output"),
        programs=_files(a.programs, b.programs, "program", relative_first=False),
        environment=_maps(a.environment, b.environment),
        metrics=_maps(a.metrics, b.metrics),
        exit=_maps(_present(exit_code=a.exit_code), _present(exit_code=b.exit_code)),
        duration=_duration(a.duration, b.duration),
    )


def differs(result: Comparison) -> bool:
    """True if any section has a change or a one-sided entry."""
    return any(part.changed or part.only_a or part.only_b for _, part in result.sections())


def _head(run: RunFacts) -> RunHead:
    return RunHead(id=run.id, pipeline=run.pipeline, command=run.command, cwd=run.cwd,
                   host=run.host, start=run.start, end=run.end, origin=run.origin)


def _present(**values: Value | None) -> dict[str, Value]:
    return {k: v for k, v in values.items() if v is not None}


def _maps(a: Mapping[str, Value], b: Mapping[str, Value]) -> ValueSection:
    out = ValueSection()
    for name in sorted(set(a) | set(b)):
        if name in a and name in b:
            (out.same if a[name] == b[name] else out.changed).append(
                ValueEntry(name=name, a=a[name], b=b[name]))
        elif name in a:
            out.only_a.append(OneSidedValue(name=name, value=a[name]))
        else:
            out.only_b.append(OneSidedValue(name=name, value=b[name]))
    return out


def _duration(a: float | None, b: float | None) -> ValueSection:
    out = ValueSection()
    if a is None and b is None:
        return out
    if a is None:
        assert b is not None
        out.only_b.append(OneSidedValue(name="seconds", value=b))
    elif b is None:
        out.only_a.append(OneSidedValue(name="seconds", value=a))
    else:
        tolerance = max(DURATION_ABS_TOLERANCE, DURATION_REL_TOLERANCE * max(a, b))
        (out.same if abs(a - b) <= tolerance else out.changed).append(
            ValueEntry(name="seconds", a=round(a, 3), b=round(b, 3)))
    return out


Pair = tuple[str, str, RunFileFact, RunFileFact]


def match_files(a: Sequence[RunFileFact], b: Sequence[RunFileFact], *,
                relative_first: bool = True) -> tuple[list[Pair], list[RunFileFact],
                                                      list[RunFileFact]]:
    """Pairs (name, how, fa, fb) and the unmatched of each side."""
    left = list(a)
    right = list(b)
    pairs: list[Pair] = []
    keys: list[tuple[str, Callable[[RunFileFact], str | None]]] = [
        ("relative", lambda f: f.rel), ("absolute", lambda f: f.path)]
    if not relative_first:
        keys.reverse()
    keys.append(("basename", lambda f: posixpath.basename(f.path or "")))
    for how, key in keys:
        index_b = _index(right, key)
        index_a = _index(left, key)
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


def _index(files: list[RunFileFact],
           key: Callable[[RunFileFact], str | None]) -> dict[str, list[RunFileFact]]:
    out: dict[str, list[RunFileFact]] = {}
    for f in files:
        k = key(f)
        if k:
            out.setdefault(k, []).append(f)
    return out


def _known(value: _T | None | UnsetType) -> _T | None:
    """None for a fact that does not apply (``UNSET``)."""
    return None if isinstance(value, UnsetType) else value


def same_content(fa: RunFileFact, fb: RunFileFact, role: str) -> tuple[bool, str]:
    """(equal?, basis) for two observed files (see the module docstring)."""
    ha, hb = _known(fa.sha256), _known(fb.sha256)
    if ha and hb:
        return ha == hb, "sha256"
    size_a, size_b = _known(fa.size), _known(fb.size)
    if size_a is not None and size_b is not None:
        return (size_a, _known(fa.mtime)) == (size_b, _known(fb.mtime)), "size+mtime"
    if role == "input" or role == "program":
        return _known(fa.prior_write) == _known(fb.prior_write), "prior write"
    return False, "write time"


def _file_value(f: RunFileFact) -> FileValue:
    return FileValue(path=f.path, sha256=_known(f.sha256), size=_known(f.size),
                     mtime=_known(f.mtime), prior_write=_known(f.prior_write),
                     written=f.written)


def _files(a: Sequence[RunFileFact], b: Sequence[RunFileFact], role: str, *,
           relative_first: bool = True) -> FileSection:
    out = FileSection()
    pairs, only_a, only_b = match_files(a, b, relative_first=relative_first)
    for name, how, fa, fb in pairs:
        equal, basis = same_content(fa, fb, role)
        (out.same if equal else out.changed).append(
            FileEntry(name=name, match=how, basis=basis, a=_file_value(fa),
                      b=_file_value(fb)))
    for side, files in ((out.only_a, only_a), (out.only_b, only_b)):
        for f in sorted(files, key=lambda f: f.path or ""):
            side.append(OneSidedFile(name=f.rel or f.path, value=_file_value(f)))
    return out
