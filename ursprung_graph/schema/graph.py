"""The graph model: node labels, deterministic keys and edge types.

Keys are plain strings built only from identity fields, so the same event always addresses
the same node. Edges carry ``first`` and ``last`` (epoch ns) and point in the direction data
flows, except FORKED (parent -> child, which is also the direction of data) and the process
-> endpoint edges, which are read as carrying data both ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address

from .event import Endpoint, FileRef

PROCESS = "Process"
FILE = "File"
PIPE = "Pipe"
ENDPOINT = "Endpoint"
HOST = "Host"
DEAD_LETTER = "DeadLetter"

NODE_LABELS = (PROCESS, FILE, PIPE, ENDPOINT, HOST, DEAD_LETTER)

#: Pipeline runs (issue 3): a run and the content versions of files it saw.
PIPELINE_RUN = "PipelineRun"
VERSION = "Version"
RUN_LABELS = (PIPELINE_RUN, VERSION)


@dataclass(frozen=True, slots=True, eq=False)
class EdgeType:
    """An edge type between two labels. Each is one of the constants below, compared and
    hashed by identity (ingest keys every edge row by its type: a hash of the three fields
    per event cost more than the rest of the key)."""

    name: str
    source: str
    target: str


READ = EdgeType("READ", PROCESS, FILE)
WROTE = EdgeType("WROTE", PROCESS, FILE)
EXECUTED = EdgeType("EXECUTED", PROCESS, FILE)
DELETED = EdgeType("DELETED", PROCESS, FILE)
FORKED = EdgeType("FORKED", PROCESS, PROCESS)
RENAMED_TO = EdgeType("RENAMED_TO", FILE, FILE)
LINKED_TO = EdgeType("LINKED_TO", FILE, FILE)
READ_PIPE = EdgeType("READ", PROCESS, PIPE)
WROTE_PIPE = EdgeType("WROTE", PROCESS, PIPE)
CONNECTED = EdgeType("CONNECTED", PROCESS, ENDPOINT)
ACCEPTED = EdgeType("ACCEPTED", PROCESS, ENDPOINT)
BOUND = EdgeType("BOUND", PROCESS, ENDPOINT)
RAN_ON = EdgeType("RAN_ON", PROCESS, HOST)

EDGE_TYPES = (
    READ, WROTE, EXECUTED, DELETED, FORKED, RENAMED_TO, LINKED_TO,
    READ_PIPE, WROTE_PIPE, CONNECTED, ACCEPTED, BOUND,
)

#: Run edges: a run includes its processes; a file has versions; a run observed versions.
INCLUDES = EdgeType("INCLUDES", PIPELINE_RUN, PROCESS)
HAS_VERSION = EdgeType("HAS_VERSION", FILE, VERSION)
OBSERVED = EdgeType("OBSERVED", PIPELINE_RUN, VERSION)
RUN_EDGE_TYPES = (INCLUDES, HAS_VERSION, OBSERVED)

#: Node kinds as the CLI and API name them.
KIND_OF_LABEL = {
    PROCESS: "process", FILE: "file", PIPE: "pipe", ENDPOINT: "endpoint", HOST: "host",
}


def process_key(host: str, pid: int, start: int) -> str:
    """A process is (host, pid, start time): pids are reused."""
    return f"p:{host}:{pid}:{start}"


def file_key(host: str, ref: FileRef) -> str:
    """A local file is (host, path); a file on a shared file system is (fs, path)."""
    if ref.fs:
        return f"f@{ref.fs}:{ref.path}"
    return f"f:{host}:{ref.path}"


def run_key(run_id: str) -> str:
    """Run ids are globally unique (uuid for traced runs, derived from the root process for
    runs defined on audit data)."""
    return f"run:{run_id}"


def version_key(file: str, sha256: str | None, size: int | None, mtime: int | None) -> str:
    """A version of the file with key ``file``: by content hash, else by size and mtime."""
    if sha256:
        return f"v:{file}:sha256:{sha256}"
    return f"v:{file}:stat:{size}:{mtime}"


def pipe_key(host: str, pipe_id: str) -> str:
    return f"pipe:{host}:{pipe_id}"


def is_local_address(address: str) -> bool:
    """Loopback and wildcard addresses name this host, whatever the peer wrote."""
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def endpoint_key(host: str, peer: Endpoint) -> str:
    """Unix and host-local sockets are per host (keyed by path or port, so that a server
    bound to 0.0.0.0:P and a client of 127.0.0.1:P meet); remote ones are global. A
    ``listening`` endpoint (a socket known only by a descriptor) is per host too."""
    if peer.family in ("unix", "listening"):
        return f"e:{host}:{peer.family}:{peer.address}"
    if is_local_address(peer.address):
        return f"e:{host}:tcp:{peer.port}"
    return f"e::{peer.address}:{peer.port}"

#: Winnower (issue 12): a learned model's states (nodes) and transitions (edges between them).
WINNOWER_MODEL = "WinnowerModel"
WINNOWER_STATE = "WinnowerState"
WINNOWER_NEXT = "WINNOWER_NEXT"

RECORD = "Record"  # rules (issue 15): see below
GAP = "Gap"  # capture gaps (issue 16): a host and time window in which events may be missing

#: Unique keys as (label, property): every MERGE looks one up. Backends index them (Neo4j
#: with a uniqueness constraint).
UNIQUE_KEYS = (
    (PROCESS, "key"), (FILE, "key"), (PIPE, "key"), (ENDPOINT, "key"), (HOST, "name"),
    (DEAD_LETTER, "key"), (PIPELINE_RUN, "key"), (VERSION, "key"),
    (WINNOWER_STATE, "key"), (WINNOWER_MODEL, "name"), (RECORD, "key"), (GAP, "key"),
)
#: Properties users and queries look nodes up by.
LOOKUP_PROPERTIES = (
    (FILE, "path"), (PROCESS, "pid"), (PROCESS, "host"), (PIPELINE_RUN, "id"),
    (PIPELINE_RUN, "pipeline"), (WINNOWER_STATE, "model"), (GAP, "host"),
)

#: Rules (issue 15): records an application's files, logs and databases yield, and the
#: content versions a TRACK rule keeps. A record is linked from the process it is about,
#: from the file it came from, and (DBLOAD) from the version of that file it was read from.
RULE_LABELS = (RECORD,)
LOGGED = EdgeType("LOGGED", PROCESS, RECORD)
FILE_RECORD = EdgeType("HAS_RECORD", FILE, RECORD)
VERSION_RECORD = EdgeType("HAS_RECORD", VERSION, RECORD)
WROTE_VERSION = EdgeType("WROTE_VERSION", PROCESS, VERSION)
RULE_EDGE_TYPES = (LOGGED, FILE_RECORD, VERSION_RECORD, WROTE_VERSION)


def record_key(rule: str, subject: str, position: str) -> str:
    """A record is (rule, the thing it was read from, its position there): reading the same
    line or row again addresses the same node."""
    return f"rec:{rule}:{subject}:{position}"


GAP_LABELS = (GAP,)


def gap_key(host: str, source: str, start: int) -> str:
    """A gap is (host, source, start): the same loss reported twice (a bpftrace lost line
    and the run's summary of it) is one node."""
    return f"gap:{host}:{source}:{start}"
