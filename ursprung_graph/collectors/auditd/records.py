"""Parser for auditd's raw text format (audit.log lines, audisp ``format = string``).

One line is one record: ``[node=NAME ]type=TYPE msg=audit(SEC.MSEC:SERIAL): field=value ...``,
optionally followed (``log_format = ENRICHED``) by a ``\\x1d`` byte and interpreted
uppercase fields, of which only ``SYSCALL=`` is used. Records sharing a stamp
(node + ``SEC.MSEC:SERIAL``) form one event; records of different events interleave.
The parser groups them and emits one :class:`AuditEvent` per syscall event.

Throughput: lines stay ``bytes``; ``feed`` only matches the header and files the line under
its event. The records we use are parsed once the event completes, with a few precompiled
regexes and no per-field objects; other record types are never parsed. Values that repeat
across events (the process identity part of SYSCALL, PATH, CWD, PROCTITLE bodies) are
memoised in small bounded dicts: in real logs they repeat 10-200 times.

Two implementations, one behaviour. ``AuditParser`` is the compiled core (``_records.c``,
built by ``pip install -e .``) when it is built and ``URSPRUNG_PURE_PYTHON`` is not set, else
``PyAuditParser``, the pure-Python parser below (``IMPLEMENTATION`` says which). The core
scans headers, groups records and builds the common events itself; every unusual event goes
to ``_build_event`` here, so the policies below are written once, in Python, and
``PyAuditParser`` is the oracle the core is tested against (tests/collectors/
test_audit_records_c.py). ``feed_block`` feeds a buffer of whole lines in one call.

Completion. An event is tried at its PROCTITLE or EOE record (the kernel writes PROCTITLE
last before EOE, and auditd does not write EOE to audit.log at all), then:

* a SYSCALL event is complete with as many PATH records as its ``items=`` and, for a
  successful execve/execveat, all EXECVE arguments; if incomplete it keeps waiting (records
  may arrive out of order) and is re-tried when SYSCALL, PATH or EXECVE records arrive;
* otherwise an event completes when more than ``window`` newer events have started, or at
  :meth:`AuditParser.flush`; a SYSCALL event still incomplete then is emitted with what its
  records prove (the PATH records present, argv None), followed by a :class:`CaptureGap`
  saying what is lost ("truncated event serial N: 1 of 2 PATH records").

Events without a SYSCALL record (USER_*, DAEMON_*, standalone CONFIG_CHANGE, URINGOP...)
are counted in ``skipped``; user-space message types are skipped on sight.

Broken input never raises. Policy:

* a line that is not a record (no header, bad ``msg=audit(...)``, binary junk, non-ASCII
  raw part, non-UTF-8 enriched part) -> one Rejected for that line;
* a byte-identical repeat of a SYSCALL, PATH, EXECVE, CWD, PROCTITLE, SOCKADDR or FD_PAIR
  record within its event -> Rejected for the repeat only (other types are not parsed,
  so not checked);
* a record arriving after its event was emitted (e.g. a CWD after the PROCTITLE that
  completed the event) -> Rejected for that record; a late EOE is ignored, it carries
  nothing;
* a malformed or conflicting SYSCALL, PATH or EXECVE record -> the whole event becomes one
  Rejected whose raw is the offending line: these records define what the event *is*,
  so a half-parsed event is never emitted;
* a malformed or conflicting CWD, PROCTITLE, SOCKADDR or FD_PAIR record -> Rejected for
  that record; the event is emitted with that field None.
"""

from __future__ import annotations

import binascii
import dataclasses
import io
import ipaddress
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from ursprung_graph.collectors.os_model.syscall import PathItem, SockAddr
from ursprung_graph.collectors.os_model.syscalls import syscall_name
from ursprung_graph.schema.event import RAW_LIMIT
from ursprung_graph.schema.names import name_from_bytes

__all__ = [
    "BLOCK",
    "IMPLEMENTATION",
    "RAW_LIMIT",
    "AuditEvent",
    "AuditParser",
    "CAuditParser",
    "CaptureGap",
    "Completed",
    "Rejected",
    "PathItem",
    "PyAuditParser",
    "SockAddr",
    "decode_sockaddr",
    "iter_file",
    "line_blocks",
]

#: Rejected.raw is capped at this many bytes.
#: Each memo dict is cleared when it grows past this many entries.
MEMO_LIMIT = 8192


@dataclass(slots=True)
class AuditEvent:
    """One syscall event: its SYSCALL record plus the auxiliary records we use. A
    :class:`~ursprung_graph.collectors.os_model.SyscallRecord` as it is: the OS model reads
    it without a copy."""

    node: str | None
    serial: int
    ts: int
    syscall: str
    success: bool
    exit: int | None
    args: tuple[int, int, int, int]
    pid: int
    ppid: int
    uid: int | None
    euid: int | None
    gid: int | None
    auid: int | None
    comm: str | None
    exe: str | None
    key: str | None
    cwd: str | None
    paths: list[PathItem]
    argv: list[str] | None
    proctitle: list[str] | None
    sockaddr: SockAddr | None
    fd_pair: tuple[int, int] | None
    records: int
    offset: int


@dataclass(slots=True)
class Rejected:
    """Input the parser could not take, with the reason, its raw bytes (at most
    ``RAW_LIMIT``) and where it starts; the source turns it into the pipeline's
    :class:`~ursprung_graph.schema.event.DeadLetter`."""

    reason: str
    raw: bytes
    offset: int


@dataclass(slots=True)
class CaptureGap:
    """Records of an emitted event that never arrived (a PATH lost under backlog, an
    excerpt cut off): ``event`` (emitted just before this) holds what the other records
    prove; ``reason`` says what is missing, ``raw`` the records that did arrive."""

    reason: str
    event: AuditEvent
    raw: bytes
    offset: int


Output = AuditEvent | Rejected | CaptureGap
#: What ``feed_block`` returns per line that completed something: (offset after the line,
#: events pending after it, records read so far, outputs).
Completed = tuple[int, int, int, list[Output]]

# --------------------------------------------------------------------------- regexes

_HEADER = re.compile(
    rb"(?:node=([^ ]+) )?type=([A-Za-z0-9_\[\]-]+) msg=audit\(([0-9]+\.[0-9]+:[0-9]+)\):(?: |$)"
)
# Fast path: the kernel prints SYSCALL fields in a fixed order. `[^ ]*` is much cheaper for
# `re` than character classes; int() validates the captured numbers afterwards. What follows
# `items=N ` up to the enriched part (ids, comm, exe, subj, key) is sliced off and memoised:
# it is the same for every syscall of a process.
_SYSCALL = re.compile(
    rb" *(arch=[^ ]* syscall=[^ ]*) (?:success=([^ ]*) exit=([^ ]*) )?"
    rb"a0=([^ ]*) a1=([^ ]*) a2=([^ ]*) a3=([^ ]*) items=([^ ]*) "
)
_IDENTITY = re.compile(
    rb"ppid=([^ ]*) pid=([^ ]*) auid=([^ ]*) uid=([^ ]*) gid=([^ ]*) euid=([^ ]*) suid=[^ ]* "
    rb"fsuid=[^ ]* egid=[^ ]* sgid=[^ ]* fsgid=[^ ]* tty=[^ ]* ses=[^ ]* comm=([^ ]*) "
    rb"exe=([^ ]*)"
)
_PATH = re.compile(
    rb" *item=([^ ]*) name=([^ ]*) (?:inode=([^ ]*) dev=([^ ]*) mode=([^ ]*) ouid=[^ ]* "
    rb"ogid=[^ ]* rdev=[^ ]* (?:obj=[^ ]* )?)?nametype=([^ \x1d]*)"
)
_FD_PAIR = re.compile(rb" *fd0=([0-9]+) fd1=([0-9]+) *$")
_HEX_CHARS = b"0123456789abcdefABCDEF"
_MISSING: Any = object()

_SYSCALL_REQUIRED = (b"arch", b"syscall", b"a0", b"a1", b"a2", b"a3")
# At most one record of these types per event; a byte-identical repeat is a duplicate.
_SINGLE = frozenset((b"SYSCALL", b"CWD", b"PROCTITLE", b"SOCKADDR", b"FD_PAIR"))
# Records after which an event may be complete (PROCTITLE is the kernel's last but EOE).
_ENDS = frozenset((b"PROCTITLE", b"EOE"))
# Types whose arrival can make a waiting event complete.
_COMPLETING = frozenset((b"SYSCALL", b"PATH", b"EXECVE"))
_EXECS = frozenset(("execve", "execveat"))

# User-space message types (libaudit 1100-1299 and 2100-2999, from python3-audit's
# audit_msg_type_to_name): always single-record events that never belong to a syscall
# event, so they are counted as skipped on sight instead of being held in `pending`.
# fmt: off
_USER_TYPES = frozenset(t.encode() for t in (
    "USER", "USER_AUTH", "USER_ACCT", "USER_MGMT", "CRED_ACQ", "CRED_DISP", "USER_START",
    "USER_END", "USER_AVC", "USER_CHAUTHTOK", "USER_ERR", "CRED_REFR", "USYS_CONFIG",
    "USER_LOGIN", "USER_LOGOUT", "ADD_USER", "DEL_USER", "ADD_GROUP", "DEL_GROUP",
    "DAC_CHECK", "CHGRP_ID", "TEST", "TRUSTED_APP", "USER_SELINUX_ERR", "USER_CMD",
    "USER_TTY", "CHUSER_ID", "GRP_AUTH", "SYSTEM_BOOT", "SYSTEM_SHUTDOWN", "SYSTEM_RUNLEVEL",
    "SERVICE_START", "SERVICE_STOP", "GRP_MGMT", "GRP_CHAUTHTOK", "MAC_CHECK", "ACCT_LOCK",
    "ACCT_UNLOCK", "USER_DEVICE", "SOFTWARE_UPDATE", "DAEMON_START", "DAEMON_END",
    "DAEMON_ABORT", "DAEMON_CONFIG", "DAEMON_ROTATE", "DAEMON_RESUME", "DAEMON_ACCEPT",
    "DAEMON_CLOSE", "DAEMON_ERR", "ANOM_LOGIN_FAILURES", "ANOM_LOGIN_TIME",
    "ANOM_LOGIN_SESSIONS", "ANOM_LOGIN_ACCT", "ANOM_LOGIN_LOCATION", "ANOM_MAX_DAC",
    "ANOM_MAX_MAC", "ANOM_AMTU_FAIL", "ANOM_RBAC_FAIL", "ANOM_RBAC_INTEGRITY_FAIL",
    "ANOM_CRYPTO_FAIL", "ANOM_ACCESS_FS", "ANOM_EXEC", "ANOM_MK_EXEC", "ANOM_ADD_ACCT",
    "ANOM_DEL_ACCT", "ANOM_MOD_ACCT", "ANOM_ROOT_TRANS", "ANOM_LOGIN_SERVICE",
    "ANOM_LOGIN_ROOT", "ANOM_ORIGIN_FAILURES", "ANOM_SESSION", "RESP_ANOMALY", "RESP_ALERT",
    "RESP_KILL_PROC", "RESP_TERM_ACCESS", "RESP_ACCT_REMOTE", "RESP_ACCT_LOCK_TIMED",
    "RESP_ACCT_UNLOCK_TIMED", "RESP_ACCT_LOCK", "RESP_TERM_LOCK", "RESP_SEBOOL", "RESP_EXEC",
    "RESP_SINGLE", "RESP_HALT", "RESP_ORIGIN_BLOCK", "RESP_ORIGIN_BLOCK_TIMED",
    "RESP_ORIGIN_UNBLOCK_TIMED", "USER_ROLE_CHANGE", "ROLE_ASSIGN", "ROLE_REMOVE",
    "LABEL_OVERRIDE", "LABEL_LEVEL_CHANGE", "USER_LABELED_EXPORT", "USER_UNLABELED_EXPORT",
    "DEV_ALLOC", "DEV_DEALLOC", "FS_RELABEL", "USER_MAC_POLICY_LOAD", "ROLE_MODIFY",
    "USER_MAC_CONFIG_CHANGE", "USER_MAC_STATUS", "CRYPTO_TEST_USER",
    "CRYPTO_PARAM_CHANGE_USER", "CRYPTO_LOGIN", "CRYPTO_LOGOUT", "CRYPTO_KEY_USER",
    "CRYPTO_FAILURE_USER", "CRYPTO_REPLAY_USER", "CRYPTO_SESSION", "CRYPTO_IKE_SA",
    "CRYPTO_IPSEC_SA", "VIRT_CONTROL", "VIRT_RESOURCE", "VIRT_MACHINE_ID",
    "VIRT_INTEGRITY_CHECK", "VIRT_CREATE", "VIRT_DESTROY", "VIRT_MIGRATE_IN",
    "VIRT_MIGRATE_OUT",
))
# fmt: on

# A record while its event is pending: (type, line without newline, body start, offset).
_Rec = tuple[bytes, bytes, int, int]


class _Malformed(ValueError):
    """A record's fields do not parse; carries the human-readable reason."""


# --------------------------------------------------------------------------- values


def _value(v: bytes) -> bytes | None:
    """Decode one encoded value: ``"quoted"`` literal, ``(null)``, or unquoted hex.

    The kernel quotes a string only when it has no space, quote or odd byte, and hex-encodes
    it otherwise; so an unquoted value that is not hex is a literal such as ``?``, and an
    odd-length run of hex digits is a value cut off mid-way.
    """
    if v[:1] == b'"':
        if len(v) < 2 or v[-1] != 0x22:
            raise _Malformed(f"unterminated quoted value {_show(v)}")
        return v[1:-1]
    if v == b"(null)":
        return None
    try:
        return binascii.unhexlify(v)
    except (binascii.Error, ValueError):
        if not v.strip(_HEX_CHARS):
            raise _Malformed(f"odd-length hex value {_show(v)}") from None
        return v


def _text(v: bytes) -> str | None:
    """Decoded value in the text form of names (:mod:`ursprung_graph.schema.names`)."""
    b = _value(v)
    return None if b is None else name_from_bytes(b)


def _show(v: bytes, limit: int = 40) -> str:
    """Short printable rendering of a value for reasons."""
    s = v[:limit].decode("ascii", "backslashreplace")
    return repr(s + "..." if len(v) > limit else s)


def _raw_part(body: bytes) -> bytes:
    """The raw fields of a record body, without the ENRICHED part after ``\\x1d``."""
    i = body.find(b"\x1d")
    return body if i < 0 else body[:i]


def _fields(raw: bytes) -> dict[bytes, bytes]:
    """Generic ``k=v`` split, for records the fast regexes do not cover.

    A token without ``=`` continues the previous value: AppArmor's
    ``subj==/usr/sbin/ntpd (enforce)`` is the one real unquoted value with a space.
    """
    d: dict[bytes, bytes] = {}
    last = b""
    for tok in raw.split(b" "):
        if not tok:
            continue
        k, sep, v = tok.partition(b"=")
        if sep and k:
            if k in d:
                raise _Malformed(f"field {k.decode()} repeated")
            d[k] = v
            last = k
        elif last:
            d[last] += b" " + tok
        else:
            raise _Malformed(f"token {_show(tok)} is not field=value")
    return d


def _int(v: bytes | None, base: int = 10) -> int | None:
    """Integer field, None when absent."""
    return None if v is None else int(v, base)


def _memo_put(memo: dict, key: bytes | tuple[bytes, bytes], value: object) -> None:
    """Store in a bounded memo dict (cleared wholesale when full: cheap and good enough)."""
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    memo[key] = value


# --------------------------------------------------------------------------- records

# (ppid, pid, auid, uid, gid, euid, comm, exe, key)
_Identity = tuple[int, int, "int | None", "int | None", "int | None", "int | None",
                  "str | None", "str | None", "str | None"]  # fmt: skip


def _parse_identity(ident: bytes) -> _Identity:
    """The ``ppid=...`` to end part of a SYSCALL record (memoised by the caller)."""
    m = _IDENTITY.match(ident)
    if m is not None:
        ppid, pid, auid, uid, gid, euid, comm, exe = m.groups()
        k = ident.rfind(b" key=", m.end() - 1)
        key = ident[k + 5 :].split(b" ", 1)[0] if k >= 0 else None
    else:
        d = _fields(ident)
        if b"pid" not in d or b"ppid" not in d:
            raise _Malformed("missing pid= or ppid=")
        ppid, pid, auid, uid = d[b"ppid"], d[b"pid"], d.get(b"auid"), d.get(b"uid")
        gid, euid, comm, exe, key = (d.get(k) for k in (b"gid", b"euid", b"comm", b"exe", b"key"))
    try:
        return (
            int(ppid), int(pid), _int(auid), _int(uid), _int(gid), _int(euid),
            None if comm is None else _text(comm),
            None if exe is None else _text(exe),
            None if key is None else _text(key),
        )  # fmt: skip
    except ValueError as e:
        raise _Malformed(f"bad number: {e}") from None


def _syscall_name(archsys: bytes, enriched: bytes | None) -> str:
    """Name from ENRICHED ``SYSCALL=`` if present, else from the arch's table."""
    if enriched:
        v = _after(b" " + enriched, b" SYSCALL=")
        if v and v.strip(b'"'):
            return v.strip(b'"').decode("utf-8", "backslashreplace")
    d = _fields(archsys)
    try:
        return syscall_name(d[b"arch"].decode("ascii"), int(d[b"syscall"]))
    except (KeyError, ValueError):
        raise _Malformed(f"bad arch/syscall {_show(archsys)}") from None


def _after(raw: bytes, marker: bytes) -> bytes | None:
    """Value following ``marker`` (e.g. `` SYSCALL=``) up to the next space."""
    i = raw.find(marker)
    if i < 0:
        return None
    i += len(marker)
    j = raw.find(b" ", i)
    return raw[i:] if j < 0 else raw[i:j]


def _syscall_slow(body: bytes) -> tuple:
    """SYSCALL fields for records outside the kernel's usual field order."""
    raw, _, enriched = body.partition(b"\x1d")
    d = _fields(raw)
    missing = [k.decode() for k in _SYSCALL_REQUIRED if k not in d]
    if missing:
        raise _Malformed(f"missing field {', '.join(missing)}")
    archsys = b"arch=" + d[b"arch"] + b" syscall=" + d[b"syscall"]
    ident = b" ".join(k + b"=" + v for k, v in d.items() if k not in _NOT_IDENTITY)
    return (archsys, d.get(b"success"), d.get(b"exit"), d[b"a0"], d[b"a1"], d[b"a2"],
            d[b"a3"], d.get(b"items", b"0"), ident, enriched or None)  # fmt: skip


_NOT_IDENTITY = frozenset(
    (b"arch", b"syscall", b"success", b"exit", b"a0", b"a1", b"a2", b"a3", b"items")
)


def _path_fields(raw: bytes) -> tuple:
    """PATH raw part -> PathItem constructor arguments (memoised by the caller)."""
    m = _PATH.match(raw)
    if m is not None:
        item, name, inode, dev, mode, nametype = m.groups()
    else:
        d = _fields(_raw_part(raw))
        item, name = d.get(b"item"), d.get(b"name")
        inode, dev, mode = d.get(b"inode"), d.get(b"dev"), d.get(b"mode")
        if item is None or name is None:
            raise _Malformed("missing item= or name=")
        # Kernels before 3.13 (RHEL/CentOS 7: 3.10) write objtype= instead of nametype=,
        # older ones neither (auparse accepts both): the kind of name is then unknown.
        nametype = d.get(b"nametype", d.get(b"objtype", b"UNKNOWN"))
    if not nametype:
        raise _Malformed("empty nametype=")
    try:
        return (
            int(item),
            _text(name),
            None if inode is None else int(inode),
            None if dev is None else dev.decode("ascii", "backslashreplace"),
            None if mode is None else int(mode, 8),
            nametype.decode("ascii", "backslashreplace"),
        )
    except ValueError as e:
        raise _Malformed(f"bad number: {e}") from None


def _parse_execve(bodies: list[bytes]) -> list[str] | None:
    """argv from the event's EXECVE records; None if arguments are still missing.

    Long arguments come as ``aN_len=TOTAL aN[0]=.. aN[1]=..``, possibly over several
    records; chunks are joined as bytes before decoding so split UTF-8 survives.
    """
    d: dict[bytes, bytes] = {}
    for body in bodies:
        for k, v in _fields(_raw_part(body)).items():
            if k in d:
                raise _Malformed(f"field {k.decode()} repeated")
            d[k] = v
    argc_b = d.get(b"argc")
    if argc_b is None:
        return None
    try:
        argc = int(argc_b)
    except ValueError:
        raise _Malformed(f"bad argc {_show(argc_b)}") from None
    argv: list[str] = []
    for i in range(argc):
        arg = _execve_arg(d, i)
        if arg is None:
            return None
        argv.append(name_from_bytes(arg))
    return argv


def _execve_arg(d: dict[bytes, bytes], i: int) -> bytes | None:
    """Argument ``i`` as bytes, or None if (some of) it has not arrived."""
    v = d.get(b"a%d" % i)
    if v is not None:
        b = _value(v)
        return b"(null)" if b is None else b
    total = d.get(b"a%d_len" % i)
    if total is None:
        return None
    try:
        want = int(total)
    except ValueError:
        raise _Malformed(f"bad a{i}_len {_show(total)}") from None
    chunks = []
    logged = 0  # characters as logged: aN_len counts hex digits of a hex-encoded argument
    j = 0
    while (c := d.get(b"a%d[%d]" % (i, j))) is not None:
        chunks.append(_value(c) or b"")
        logged += len(c) - 2 if c[:1] == b'"' else len(c)
        j += 1
    if logged < want:
        return None
    if logged > want:
        raise _Malformed(f"argument a{i} has {logged} characters but a{i}_len={want}")
    return b"".join(chunks)


def _single_value(body: bytes, field: bytes) -> bytes:
    """The value of a record whose body is one ``field=value`` (CWD, PROCTITLE)."""
    raw = _raw_part(body).strip(b" ")
    if not raw.startswith(field) or b" " in raw:
        raise _Malformed(f"expected a single {field.decode()} field")
    return raw[len(field) :]


def _parse_cwd(body: bytes) -> str | None:
    """CWD record."""
    return _text(_single_value(body, b"cwd="))


def _proctitle_parts(body: bytes) -> tuple[str, ...] | None:
    """PROCTITLE record: NUL-separated argv (the kernel truncates it to 128 bytes)."""
    b = _value(_single_value(body, b"proctitle="))
    if b is None:
        return None
    parts = b.split(b"\0")
    if len(parts) > 1 and not parts[-1]:
        parts.pop()
    return tuple(name_from_bytes(p) for p in parts)


def _parse_sockaddr(body: bytes) -> SockAddr:
    """SOCKADDR record: decode the binary ``struct sockaddr`` in ``saddr``."""
    v = _fields(_raw_part(body)).get(b"saddr")
    if v is None:
        raise _Malformed("missing saddr=")
    b = _value(v)
    if b is None or len(b) < 2:
        raise _Malformed(f"saddr too short: {_show(v)}")
    return decode_sockaddr(b)


def decode_sockaddr(b: bytes) -> SockAddr:
    """``struct sockaddr`` bytes as the kernel logs them -> SockAddr.

    Raises ValueError when the bytes are too short for their family.
    """
    fam = int.from_bytes(b[:2], "little")
    if fam == 2:
        if len(b) < 8:
            raise _Malformed(f"AF_INET saddr of {len(b)} bytes")
        return SockAddr("inet", ".".join(map(str, b[4:8])), int.from_bytes(b[2:4], "big"))
    if fam == 10:
        if len(b) < 24:
            raise _Malformed(f"AF_INET6 saddr of {len(b)} bytes")
        addr = ipaddress.IPv6Address(b[8:24]).compressed
        return SockAddr("inet6", addr, int.from_bytes(b[2:4], "big"))
    if fam == 1:
        path = b[2:]
        if not path.strip(b"\0"):
            return SockAddr("unix", None, None)  # unnamed (socketpair, unbound)
        # Abstract names start with NUL; shown as "@name" as ss(8) does.
        name = b"@" + path[1:].split(b"\0", 1)[0] if path[0] == 0 else path.split(b"\0", 1)[0]
        return SockAddr("unix", name_from_bytes(name), None)
    if fam == 16:
        return SockAddr("netlink", None, None)
    return SockAddr(f"other:{fam}", None, None)


def _parse_fd_pair(body: bytes) -> tuple[int, int]:
    """FD_PAIR record (pipe/socketpair)."""
    m = _FD_PAIR.match(_raw_part(body))
    if m is None:
        raise _Malformed("expected fd0=N fd1=N")
    return int(m[1]), int(m[2])


# --------------------------------------------------------------------------- events
#
# Building an event from its records is written once, here, for both parsers: the
# pure-Python one below calls `_build_event` for every event, the compiled core
# (`_records.c`) builds the common case itself and calls `_build_event` for everything
# else (duplicates, conflicts, malformed or unusual records, truncated events). `p` is the
# parser: any object with the attributes of `_ParserState`.


class _ParserState(Protocol):
    """What event building reads and updates on a parser (both implementations)."""

    default_node: str | None
    skipped: int
    _m_ident: dict[bytes, _Identity]
    _m_ts: dict[bytes, int]
    _m_name: dict[bytes | tuple[bytes, bytes], str]
    _m_path: dict[bytes, tuple]
    _m_cwd: dict[bytes, str | None]
    _m_title: dict[bytes, tuple[str, ...] | None]


def _junk_reason(line: bytes) -> str:
    """Why a line is not a record, as specific as cheaply possible."""
    if not line.isascii():
        return "not an audit record: binary or non-ASCII bytes"
    if b"type=" not in line:
        return "not an audit record: no type= field"
    if b"msg=audit(" not in line:
        return "not an audit record: no msg=audit(...) header"
    return "not an audit record: malformed type=... msg=audit(SEC.MSEC:SERIAL): header"


def _bad_bytes(line: bytes) -> str | None:
    """Reason if a header-valid, non-ASCII line has bytes auditd never writes, else None.

    The raw part is pure ASCII (odd bytes are hex-encoded); only the ENRICHED part after
    ``\\x1d`` may carry UTF-8 (user and group names).
    """
    i = line.find(b"\x1d")
    if i < 0 or not line[:i].isascii():
        return "non-ASCII bytes in raw record"
    try:
        line[i:].decode("utf-8")
    except UnicodeDecodeError:
        return "non-UTF-8 bytes in enriched fields"
    return None


def _late_reason(rtype: bytes, key: bytes) -> str:
    """Reason for a record whose event was already emitted."""
    return f"{rtype.decode()} record for serial {_serial(key)} arrived after its event"


def _ts_serial(stamp: bytes) -> tuple[int, int]:
    """``SEC.FRAC:SERIAL`` -> (epoch ns, serial); FRAC is milliseconds in practice."""
    sec, frac, serial = stamp.replace(b".", b":").split(b":")
    if len(frac) == 3:
        return int(sec + frac) * 1_000_000, int(serial)
    frac = frac[:9]
    return int(sec) * 1_000_000_000 + int(frac) * 10 ** (9 - len(frac)), int(serial)


def _serial(key: bytes) -> int:
    """Serial number of an event key."""
    return int(key.rpartition(b":")[2])


def _joined(recs: list[_Rec]) -> bytes:
    """An event's lines as one Rejected raw."""
    return b"\n".join(r[1] for r in recs)[:RAW_LIMIT]


def _dead(reason: str, rec: _Rec) -> Rejected:
    """Rejected whose raw is one record's line."""
    return Rejected(reason, rec[1][:RAW_LIMIT], rec[3])


def _build_event(
    p: _ParserState, key: bytes, recs: list[_Rec], offset: int, final: bool
) -> list[Output] | None:
    """The output of one event (None: incomplete and not final). Never raises."""
    try:
        return _build(p, key, recs, offset, final)
    except Exception as e:
        why = f"internal error in event serial {_serial(key)}: {e!r}"
        return [Rejected(why, _joined(recs), offset)]


def _build(
    p: _ParserState, key: bytes, recs: list[_Rec], offset: int, final: bool
) -> list[Output] | None:
    """Group, dedupe and parse the event's records (policy: module docstring)."""
    single: dict[bytes, _Rec] = {}
    paths: list[_Rec] = []
    execs: list[_Rec] = []
    extra: list[_Rec] = []
    for rec in recs:
        t = rec[0]
        if t in _SINGLE:
            if t in single:
                extra.append(rec)
            else:
                single[t] = rec
        elif t == b"PATH":
            paths.append(rec)
        elif t == b"EXECVE":
            execs.append(rec)
    sysrec = single.get(b"SYSCALL")
    if sysrec is None:
        if not final:
            return None
        p.skipped += 1
        return []
    out: list[Output] = []
    head, sep, stamp = key.rpartition(b" ")  # key: [NODE ]SEC.MSEC:SERIAL
    node = head if sep else None
    tsb, _, serial_b = stamp.partition(b":")
    serial = int(serial_b)
    ts = p._m_ts.get(tsb)  # events share their millisecond: memoised too
    if ts is None:
        ts = _ts_serial(stamp)[0]
        _memo_put(p._m_ts, tsb, ts)
    nrec = len(recs)
    if extra or len(execs) > 1 or len(paths) > 1:
        dropped, fatal = _dedupe(single, extra, paths, execs, serial, out)
        if fatal is not None:
            return [fatal]
        nrec -= dropped
    try:
        sc = _syscall(p, sysrec[1], sysrec[2])
    except _Malformed as e:
        return [_dead(f"event serial {serial} dropped: malformed SYSCALL record: {e}", sysrec)]
    name, success, exit_, args, items, ident = sc
    plist: list[PathItem] = []
    if paths:
        memo = p._m_path
        for rec in paths:
            body = rec[1][rec[2] :]
            f = memo.get(body)
            if f is None:
                try:
                    f = _path_fields(body)
                except _Malformed as e:
                    why = f"event serial {serial} dropped: malformed PATH record: {e}"
                    return [_dead(why, rec)]
                _memo_put(memo, body, f)
            plist.append(PathItem(*f))
        if len(plist) > 1:
            plist.sort(key=_item_of)
            if len({x.item for x in plist}) < len(plist):
                why = f"event serial {serial} dropped: conflicting PATH records (same item)"
                return [_dead(why, paths[-1])]
    n_paths = len(plist)
    if n_paths > items:
        why = f"event serial {serial} dropped: {n_paths} PATH records but items={items}"
        return [_dead(why, sysrec)]
    missing = f"{n_paths} of {items} PATH records" if n_paths < items else None
    argv = None
    if execs:
        try:
            argv = _parse_execve([r[1][r[2] :] for r in execs])
        except _Malformed as e:
            why = f"event serial {serial} dropped: malformed EXECVE record: {e}"
            return [_dead(why, execs[0])]
    if argv is None and missing is None and success and name in _EXECS:
        missing = "EXECVE arguments incomplete" if execs else "no EXECVE record"
    if missing is not None and not final:
        return None
    cwd = title = sock = fdp = None
    if len(single) > 1:
        cwd, title, sock, fdp = _aux(p, single, serial, out)
    ppid, pid, auid, uid, gid, euid, comm, exe, k = ident
    # Positional on purpose: keyword construction of this 24-field class costs 3x more.
    ev = AuditEvent(
        p.default_node if node is None else node.decode("ascii"),
        serial, ts, name, success, exit_, args, pid, ppid, uid, euid, gid, auid,
        comm, exe, k, cwd, plist, argv, title, sock, fdp, nrec, offset,
    )  # fmt: skip
    out.append(ev)
    if missing is not None:  # final: keep what the records prove, say what is lost
        out.append(CaptureGap(f"truncated event serial {serial}: {missing}", ev,
                              _joined(recs), offset))
    return out


def _syscall(p: _ParserState, line: bytes, pos: int) -> tuple:
    """SYSCALL record -> (name, success, exit, args, items, identity)."""
    m = _SYSCALL.match(line, pos)
    if m is not None:
        archsys, succ, ex, a0, a1, a2, a3, items = m.groups()
        i = line.find(b"\x1d", m.end())
        if i < 0:
            ident, enriched = line[m.end() :], None
        else:
            ident, enriched = line[m.end() : i], line[i + 1 :]
    else:
        archsys, succ, ex, a0, a1, a2, a3, items, ident, enriched = _syscall_slow(line[pos:])
    if succ is None or succ == b"yes":  # absent for calls that never return (exit_group)
        success = True
    elif succ == b"no":
        success = False
    else:
        raise _Malformed(f"bad success value {_show(succ)}")
    try:
        args = (int(a0, 16), int(a1, 16), int(a2, 16), int(a3, 16))
        exit_ = None if ex is None else int(ex)
        n_items = int(items)
    except ValueError as e:
        raise _Malformed(f"bad number: {e}") from None
    name_key = (archsys, enriched) if enriched else archsys
    name = p._m_name.get(name_key)
    if name is None:
        name = _syscall_name(archsys, enriched)
        _memo_put(p._m_name, name_key, name)
    identity = p._m_ident.get(ident)
    if identity is None:
        identity = _parse_identity(ident)
        _memo_put(p._m_ident, ident, identity)
    return name, success, exit_, args, n_items, identity


def _aux(p: _ParserState, single: dict[bytes, _Rec], serial: int, out: list[Output]) -> tuple:
    """CWD, PROCTITLE, SOCKADDR, FD_PAIR values; a malformed one is dead-lettered alone."""
    cwd = title = sock = fdp = None
    seen = 1  # SYSCALL
    rec = single.get(b"PROCTITLE")
    if rec is not None:
        seen += 1
        body = rec[1][rec[2] :]
        parts = p._m_title.get(body, _MISSING)
        if parts is _MISSING:
            parts = _aux_parse(_proctitle_parts, rec, body, serial, out, p._m_title)
        title = None if parts is None else list(parts)
    rec = single.get(b"CWD")
    if rec is not None:
        seen += 1
        body = rec[1][rec[2] :]
        cwd = p._m_cwd.get(body, _MISSING)
        if cwd is _MISSING:
            cwd = _aux_parse(_parse_cwd, rec, body, serial, out, p._m_cwd)
    if len(single) > seen:
        rec = single.get(b"SOCKADDR")
        if rec is not None:
            sock = _aux_parse(_parse_sockaddr, rec, rec[1][rec[2] :], serial, out)
        rec = single.get(b"FD_PAIR")
        if rec is not None:
            fdp = _aux_parse(_parse_fd_pair, rec, rec[1][rec[2] :], serial, out)
    return cwd, title, sock, fdp


def _aux_parse(
    parse: Callable[[bytes], object],
    rec: _Rec,
    body: bytes,
    serial: int,
    out: list[Output],
    memo: dict | None = None,
) -> Any:
    """Parse one aux record; None plus a Rejected if malformed."""
    try:
        val = parse(body)
    except _Malformed as e:
        out.append(_dead(f"malformed {rec[0].decode()} record (serial {serial}): {e}", rec))
        return None
    if memo is not None:
        _memo_put(memo, body, val)
    return val


def _dedupe(
    single: dict[bytes, _Rec],
    extra: list[_Rec],
    paths: list[_Rec],
    execs: list[_Rec],
    serial: int,
    out: list[Output],
) -> tuple[int, Rejected | None]:
    """Drop byte-identical repeats (a Rejected each) and conflicting aux records.

    Returns (records dropped, fatal Rejected if a SYSCALL conflicts).
    """
    dropped = 0
    for rec in extra:
        t = rec[0].decode()
        dropped += 1
        if single[rec[0]][1] == rec[1]:
            out.append(_dead(f"duplicate {t} record in event serial {serial}", rec))
        elif t == "SYSCALL":
            return dropped, _dead(f"event serial {serial} dropped: conflicting SYSCALL", rec)
        else:
            out.append(_dead(f"conflicting {t} record in event serial {serial}", rec))
    for recs in (paths, execs):
        if len(recs) < 2:
            continue
        seen: set[bytes] = set()
        keep = []
        for rec in recs:
            if rec[1] in seen:
                out.append(
                    _dead(f"duplicate {rec[0].decode()} record in event serial {serial}", rec)
                )
            else:
                seen.add(rec[1])
                keep.append(rec)
        dropped += len(recs) - len(keep)
        recs[:] = keep
    return dropped, None


def _item_of(p: PathItem) -> int:
    """Sort key for PATH records."""
    return p.item


# --------------------------------------------------------------------------- parser


class _Pending:
    """Records of one event that has not been emitted yet."""

    __slots__ = ("seq", "offset", "waiting", "recs")

    def __init__(self, seq: int, rec: _Rec) -> None:
        self.seq = seq
        self.offset = rec[3]
        self.waiting = False  # tried and incomplete: re-try when SYSCALL/PATH/EXECVE arrive
        self.recs = [rec]


class PyAuditParser:
    """Incremental parser: feed raw lines, get completed events and dead letters.

    ``window``: an event not completed by its PROCTITLE/EOE is completed once more than
    ``window`` newer events have started. Memory is bounded by the pending events, the
    memo dicts (``MEMO_LIMIT`` entries each) and the keys of the last ``2 * max(4 *
    window, 1024)`` emitted events (kept to recognise late records).

    This is the pure-Python implementation: the reference the compiled ``AuditParser``
    (``_records.c``) is tested against, and the parser used where that is not built.
    """

    def __init__(self, default_node: str | None = None, window: int = 256) -> None:
        if window < 0:
            raise ValueError("window must be >= 0")
        self.default_node = default_node
        self.window = window
        self.records = 0
        self.skipped = 0
        self._seq = 0
        self._expire_at = window  # no pending event can expire before _seq exceeds this
        self._pending: dict[bytes, _Pending] = {}
        # Two generations of emitted keys: a cheap bounded "recently done" memory.
        self._done: set[bytes] = set()
        self._done_old: set[bytes] = set()
        self._done_cap = max(4 * window, 1024)
        self._m_ident: dict[bytes, _Identity] = {}
        self._m_ts: dict[bytes, int] = {}
        self._m_name: dict[bytes | tuple[bytes, bytes], str] = {}
        self._m_path: dict[bytes, tuple] = {}
        self._m_cwd: dict[bytes, str | None] = {}
        self._m_title: dict[bytes, tuple[str, ...] | None] = {}

    @property
    def pending(self) -> int:
        """Events started but not yet emitted."""
        return len(self._pending)

    def feed(self, line: bytes, offset: int = -1) -> list[Output]:
        """One raw line (with or without trailing newline). Returns events completed by it."""
        line = line.rstrip(b"\r\n")
        if not line:
            return []  # a blank line: skipped, as auparse does
        m = _HEADER.match(line)
        if m is None:
            return [Rejected(_junk_reason(line), line[:RAW_LIMIT], offset)]
        if not line.isascii():
            bad = _bad_bytes(line)
            if bad is not None:
                return [Rejected(bad, line[:RAW_LIMIT], offset)]
        node, rtype, key = m.groups()
        if node is not None:
            key = node + b" " + key
        self.records += 1
        pending = self._pending
        ev = pending.get(key)
        if ev is None:
            self._seq += 1
            if (
                self._seq > self._expire_at
                or rtype in _ENDS
                or rtype in _USER_TYPES
                or key in self._done
                or key in self._done_old
            ):
                return self._start(key, (rtype, line, m.end(), offset))
            pending[key] = _Pending(self._seq, (rtype, line, m.end(), offset))
            return []
        ev.recs.append((rtype, line, m.end(), offset))
        if rtype in _ENDS or (ev.waiting and rtype in _COMPLETING):
            res = self._finish(key, ev, final=False)
            if res is None:
                ev.waiting = True
                return []
            del pending[key]
            return res
        return []

    def feed_block(self, data: bytes, offset: int) -> list[Completed]:
        """Feed every line of ``data`` that ends in a newline (``data[0]`` is at byte
        ``offset``); what follows the last newline is left to the caller. Returns
        (offset after the line, pending, records, outputs) for each line with outputs:
        what a caller cutting the stream where no event is pending needs."""
        out: list[Completed] = []
        feed = self.feed
        for line in io.BytesIO(data):  # split after each newline, as iterating a file does
            if line[-1:] != b"\n":
                break  # the rest: left to the caller
            items = feed(line, offset)
            offset += len(line)
            if items:
                out.append((offset, len(self._pending), self.records, items))
        return out

    def flush(self) -> list[Output]:
        """End of input: emit complete pending events, dead-letter truncated ones."""
        out: list[Output] = []
        pending = self._pending
        while pending:
            key = next(iter(pending))
            out += self._finish(key, pending.pop(key), final=True)  # type: ignore[arg-type]
        return out

    # ------------------------------------------------------------------ internals

    def _start(self, key: bytes, rec: _Rec) -> list[Output]:
        """First record of a stamp (``_seq`` already counts it), slow path: expire old
        events, skip user messages, reject late records, or open a pending event."""
        rtype = rec[0]
        if key in self._done or key in self._done_old:
            self._seq -= 1  # not a new serial
            if rtype == b"EOE":
                return []
            return [_dead(_late_reason(rtype, key), rec)]
        out = self._expire() if self._seq > self._expire_at else []
        if rtype in _USER_TYPES:
            self.skipped += 1
            return out
        ev = self._pending[key] = _Pending(self._seq, rec)
        if rtype in _ENDS:
            out += self._try_emit(key, ev)
        return out

    def _expire(self) -> list[Output]:
        """Complete the oldest pending events once `window` newer ones have started."""
        out: list[Output] = []
        pending = self._pending
        limit = self._seq - self.window
        while pending:
            key = next(iter(pending))
            ev = pending[key]
            if ev.seq >= limit:
                self._expire_at = ev.seq + self.window
                return out
            del pending[key]
            out += self._finish(key, ev, final=True)  # type: ignore[arg-type]
        self._expire_at = self._seq + self.window
        return out

    def _try_emit(self, key: bytes, ev: _Pending) -> list[Output]:
        """At PROCTITLE/EOE: emit ``ev`` if complete, else let it wait for late records."""
        res = self._finish(key, ev, final=False)
        if res is None:
            ev.waiting = True
            return []
        del self._pending[key]
        return res

    def _finish(self, key: bytes, ev: _Pending, final: bool) -> list[Output] | None:
        """Build the event's output (None: incomplete and not final); remember its key."""
        res = _build_event(self, key, ev.recs, ev.offset, final)
        if res is not None:
            done = self._done
            done.add(key)
            if len(done) > self._done_cap:
                self._done_old = done
                self._done = set()
        return res


# --------------------------------------------------------------------------- choice

#: Set (to anything but "" or "0") to use the pure-Python parser even where the compiled
#: core is built.
PURE_PYTHON_ENV = "URSPRUNG_PURE_PYTHON"
#: Why the compiled core is not built (None when it is).
C_UNAVAILABLE: str | None = None


def _plain_slots(cls: type) -> tuple[str, ...] | None:
    """Field names of a slots dataclass whose ``__init__`` only stores its arguments, in
    slot order: the compiled core then fills the slots of a new instance itself (a Python
    ``__init__`` call costs more than the rest of building an event). None for anything
    else (a ``__post_init__``, another ``__init__``, ``__new__`` or ``__setattr__``, a base
    class): then it calls the class."""
    fields = dataclasses.fields(cls)
    names = tuple(f.name for f in fields)
    init = getattr(cls.__dict__.get("__init__"), "__code__", None)
    # What dataclasses generates for these fields, to compare the bytecode with.
    made = dataclasses.make_dataclass(cls.__name__, names, slots=True)
    ref = made.__dict__["__init__"].__code__
    plain = (
        cls.__bases__ == (object,)
        and cls.__dict__.get("__slots__") == names
        and all(f.init and not f.kw_only for f in fields)
        and not hasattr(cls, "__post_init__")
        and init is not None
        and (init.co_code, init.co_names, init.co_varnames)
        == (ref.co_code, ref.co_names, ref.co_varnames)
        and cls.__new__ is object.__new__
        and cls.__setattr__ is object.__setattr__
    )
    return names if plain else None


def _bind_compiled() -> type | None:
    """The compiled parser bound to this module's classes and policies, or None."""
    global C_UNAVAILABLE
    try:
        from ursprung_graph.collectors.auditd import _records  # type: ignore[attr-defined]
    except ImportError as e:
        C_UNAVAILABLE = f"extension not built: {e}"
        return None
    _records.bind(
        AuditEvent=AuditEvent, PathItem=PathItem, Rejected=Rejected,
        build_event=_build_event, junk_reason=_junk_reason, bad_bytes=_bad_bytes,
        late_reason=_late_reason, ts_serial=_ts_serial, parse_identity=_parse_identity,
        syscall_name=_syscall_name, path_fields=_path_fields, parse_cwd=_parse_cwd,
        proctitle_parts=_proctitle_parts, decode_sockaddr=decode_sockaddr,
        parse_sockaddr=_parse_sockaddr, parse_fd_pair=_parse_fd_pair,
        user_types=_USER_TYPES, memo_limit=MEMO_LIMIT, raw_limit=RAW_LIMIT,
        event_slots=_plain_slots(AuditEvent), path_slots=_plain_slots(PathItem),
    )  # fmt: skip
    return _records.AuditParser


#: The compiled parser (``_records.c``), None where the extension is not built.
CAuditParser = _bind_compiled()
#: "c" or "python": which implementation ``AuditParser`` is.
IMPLEMENTATION = (
    "python"
    if CAuditParser is None or os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0")
    else "c"
)
#: The parser: the compiled core when it is built (and not disabled), else PyAuditParser.
#: Both take ``(default_node=None, window=256)`` and give the same outputs.
AuditParser: type[PyAuditParser] = (
    PyAuditParser if IMPLEMENTATION == "python" else CAuditParser  # type: ignore[assignment]
)


#: Bytes read at a time by iter_file and AuditdSource.chunks.
BLOCK = 1 << 16


def line_blocks(read: Callable[[int], bytes]) -> Iterator[bytes]:
    """The input of ``read`` in blocks of whole lines (each ends in a newline), for
    ``feed_block``; a last line without a newline comes alone, as the last block."""
    parts: list[bytes] = []
    while block := read(BLOCK):
        end = block.rfind(b"\n") + 1
        if not end:
            parts.append(block)  # a line longer than a block
            continue
        parts.append(block if end == len(block) else block[:end])
        yield parts[0] if len(parts) == 1 else b"".join(parts)
        parts = [] if end == len(block) else [block[end:]]
    if parts:
        yield b"".join(parts)


def iter_file(path: str, default_node: str | None = None) -> Iterator[Output]:
    """Parse a whole audit.log, yielding events and dead letters; offsets are byte offsets.

    A last line without a newline was cut off while being written: it is dead-lettered.
    """
    parser = AuditParser(default_node)
    feed_block = parser.feed_block
    offset = 0
    with open(path, "rb") as f:
        for data in line_blocks(f.read):
            if data[-1:] != b"\n":
                yield Rejected(
                    "last line cut off (no trailing newline)", data[:RAW_LIMIT], offset
                )
                break
            for group in feed_block(data, offset):
                yield from group[3]
            offset += len(data)
    yield from parser.flush()
