"""Configuration in one place: defaults, an optional TOML file, environment overrides.

Precedence, lowest first: the defaults below; the TOML file (``--config PATH``, else
``$URSPRUNG_CONFIG``, else ``./ursprung.toml`` when it exists); environment variables
``URSPRUNG_<SECTION>_<KEY>`` (``URSPRUNG_KAFKA_BOOTSTRAP=host:9092``,
``URSPRUNG_INGEST_BATCH_EVENTS=5000``; lists comma-separated). Short names stay for the
single-machine path and older callers: ``URSPRUNG_HOME`` (data, checkpoints; default
``~/.local/share/ursprung``), ``URSPRUNG_STORE`` (a store other than the embedded one:
``falkordb://host:port``, ``falkordb+unix:///path``, ``neo4j://host:7687``,
``bolt://host:7687``; Neo4j credentials in ``URSPRUNG_STORE_USER`` and
``URSPRUNG_STORE_PASSWORD``), ``URSPRUNG_GRAPH`` (default ``ursprung``) and
``URSPRUNG_PARAM_ENV`` (names added to ``runs.param_env``).

Everything is validated on load (unknown keys, wrong types, impossible values) and a bad
value is reported with where it came from, e.g. ``ursprung.toml: kafka.partitions: Expected
`int`, got `str```.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from .errors import UrsprungError
from .locations import ENV_PREFIX, config_path, home_dir

#: URL schemes of the stores (FalkorDB; Neo4j routing and direct, with TLS variants).
STORE_SCHEMES = ("falkordb://", "falkordb+unix://", "neo4j://", "neo4j+s://", "neo4j+ssc://",
                 "bolt://", "bolt+s://", "bolt+ssc://")


class ConfigError(UrsprungError, ValueError):
    """A configuration that cannot be used, with the reason and where it came from."""

    exit_code = 3


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    store_url: str | None
    graph: str
    #: Credentials and database of a Neo4j store (None: from the URL, or none / the default).
    store_user: str | None = None
    store_password: str | None = None
    store_database: str | None = None
    #: PEM file of the CAs a Neo4j server's TLS certificate must chain to (``+s`` URLs).
    store_ca_file: str | None = None

    @property
    def checkpoint_dir(self) -> Path:
        """Checkpoints say what one store's graph holds, so they are kept per graph."""
        if not self.store_url:
            return self.home / "checkpoints" / "embedded" / self.graph
        import hashlib  # here: OpenSSL's import is for the commands that need it

        store = hashlib.sha256(self.store_url.encode()).hexdigest()[:16]
        return self.home / "checkpoints" / store / self.graph


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class StoreConfig(_Section):
    home: str | None = None  # None: locations.DEFAULT_HOME
    url: str | None = None  # None: the embedded FalkorDB under home
    graph: str = "ursprung"
    #: Neo4j (``neo4j://``, ``bolt://``, ``+s`` for TLS): credentials and database.
    user: str | None = None
    password: str | None = None
    database: str | None = None  # None: the server's default database
    #: PEM file of the CAs trusted for ``neo4j+s://`` / ``bolt+s://`` (None: the system's).
    ca_file: str | None = None


class KafkaConfig(_Section):
    bootstrap: str = "127.0.0.1:9092"
    events_topic: str = "ursprung.events"
    deadletter_topic: str = "ursprung.deadletter"
    #: Partitions of topics that ursprung creates (the ceiling on useful ingest workers).
    partitions: int = 12
    replication: int = 1
    compression: str = "lz4"
    linger_ms: int = 20
    #: A consumer that stops heart-beating this long is dropped and its partitions move.
    session_timeout_ms: int = 10000
    #: librdkafka options passed through as they are (``security.protocol``, ``sasl.*``...).
    producer: dict[str, str] = msgspec.field(default_factory=dict)
    consumer: dict[str, str] = msgspec.field(default_factory=dict)


class CollectConfig(_Section):
    host: str | None = None  # None: this machine's name
    checkpoint_dir: str | None = None  # None: <home>/checkpoints
    chunk_events: int = 2000  # events per publish + checkpoint at most
    #: A quiet follower publishes what it has after this long (latency bound).
    flush_seconds: float = 0.5
    poll_seconds: float = 0.1
    #: Events per bus message at most.
    message_events: int = 1000
    #: IN_MOVED_FROM waits this long (event time) for its IN_MOVED_TO.
    pair_seconds: float = 2.0
    pair_events: int = 10000
    #: `collect ebpf`: follow only these users, cgroups (v2 paths, e.g.
    #: /sys/fs/cgroup/user.slice) and programs (fnmatch on the program's name or argv[0],
    #: with their descendants); empty: the whole node.
    ebpf_uids: list[int] = msgspec.field(default_factory=list)
    ebpf_cgroups: list[str] = msgspec.field(default_factory=list)
    ebpf_commands: list[str] = msgspec.field(default_factory=list)
    #: `collect auditd --follow` (or on stdin): sample the kernel's lost-events counter
    #: (`auditctl -s`) this often; a growth is a capture gap. 0: never.
    lost_sample_seconds: float = 10.0


class IngestConfig(_Section):
    group: str = "ursprung-ingest"
    workers: int = 1
    batch_events: int = 5000
    batch_seconds: float = 0.2
    retry_initial: float = 0.1
    retry_max: float = 5.0
    #: How long a Scale event waits for the audit stream of its host to pass its time before
    #: its process is taken as unknown (start 0). 0 disables waiting.
    resolve_wait: float = 10.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0  # 0: no metrics endpoint; workers N>1 use port, port+1, ...


#: Files every pipeline reads that are software, not data: environment, never inputs.
DEFAULT_SYSTEM_PREFIXES = (
    "/usr/", "/lib/", "/lib32/", "/lib64/", "/libx32/", "/bin/", "/sbin/", "/etc/",
    "/var/lib/", "/var/cache/", "/run/", "/nix/store/", "/opt/conda/pkgs/",
)
#: Never inputs or outputs of a run.
DEFAULT_IGNORE_PATTERNS = (
    "*/__pycache__/*", "*.pyc", "*/.pyenv/*", "*/site-packages/*", "*/dist-packages/*",
    "*/.cache/*", "*/.git/*", "*.swp",
)
#: Files whose bytes the content store keeps (by name or path).
DEFAULT_STORE_PATTERNS = (
    "*.py", "*.sh", "*.bash", "*.R", "*.r", "*.jl", "*.ipynb", "*.sql", "*.cfg", "*.ini",
    "*.conf", "*.toml", "*.yaml", "*.yml", "*.json", "*.txt", "*.csv", "*.tsv", "*.md",
    "Makefile", "Dockerfile",
)


class RunsConfig(_Section):
    """Pipeline runs and content versions."""

    #: Environment variables recorded as parameters.
    param_env: tuple[str, ...] = ()
    #: Bytes; larger files keep only size and mtime.
    hash_limit: int = 256 << 20
    store_patterns: tuple[str, ...] = DEFAULT_STORE_PATTERNS
    #: Bytes; larger files are never stored.
    store_limit: int = 1 << 20
    #: Per run: programs first, then inputs, outputs.
    store_max_files: int = 200
    system_prefixes: tuple[str, ...] = DEFAULT_SYSTEM_PREFIXES
    ignore_patterns: tuple[str, ...] = DEFAULT_IGNORE_PATTERNS


class RulesConfig(_Section):
    """Rules for application provenance (docs/rules.md)."""

    #: Rules files every ingest path loads, before those of ``--rules``.
    files: tuple[str, ...] = ()


class Config(_Section):
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    kafka: KafkaConfig = msgspec.field(default_factory=KafkaConfig)
    collect: CollectConfig = msgspec.field(default_factory=CollectConfig)
    ingest: IngestConfig = msgspec.field(default_factory=IngestConfig)
    runs: RunsConfig = msgspec.field(default_factory=RunsConfig)
    rules: RulesConfig = msgspec.field(default_factory=RulesConfig)
    source: str = ""  # where it was loaded from (for messages)

    @property
    def settings(self) -> Settings:
        return Settings(home=home_dir(self.store.home), store_url=self.store.url or None,
                        graph=self.store.graph, store_user=self.store.user,
                        store_password=self.store.password,
                        store_database=self.store.database,
                        store_ca_file=self.store.ca_file)

    @property
    def checkpoint_dir(self) -> Path:
        """The collectors' checkpoints: they say what the bus has (not a store's graph)."""
        if self.collect.checkpoint_dir:
            return Path(self.collect.checkpoint_dir).expanduser().resolve()
        return self.settings.home / "checkpoints" / "collect"


_SECTIONS: dict[str, type[_Section]] = {
    "store": StoreConfig, "kafka": KafkaConfig, "collect": CollectConfig,
    "ingest": IngestConfig, "runs": RunsConfig, "rules": RulesConfig}
_SHORT_ENV = {"HOME": ("store", "home"), "STORE": ("store", "url"), "GRAPH": ("store", "graph")}
#: Environment names that are not configuration keys.
_NOT_KEYS = {"CONFIG"}
#: Short names whose (comma-separated) names are added to a list of the file's.
_ADDING_ENV = {"PARAM_ENV": ("runs", "param_env")}


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    data: dict[str, dict[str, Any]] = {}
    unknown: list[str] = []
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or value == "":
            continue
        rest = name[len(ENV_PREFIX):]
        if rest in _SHORT_ENV:
            section, key = _SHORT_ENV[rest]
        elif rest in _NOT_KEYS or rest in _ADDING_ENV:
            continue
        else:
            section, _, key = rest.lower().partition("_")
            cls = _SECTIONS.get(section)
            if cls is None:
                continue  # another part's variable (URSPRUNG_FOO): not ours to judge
            if key not in cls.__struct_fields__:
                unknown.append(name)  # a known section with a mistyped key
                continue
            default = getattr(cls(), key)
            if isinstance(default, dict):
                unknown.append(name)  # tables only from the file
                continue
            if isinstance(default, tuple):
                data.setdefault(section, {})[key] = [v for v in value.split(",") if v]
                continue
        data.setdefault(section, {})[key] = value
    return data, unknown


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """The validated configuration; raises ConfigError saying what is wrong and where."""
    env = os.environ if env is None else env
    file = config_path(path, env)
    data: dict[str, Any] = {}
    if file is not None:
        import tomllib  # here: only a configuration file needs the parser

        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{file}: no such configuration file") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot read: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    where = str(file) if file else "defaults"
    try:
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {_readable(exc)}") from exc
    overrides, unknown = _env_overrides(env)
    if unknown:
        raise ConfigError(f"unknown configuration variable(s) {', '.join(sorted(unknown))}; "
                          "see the keys of ursprung.toml (URSPRUNG_<SECTION>_<KEY>)")
    if overrides:
        merged = msgspec.to_builtins(config)
        for section, values in overrides.items():
            merged[section].update(values)
        try:
            config = msgspec.convert(merged, Config, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"environment ({where} + URSPRUNG_*): {_readable(exc)}") from exc
        where = f"{where} + environment"
    for name, (section, key) in _ADDING_ENV.items():
        added = tuple(v for v in env.get(ENV_PREFIX + name, "").split(",") if v)
        if added:
            table = getattr(config, section)
            table = msgspec.structs.replace(table, **{key: getattr(table, key) + added})
            config = msgspec.structs.replace(config, **{section: table})
    config = msgspec.structs.replace(config, source=where)
    _check(config)
    return config


def _readable(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    # msgspec says "... - at `$.kafka.partitions`": lead with the key, as people write it.
    if " - at `$." in text:
        message, _, at = text.rpartition(" - at `$.")
        return f"{at.rstrip('`')}: {message}"
    return text


def _check(config: Config) -> None:
    problems: list[str] = []

    def positive(section: str, key: str, allow_zero: bool = False) -> None:
        value = getattr(getattr(config, section), key)
        if value < 0 or (value == 0 and not allow_zero):
            problems.append(f"{section}.{key} must be {'>= 0' if allow_zero else '> 0'}, "
                            f"got {value}")

    for key in ("partitions", "replication", "session_timeout_ms"):
        positive("kafka", key)
    positive("kafka", "linger_ms", allow_zero=True)
    for key in ("chunk_events", "message_events", "flush_seconds", "poll_seconds",
                "pair_events"):
        positive("collect", key)
    positive("collect", "pair_seconds", allow_zero=True)
    for key in ("workers", "batch_events", "batch_seconds", "retry_initial", "retry_max"):
        positive("ingest", key)
    positive("ingest", "resolve_wait", allow_zero=True)
    for key in ("hash_limit", "store_limit", "store_max_files"):
        positive("runs", key, allow_zero=True)
    if not 0 <= config.ingest.metrics_port <= 65535:
        problems.append(f"ingest.metrics_port must be a port number, got "
                        f"{config.ingest.metrics_port}")
    if config.kafka.compression not in ("none", "gzip", "snappy", "lz4", "zstd"):
        problems.append(f"kafka.compression must be none, gzip, snappy, lz4 or zstd, got "
                        f"{config.kafka.compression!r}")
    for section, key in (("kafka", "events_topic"), ("kafka", "deadletter_topic"),
                         ("kafka", "bootstrap"), ("ingest", "group"), ("store", "graph")):
        if not getattr(getattr(config, section), key):
            problems.append(f"{section}.{key} must not be empty")
    if config.kafka.events_topic == config.kafka.deadletter_topic:
        problems.append("kafka.events_topic and kafka.deadletter_topic must differ")
    url = config.store.url
    if url and not url.startswith(STORE_SCHEMES):
        problems.append(f"store.url {url!r}: use falkordb://HOST:PORT, "
                        "falkordb+unix:///PATH, neo4j://HOST:PORT or bolt://HOST:PORT")
    if problems:
        raise ConfigError(f"{config.source}: " + "; ".join(problems))


def load_settings() -> Settings:
    """Where the store and data live (the part every command needs)."""
    return load_config().settings
