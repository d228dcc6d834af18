"""Starting the engine for an ingest path (the CLI finds the files: ``[rules] files`` in
ursprung.toml, then ``--rules FILE``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from .engine import RuleEngine, RuleMetrics
from .syntax import load_rules


def start_engine(files: Sequence[str], store: Any, home: Path,
                 registry: CollectorRegistry | None = None) -> RuleEngine:
    """The engine for ``files`` (RuleError if they do not load); its metrics in
    ``registry`` (default: its own)."""
    return RuleEngine(load_rules(list(files)), store, home, metrics=RuleMetrics(registry))
