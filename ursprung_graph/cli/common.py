"""What commands share: the store and the configuration, opened with clear errors;
JSON and control-character-safe text of answers; logging; stopping cleanly on signals."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
from typing import Any

import click
import msgspec

from ..config import Config, ConfigError, Settings, load_config, load_settings
from ..query.classify import Classifier
from ..schema.names import printable as printable  # re-exported: the CLI's one escaping
from ..schema.names import unprintable as unprintable
from ..store import open_store
from ..store.base import GraphStore


def open_graph(settings: Settings | None = None, *, writes: bool = False) -> GraphStore:
    """The configured store (a ``StoreError`` says why not: the CLI group prints it as one
    line with its exit status). A command that ``writes`` gets the schema in place first;
    reads never write (not even the schema)."""
    store = open_store(settings or load_settings())
    if writes:
        store.ensure_schema()
    return store


def classifier() -> Classifier:
    """The configured rule for system files (``[runs]``)."""
    runs = load_config().runs
    return Classifier(runs.system_prefixes, runs.ignore_patterns)


def to_json(value: object) -> str:
    """A query answer (structs, lists of them) as the indented JSON ``--json`` prints."""
    return json.dumps(msgspec.to_builtins(value), indent=2)


def config_or_fail(path: str | None) -> Config:
    """The configuration (file, then URSPRUNG_... overrides), or a click error naming the key."""
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s")


def stop_on_signals() -> threading.Event:
    """SIGTERM/SIGINT set the event (finish the batch, flush, exit); a second one also marks
    it ``hard``."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            stop.hard = True  # type: ignore[attr-defined]
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


#: What a terminal acts on or reorders: C0, DEL, C1 (U+009B is a CSI to xterm), line and
#: paragraph separators, bidi marks, embeddings, overrides and isolates, and lone
#: surrogates (which no terminal encoding can show).
#: ``--rules FILE`` (repeatable) on the commands that ingest (docs/rules.md).
rules_option = click.option(
    "--rules", "rules", multiple=True, type=click.Path(dir_okay=False, exists=True),
    help="A rules file (repeatable), after those of [rules] files in ursprung.toml.")


def rule_files(config: Config, given: tuple[str, ...]) -> list[str]:
    """The rules files of ``[rules] files``, then the given ones; each once."""
    out: list[str] = []
    for name in (*config.rules.files, *given):
        if name not in out:
            out.append(name)
    return out


@contextlib.contextmanager
def rule_engine(given: tuple[str, ...], store: Any,
                config: Config | None = None, registry: Any = None):
    """The rule engine of the configured and given rules files, closed (its queued actions
    finished) on leaving; None without rules files, and then nothing of the rules is even
    imported (``ursprung run`` starts as fast as without). Rules files that do not load
    raise RuleError (every problem with its position), which the CLI reports. ``registry``:
    the Prometheus registry for the engine's metrics (an ingest worker's)."""
    config = config or config_or_fail(None)
    files = rule_files(config, given)
    if not files:
        yield None
        return
    from ..rules.setup import start_engine

    engine = start_engine(files, store, config.settings.home, registry)
    try:
        yield engine
    finally:
        engine.close()
