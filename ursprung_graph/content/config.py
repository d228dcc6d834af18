"""Settings of runs and content versions: ``[runs]`` in ``$URSPRUNG_HOME/config.toml``
(or the file named by ``$URSPRUNG_CONFIG``)::

    [runs]
    param_env = ["LR", "SEED"]           # environment variables recorded as parameters
    hash_limit = 268435456               # bytes; larger files keep only size and mtime
    store_patterns = ["*.py", "*.sh"]    # files whose bytes the content store keeps
    store_limit = 1048576                # bytes; larger files are never stored
    store_max_files = 200                # per run: programs first, then inputs, outputs
    system_prefixes = ["/usr/"]          # files there are environment, not inputs
    ignore_patterns = ["*/__pycache__/*"]  # never inputs or outputs

``URSPRUNG_PARAM_ENV=LR,SEED`` adds parameter variables without a file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .hashing import DEFAULT_HASH_LIMIT

DEFAULT_STORE_PATTERNS = (
    "*.py", "*.sh", "*.bash", "*.R", "*.r", "*.jl", "*.ipynb", "*.sql", "*.cfg", "*.ini",
    "*.conf", "*.toml", "*.yaml", "*.yml", "*.json", "*.txt", "*.csv", "*.tsv", "*.md",
    "Makefile", "Dockerfile",
)
DEFAULT_STORE_LIMIT = 1 << 20
DEFAULT_STORE_MAX_FILES = 200
DEFAULT_SYSTEM_PREFIXES = (
    "/usr/", "/lib/", "/lib32/", "/lib64/", "/libx32/", "/bin/", "/sbin/", "/etc/",
    "/var/lib/", "/var/cache/", "/run/", "/nix/store/", "/opt/conda/pkgs/",
)
DEFAULT_IGNORE_PATTERNS = (
    "*/__pycache__/*", "*.pyc", "*/.pyenv/*", "*/site-packages/*", "*/dist-packages/*",
    "*/.cache/*", "*/.git/*", "*.swp",
)


@dataclass(frozen=True, slots=True)
class RunsConfig:
    param_env: tuple[str, ...] = ()
    hash_limit: int = DEFAULT_HASH_LIMIT
    store_patterns: tuple[str, ...] = DEFAULT_STORE_PATTERNS
    store_limit: int = DEFAULT_STORE_LIMIT
    store_max_files: int = DEFAULT_STORE_MAX_FILES
    system_prefixes: tuple[str, ...] = DEFAULT_SYSTEM_PREFIXES
    ignore_patterns: tuple[str, ...] = DEFAULT_IGNORE_PATTERNS
    source: str | None = field(default=None, compare=False)


def config_path(home: Path) -> Path:
    named = os.environ.get("URSPRUNG_CONFIG")
    return Path(named) if named else home / "config.toml"


def load_runs_config(home: Path) -> RunsConfig:
    """The ``[runs]`` table of the config file (missing file: defaults); a malformed file
    raises ValueError naming it."""
    path = config_path(home)
    table: dict = {}
    if path.is_file():
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8")).get("runs", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc
    env = tuple(v for v in os.environ.get("URSPRUNG_PARAM_ENV", "").split(",") if v)

    def strings(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = table.get(name, default)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{path}: runs.{name} must be a list of strings")
        return tuple(value)

    def integer(name: str, default: int) -> int:
        value = table.get(name, default)
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{path}: runs.{name} must be a non-negative integer")
        return value

    return RunsConfig(
        param_env=strings("param_env", ()) + env,
        hash_limit=integer("hash_limit", DEFAULT_HASH_LIMIT),
        store_patterns=strings("store_patterns", DEFAULT_STORE_PATTERNS),
        store_limit=integer("store_limit", DEFAULT_STORE_LIMIT),
        store_max_files=integer("store_max_files", DEFAULT_STORE_MAX_FILES),
        system_prefixes=strings("system_prefixes", DEFAULT_SYSTEM_PREFIXES),
        ignore_patterns=strings("ignore_patterns", DEFAULT_IGNORE_PATTERNS),
        source=str(path) if path.is_file() else None,
    )
