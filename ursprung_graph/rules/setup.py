"""Starting the engine for an ingest path: the rules of ``[rules] files`` in ursprung.toml
and of ``--rules FILE`` options, in that order. No rules: no engine (nothing to pay)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .engine import RuleEngine, RuleMetrics
from .syntax import load_rules


def rule_files(configured: Sequence[str], given: Sequence[str]) -> list[str]:
    """Configured files, then given ones; each once."""
    out: list[str] = []
    for name in (*configured, *given):
        if name not in out:
            out.append(name)
    return out


def start_engine(files: Sequence[str], store: Any, home: Path,
                 metrics: RuleMetrics | None = None) -> RuleEngine | None:
    """The engine for ``files`` (RuleError if they do not load), or None without files."""
    if not files:
        return None
    return RuleEngine(load_rules(list(files)), store, home, metrics=metrics)
