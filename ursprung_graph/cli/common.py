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
from ..store import StoreError, open_store
from ..store.base import GraphStore


def open_graph(settings: Settings | None = None) -> GraphStore:
    """The configured store with its schema in place, or a click error saying why not."""
    try:
        store = open_store(settings or load_settings())
        store.ensure_schema()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
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


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
# C1 controls (U+009B is a CSI to xterm) and the bidirectional overrides and isolates,
# which reorder what a terminal shows.
_CONTROL.update({c: f"\\u{c:04x}" for c in (*range(0x80, 0xA0), *range(0x202A, 0x202F),
                                              *range(0x2066, 0x206A))})


def printable(text: str) -> str:
    """Text from events (paths, command lines) with control characters escaped, so that a
    file name holding a newline or a terminal escape cannot forge or colour output lines.
    Names are stored with their backslashes already escaped (:mod:`..schema.names`), so the
    escapes added here cannot be mistaken for a name's own characters."""
    return text.translate(_CONTROL)


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
