"""The normalized provenance event: the one type every collector emits.

Nothing downstream of a collector knows the source format. The wire encoding is msgpack
through msgspec (compact, fast, schema-checked on decode); the first field of every event is
the schema version so that a consumer can refuse what it does not understand.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

SCHEMA_VERSION = 1

#: A process start that the source does not know (Spectrum Scale names processes by node
#: and pid only): the ingest worker resolves it against the audit stream of that host.
UNKNOWN_START = -1

#: Bytes of raw input a dead letter keeps.
RAW_LIMIT = 4096


class Kind(StrEnum):
    """What happened. Data flows in the direction each kind implies."""

    EXEC = "exec"  # proc now runs file (its program); argv/exe updated
    FORK = "fork"  # proc created child (a new process, not a thread)
    EXIT = "exit"  # proc ended
    READ = "read"  # proc opened file for reading (again at close/exit: extends the interval)
    WRITE = "write"  # proc opened file for writing / truncated it (again at close/exit)
    RENAME = "rename"  # file moved to dst: dst now holds what file held
    LINK = "link"  # dst is a new name (hard or symbolic link) for file
    UNLINK = "unlink"  # proc deleted file
    CONNECT = "connect"  # proc connected to peer
    ACCEPT = "accept"  # proc accepted a connection on peer (its local endpoint)
    BIND = "bind"  # proc bound peer (its local endpoint)
    PIPE_READ = "pipe_read"  # proc reads pipe (stdin is the pipe's read end)
    PIPE_WRITE = "pipe_write"  # proc writes pipe (stdout/stderr is the pipe's write end)
    RUN = "run"  # a pipeline run (``run``) rooted in proc, with its member processes
    VERSION = "version"  # file had content ``version`` when run ``version.run`` observed it
    GAP = "gap"  # capture gap: events were lost; ``gap`` says why, ``window`` where


class ProcessInfo(msgspec.Struct, omit_defaults=True, frozen=True):
    """The acting process. Identity is (host, pid, start); start is 0 when the process
    began before observation started."""

    pid: int
    start: int = 0
    ppid: int = 0
    exe: str | None = None
    argv: list[str] | None = None
    cwd: str | None = None
    uid: int | None = None
    euid: int | None = None


class FileRef(msgspec.Struct, omit_defaults=True, frozen=True):
    """A file by absolute path. ``fs`` is set for a shared file system (identity (fs, path))."""

    path: str
    inode: int | None = None
    dev: str | None = None
    fs: str | None = None


class Endpoint(msgspec.Struct, omit_defaults=True, frozen=True):
    """A socket address: family inet/inet6/unix; address; port (None for unix)."""

    family: str
    address: str
    port: int | None = None


class RunInfo(msgspec.Struct, omit_defaults=True, frozen=True):
    """A pipeline run: the process tree under one root, with its facts. ``members`` are the
    (pid, start) of the run's processes on the event's host; ``params``, ``environment`` and
    ``metrics`` map names to values. Times are epoch ns."""

    id: str
    pipeline: str
    argv: list[str] = msgspec.field(default_factory=list)
    cwd: str | None = None
    user: str | None = None
    start: int = 0
    end: int | None = None
    exit_code: int | None = None
    origin: str = "trace"  # trace: `ursprung run`; audit: `ursprung runs define`
    params: dict[str, str] = msgspec.field(default_factory=dict)
    environment: dict[str, str] = msgspec.field(default_factory=dict)
    metrics: dict[str, str] = msgspec.field(default_factory=dict)
    members: list[tuple[int, int]] = msgspec.field(default_factory=list)


class VersionInfo(msgspec.Struct, omit_defaults=True, frozen=True):
    """The content of a file as run ``run`` saw it at the event's time: size, mtime (ns) and
    sha256 (None above the hashing size limit); ``stored`` when the content store has the
    bytes."""

    run: str
    size: int | None = None
    mtime: int | None = None
    sha256: str | None = None
    stored: bool = False


#: Where capture gaps come from (``GapWindow.source``, the ``Gap`` node's ``source``).
GAP_SOURCES = (
    "auditd-lost-counter",  # the kernel's lost counter (`auditctl -s`) grew between samples
    "auditd-daemon",  # auditd was not recording (DAEMON_END/ABORT until the next START)
    "truncated-event",  # an event whose records were cut off
    "dead-letter",  # a record that could not be read, at its time
    "collector-restart",  # a collector started again without a checkpoint
    "ebpf-lost",  # bpftrace's buffer overflowed
    "trace-lost",  # strace lost records of a traced run
)


class GapWindow(msgspec.Struct, omit_defaults=True, frozen=True):
    """Where a capture gap (a ``gap`` event) lies: from the event's ``ts`` to ``end``
    (None: still open), on the event's host; ``count`` events lost when known; ``run``: the
    traced run it happened in. ``note``: recorded but not a gap (a log rotation).
    ``resumes``: not a gap but its end: the source records again from ``ts`` and closes its
    open gaps that began before (auditd's DAEMON_START). ``since_last_seen``: the start is
    not known to the collector: the host's last known time in the store (a restart)."""

    source: str
    end: int | None = None
    count: int | None = None
    run: str | None = None
    note: bool = False
    resumes: bool = False
    since_last_seen: bool = False


class Event(msgspec.Struct, omit_defaults=True, frozen=True):
    """One normalized provenance event."""

    v: int
    source: str
    host: str
    ts: int
    seq: str
    kind: Kind
    proc: ProcessInfo
    file: FileRef | None = None
    dst: FileRef | None = None
    child: ProcessInfo | None = None
    peer: Endpoint | None = None
    pipe: str | None = None
    exit_code: int | None = None
    run: RunInfo | None = None
    version: VersionInfo | None = None
    gap: str | None = None  # Kind.GAP: what was lost, and why it is known
    window: GapWindow | None = None  # Kind.GAP: where (None: the event's time only)


def raw_text(data: bytes) -> str:
    """Input kept in a dead letter, as text: at most ``RAW_LIMIT`` bytes, undecodable bytes
    as backslash escapes, and NUL spelled out (a NUL would end FalkorDB's parameter
    header)."""
    text = data[:RAW_LIMIT].decode("utf-8", errors="backslashreplace")
    return text.replace("\x00", "\\x00")


class DeadLetter(msgspec.Struct, omit_defaults=True, frozen=True):
    """Input that could not become an event, kept with the reason so that nothing is lost."""

    source: str
    reason: str
    raw: str
    where: str = ""
    ts: int | None = None  # when the unreadable record happened, if its header says


_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(list[Event])


class SchemaError(ValueError):
    """A message that is not a batch of events of a schema version we understand."""


def encode_batch(events: list[Event]) -> bytes:
    """Encode a batch of events: the unit a bus message carries."""
    return _encoder.encode(events)


def decode_batch(data: bytes) -> list[Event]:
    """Decode a batch, refusing other schema versions with a clear reason."""
    try:
        events = _batch_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SchemaError(f"not a batch of schema-v{SCHEMA_VERSION} events: {exc}") from exc
    for event in events:
        if event.v != SCHEMA_VERSION:
            raise SchemaError(f"schema version {event.v} is not supported (want {SCHEMA_VERSION})")
    return events
