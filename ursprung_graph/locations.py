"""Where the configuration and the data are, decided from the environment alone: the
variables' prefix, the configuration file, the home. Standard library only, so that
`ursprung run` can tell before importing anything else whether its command may start at
once (:mod:`ursprung_graph.cli.early`); :mod:`ursprung_graph.config` reads them from here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_PREFIX = "URSPRUNG_"
CONFIG_FILE = "ursprung.toml"
#: The home when none is configured (``store.home``, ``URSPRUNG_HOME``).
DEFAULT_HOME = "~/.local/share/ursprung"


def config_path(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    """The configuration file in effect: ``path``, else ``$URSPRUNG_CONFIG``, else
    ``./ursprung.toml`` when it exists; None: the defaults (and the environment)."""
    if path is not None:
        return Path(path)
    if env.get(ENV_PREFIX + "CONFIG"):
        return Path(env[ENV_PREFIX + "CONFIG"])
    default = Path(CONFIG_FILE)
    return default if default.is_file() else None


def home_dir(configured: str | None) -> Path:
    """The home, absolute: the configured one, else :data:`DEFAULT_HOME`."""
    return Path(configured or DEFAULT_HOME).expanduser().resolve()
