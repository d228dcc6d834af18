"""The event fields a rule can name: documented names, the original's names as aliases.

Each field is resolved once, when a rule is loaded, to a Python expression over the event
``e`` (a :class:`~ursprung_graph.schema.event.Event`), which the condition compiler puts
into the rule's test function; nothing is looked up by name per event. A field whose value
depends only on the event's kind also has ``of_kind`` (kind -> value), which lets the
engine see at load time which kinds a rule can match at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..schema.event import Event, Kind

NUMBER = "number"
TEXT = "text"


@dataclass(frozen=True, slots=True)
class Field:
    """A field: its documented name, type (number or text), a Python expression over the
    event ``e`` that yields its value or None, and a description for the docs."""

    name: str
    type: str
    expr: str
    doc: str
    of_kind: Callable[[Kind], object] | None = None


#: The original's file event names (its ``event`` field): a read or write is reported at
#: close, as Spectrum Scale's IN_CLOSE_NOWRITE / IN_CLOSE_WRITE were.
ORIGINAL_EVENT = {
    Kind.READ: "CLOSE", Kind.WRITE: "CLOSE", Kind.RENAME: "RENAME", Kind.UNLINK: "UNLINK",
    Kind.LINK: "LINK", Kind.EXEC: "EXEC",
}
#: The original's syscall names (its ``syscall_name`` field) of the kinds audit gave it.
ORIGINAL_SYSCALL = {
    Kind.EXEC: "execve", Kind.FORK: "fork", Kind.EXIT: "exit_group", Kind.CONNECT: "connect",
    Kind.ACCEPT: "accept", Kind.BIND: "bind", Kind.PIPE_READ: "pipe", Kind.PIPE_WRITE: "pipe",
    Kind.READ: "open", Kind.WRITE: "open", Kind.RENAME: "rename", Kind.LINK: "link",
    Kind.UNLINK: "unlink",
}


def _opt(obj: str, attr: str) -> str:
    return f"(e.{obj}.{attr} if e.{obj} is not None else None)"


def _joined(obj: str) -> str:
    return f"(' '.join(e.{obj}.argv) if e.{obj} is not None and e.{obj}.argv else None)"


FIELDS: tuple[Field, ...] = (
    Field("kind", TEXT, "e.kind.value", "what happened: " + ", ".join(k.value for k in Kind),
          of_kind=lambda k: k.value),
    Field("source", TEXT, "e.source", "the collector: auditd, strace, scale, ..."),
    Field("host", TEXT, "e.host", "the host the event happened on"),
    Field("ts", NUMBER, "e.ts", "event time, epoch nanoseconds"),
    Field("seq", TEXT, "e.seq", "the event's id within its source"),
    Field("proc.pid", NUMBER, "e.proc.pid", "the acting process's pid"),
    Field("proc.ppid", NUMBER, "e.proc.ppid", "its parent's pid"),
    Field("proc.start", NUMBER, "e.proc.start", "its start time (epoch ns; 0 when unknown)"),
    Field("proc.exe", TEXT, "e.proc.exe", "its program"),
    Field("proc.argv", TEXT, _joined("proc"), "its command line, arguments joined by spaces"),
    Field("proc.cwd", TEXT, "e.proc.cwd", "its working directory"),
    Field("proc.uid", NUMBER, "e.proc.uid", "its user id"),
    Field("proc.euid", NUMBER, "e.proc.euid", "its effective user id"),
    Field("file.path", TEXT, _opt("file", "path"), "the file's absolute path"),
    Field("file.inode", NUMBER, _opt("file", "inode"), "the file's inode"),
    Field("file.dev", TEXT, _opt("file", "dev"), "the file's device"),
    Field("file.fs", TEXT, _opt("file", "fs"), "the shared file system holding the file"),
    Field("dst.path", TEXT, _opt("dst", "path"), "rename/link target path"),
    Field("dst.inode", NUMBER, _opt("dst", "inode"), "rename/link target inode"),
    Field("child.pid", NUMBER, _opt("child", "pid"), "fork: the new process's pid"),
    Field("peer.family", TEXT, _opt("peer", "family"), "socket family: inet, inet6, unix"),
    Field("peer.address", TEXT, _opt("peer", "address"), "socket address"),
    Field("peer.port", NUMBER, _opt("peer", "port"), "socket port"),
    Field("pipe", TEXT, "e.pipe", "pipe id (pipe_read, pipe_write)"),
    Field("exit_code", NUMBER, "e.exit_code", "exit: the process's exit status"),
    Field("run.id", TEXT, _opt("run", "id"), "run events: the run's id"),
    Field("run.pipeline", TEXT, _opt("run", "pipeline"), "run events: the pipeline"),
    Field("version.sha256", TEXT, _opt("version", "sha256"), "version events: content hash"),
    # derived, for the original's rules
    Field("original.event", TEXT, "_ORIGINAL_EVENT.get(e.kind)",
          "the original's file event name: CLOSE (read or write), RENAME, UNLINK, LINK, EXEC",
          of_kind=ORIGINAL_EVENT.get),
    Field("original.syscall", TEXT, "_ORIGINAL_SYSCALL.get(e.kind)",
          "the original's syscall name: execve, fork, exit_group, connect, accept, bind, "
          "pipe, open (read/write), rename, link, unlink", of_kind=ORIGINAL_SYSCALL.get),
    Field("bytes_written", NUMBER, "(1 if e.kind is _WRITE else 0)",
          "1 for a write, else 0 (the original's flag)",
          of_kind=lambda k: 1 if k is Kind.WRITE else 0),
    Field("bytes_read", NUMBER, "(1 if e.kind is _READ else 0)",
          "1 for a read, else 0 (the original's flag)",
          of_kind=lambda k: 1 if k is Kind.READ else 0),
    Field("data", TEXT,
          "((e.proc.cwd or '') + ' ' + ' '.join(e.proc.argv or ()))",
          "the original's syscall data: working directory and command line, space-joined"),
)

#: The original's field names -> ours.
ALIASES = {
    "event": "original.event", "syscall_name": "original.syscall",
    "path": "file.path", "inode": "file.inode", "fs_name": "file.fs", "dst_path": "dst.path",
    "pid": "proc.pid", "ppid": "proc.ppid", "uid": "proc.uid", "euid": "proc.euid",
    "exec_cwd": "proc.cwd", "start": "proc.start", "event_time": "ts", "rc": "exit_code",
    "node_name": "host", "version_hash": "version.sha256", "exe": "proc.exe",
    "argv": "proc.argv", "cwd": "proc.cwd",
}

#: The original's fields that normalized events do not carry: a condition on one is never
#: true (as the original treated a field missing from a message), and loading says so.
UNAVAILABLE = {
    "gid": "group ids are not recorded", "egid": "group ids are not recorded",
    "pgid": "process groups are not recorded",
    "finish": "a process's end is its exit event (kind=exit, ts)",
    "cluster_name": "use file.fs (shared file system) or host",
    **{f"arg{i}": "raw syscall arguments are not kept in normalized events" for i in range(5)},
}

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

#: Names the generated expressions use besides ``e``.
EXPR_GLOBALS = {"_ORIGINAL_EVENT": ORIGINAL_EVENT, "_ORIGINAL_SYSCALL": ORIGINAL_SYSCALL,
                "_WRITE": Kind.WRITE, "_READ": Kind.READ}


def resolve(name: str) -> Field | None:
    """The field a rule's name means (documented name or alias), or None."""
    return BY_NAME.get(ALIASES.get(name, name))


def known_names() -> list[str]:
    return sorted([*BY_NAME, *ALIASES])


def getter(field: Field) -> Callable[[Event], object]:
    """A function giving the field's value of an event (record fields, not the hot path)."""
    return eval(f"lambda e: {field.expr}", dict(EXPR_GLOBALS))
