"""Parser for auditd's raw text format (audit.log lines, audisp ``format = string``).

One line is one record: ``[node=NAME ]type=TYPE msg=audit(SEC.MSEC:SERIAL): field=value ...``,
optionally followed (``log_format = ENRICHED``) by a ``\\x1d`` byte and interpreted
uppercase fields. Records sharing a ``msg=audit(...)`` stamp form one event; records of
different events interleave. The parser groups them and emits one :class:`AuditEvent` per
syscall event.

Design for throughput: lines stay ``bytes``; ``feed`` only matches the header and files the
line under its event, and the records we need are parsed (with a few precompiled regexes,
no per-field objects) once, when the event completes. Other record types are never parsed.

Event completion:

* at its ``EOE`` record, if complete: a SYSCALL event needs as many PATH records as its
  ``items=`` and, for a successful execve/execveat, a complete EXECVE argument list.
  An incomplete event seen with EOE keeps waiting (records may arrive out of order);
* when more than ``window`` newer events (serials) have started since it did;
* at :meth:`AuditParser.flush`.

An event completed by window or flush that is still incomplete becomes a
:class:`DeadLetter` ("truncated event ..."). Events without a SYSCALL record (user-space
messages such as USER_*, LOGIN without syscall, CONFIG_CHANGE, URINGOP...) are counted in
``skipped``; user-space message types are recognised and skipped on sight.

Broken input never raises. Policy per case:

* a line that is not a record (no header, bad ``msg=audit(...)``, binary junk, non-ASCII
  raw part, non-UTF-8 enriched part) -> one DeadLetter for that line;
* a record that repeats an earlier record of its event byte for byte -> DeadLetter for the
  repeat, the event is unaffected;
* a record arriving after its event was emitted -> DeadLetter for that record;
* a malformed or conflicting SYSCALL, PATH or EXECVE record -> the whole event becomes one
  DeadLetter (raw = the offending line): these define what the event *is*, so a half-parsed
  event is never emitted;
* a malformed CWD, PROCTITLE, SOCKADDR or FD_PAIR record -> DeadLetter for that record, and
  the event is emitted with that field None (consumers already handle their absence).
"""

from __future__ import annotations

import binascii
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ursprung_graph.collectors.auditd.syscalls import syscall_name

__all__ = [
    "AuditEvent",
    "AuditParser",
    "DeadLetter",
    "PathItem",
    "SockAddr",
    "iter_file",
]

#: DeadLetter.raw is capped at this many bytes.
RAW_LIMIT = 4096


@dataclass(slots=True)
class PathItem:
    """One PATH record of an event."""

    item: int
    name: str | None
    inode: int | None
    dev: str | None
    mode: int | None
    nametype: str


@dataclass(slots=True)
class SockAddr:
    """Decoded SOCKADDR ``saddr``."""

    family: str
    address: str | None
    port: int | None


@dataclass(slots=True)
class AuditEvent:
    """One syscall event: its SYSCALL record plus the auxiliary records we use."""

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
class DeadLetter:
    """Input that could not become an event, kept for inspection instead of raising."""

    reason: str
    raw: bytes
    offset: int


Output = AuditEvent | DeadLetter

# --------------------------------------------------------------------------- regexes

_HEADER = re.compile(
    rb"(?:node=([^ ]+) )?type=([A-Za-z0-9_\[\]-]+) msg=audit\(([0-9]+\.[0-9]+:[0-9]+)\):(?: |$)"
)
_SYSCALL = re.compile(
    rb" *arch=([0-9a-fA-F]+) syscall=([0-9]+) (?:success=([a-z]+) exit=(-?[0-9]+) )?"
    rb"a0=([0-9a-fA-F]+) a1=([0-9a-fA-F]+) a2=([0-9a-fA-F]+) a3=([0-9a-fA-F]+) items=([0-9]+) "
    rb"ppid=([0-9]+) pid=([0-9]+) auid=([0-9]+) uid=([0-9]+) gid=([0-9]+) euid=([0-9]+) "
)
_PATH = re.compile(
    rb" *item=([0-9]+) name=([^ ]*)(?: inode=([0-9]+) dev=([0-9a-fA-F]+:[0-9a-fA-F]+)"
    rb" mode=([0-7]+))?"
)
_FD_PAIR = re.compile(rb" *fd0=([0-9]+) fd1=([0-9]+)")
_HEX_CHARS = b"0123456789abcdefABCDEF"

# Types whose records we parse; a byte-identical repeat of one is a duplicate.
_PARSED = frozenset((b"SYSCALL", b"CWD", b"PROCTITLE", b"SOCKADDR", b"FD_PAIR", b"EOE"))
# Types whose arrival can turn a waiting (EOE already seen) event complete.
_COMPLETING = frozenset((b"SYSCALL", b"PATH", b"EXECVE"))
_EXECS = frozenset(("execve", "execveat"))

# User-space message types (libaudit 1100-1299, 2100-2999): always single-record events,
# never part of a syscall event, so they are skipped on sight instead of held in `pending`.
_USER_TYPES = frozenset(
    (
        b"USER",
        b"USER_AUTH",
        b"USER_ACCT",
        b"USER_MGMT",
        b"CRED_ACQ",
        b"CRED_DISP",
        b"USER_START",
        b"USER_END",
        b"USER_AVC",
        b"USER_CHAUTHTOK",
        b"USER_ERR",
        b"CRED_REFR",
        b"USYS_CONFIG",
        b"USER_LOGIN",
        b"USER_LOGOUT",
        b"ADD_USER",
        b"DEL_USER",
        b"ADD_GROUP",
        b"DEL_GROUP",
        b"DAC_CHECK",
        b"CHGRP_ID",
        b"TEST",
        b"TRUSTED_APP",
        b"USER_SELINUX_ERR",
        b"USER_CMD",
        b"USER_TTY",
        b"CHUSER_ID",
        b"GRP_AUTH",
        b"SYSTEM_BOOT",
        b"SYSTEM_SHUTDOWN",
        b"SYSTEM_RUNLEVEL",
        b"SERVICE_START",
        b"SERVICE_STOP",
        b"GRP_MGMT",
        b"GRP_CHAUTHTOK",
        b"MAC_CHECK",
        b"ACCT_LOCK",
        b"ACCT_UNLOCK",
        b"USER_DEVICE",
        b"SOFTWARE_UPDATE",
        b"DAEMON_START",
        b"DAEMON_END",
        b"DAEMON_ABORT",
        b"DAEMON_CONFIG",
        b"DAEMON_ROTATE",
        b"DAEMON_RESUME",
        b"DAEMON_ACCEPT",
        b"DAEMON_CLOSE",
        b"DAEMON_ERR",
        b"ANOM_LOGIN_FAILURES",
        b"ANOM_LOGIN_TIME",
        b"ANOM_LOGIN_SESSIONS",
        b"ANOM_LOGIN_ACCT",
        b"ANOM_LOGIN_LOCATION",
        b"ANOM_MAX_DAC",
        b"ANOM_MAX_MAC",
        b"ANOM_AMTU_FAIL",
        b"ANOM_RBAC_FAIL",
        b"ANOM_RBAC_INTEGRITY_FAIL",
        b"ANOM_CRYPTO_FAIL",
        b"ANOM_ACCESS_FS",
        b"ANOM_EXEC",
        b"ANOM_MK_EXEC",
        b"ANOM_ADD_ACCT",
        b"ANOM_DEL_ACCT",
        b"ANOM_MOD_ACCT",
        b"ANOM_ROOT_TRANS",
        b"ANOM_LOGIN_SERVICE",
        b"ANOM_LOGIN_ROOT",
        b"ANOM_ORIGIN_FAILURES",
        b"ANOM_SESSION",
        b"RESP_ANOMALY",
        b"RESP_ALERT",
        b"RESP_KILL_PROC",
        b"RESP_TERM_ACCESS",
        b"RESP_ACCT_REMOTE",
        b"RESP_ACCT_LOCK_TIMED",
        b"RESP_ACCT_UNLOCK_TIMED",
        b"RESP_ACCT_LOCK",
        b"RESP_TERM_LOCK",
        b"RESP_SEBOOL",
        b"RESP_EXEC",
        b"RESP_SINGLE",
        b"RESP_HALT",
        b"RESP_ORIGIN_BLOCK",
        b"RESP_ORIGIN_BLOCK_TIMED",
        b"RESP_ORIGIN_UNBLOCK_TIMED",
        b"USER_ROLE_CHANGE",
        b"ROLE_ASSIGN",
        b"ROLE_REMOVE",
        b"LABEL_OVERRIDE",
        b"LABEL_LEVEL_CHANGE",
        b"USER_LABELED_EXPORT",
        b"USER_UNLABELED_EXPORT",
        b"DEV_ALLOC",
        b"DEV_DEALLOC",
        b"FS_RELABEL",
        b"USER_MAC_POLICY_LOAD",
        b"ROLE_MODIFY",
        b"USER_MAC_CONFIG_CHANGE",
        b"USER_MAC_STATUS",
        b"CRYPTO_TEST_USER",
        b"CRYPTO_PARAM_CHANGE_USER",
        b"CRYPTO_LOGIN",
        b"CRYPTO_LOGOUT",
        b"CRYPTO_KEY_USER",
        b"CRYPTO_FAILURE_USER",
        b"CRYPTO_REPLAY_USER",
        b"CRYPTO_SESSION",
        b"CRYPTO_IKE_SA",
        b"CRYPTO_IPSEC_SA",
        b"VIRT_CONTROL",
        b"VIRT_RESOURCE",
        b"VIRT_MACHINE_ID",
        b"VIRT_INTEGRITY_CHECK",
        b"VIRT_CREATE",
        b"VIRT_DESTROY",
        b"VIRT_MIGRATE_IN",
        b"VIRT_MIGRATE_OUT",
    )
)

# A record as held while its event is pending: (type, line, body start, offset).
_Rec = tuple[bytes, bytes, int, int]


class _Malformed(Exception):
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
    """Decoded value as text; undecodable bytes become backslash escapes."""
    b = _value(v)
    return None if b is None else b.decode("utf-8", "backslashreplace")


def _show(v: bytes, limit: int = 40) -> str:
    """Short printable rendering of a value for reasons."""
    s = v[:limit].decode("ascii", "backslashreplace")
    return repr(s + "..." if len(v) > limit else s)


def _raw_part(body: bytes) -> bytes:
    """The raw fields of a record body, without the ENRICHED part after ``\\x1d``."""
    i = body.find(b"\x1d")
    return body if i < 0 else body[:i]


def _fields(raw: bytes) -> dict[bytes, bytes]:
    """Generic ``k=v`` split; slow path for records the fast regexes do not match.

    A token without ``=`` continues the previous value (AppArmor ``subj=/bin/x (enforce)``).
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


# --------------------------------------------------------------------------- records


def _parse_syscall(body: bytes) -> tuple:
    """SYSCALL fields as a tuple, fast regex first, generic split as fallback."""
    raw, _, enriched = body.partition(b"\x1d")
    m = _SYSCALL.match(raw)
    if m is not None:
        g = m.groups()
        comm = _after(raw, b" comm=", m.end() - 1)
        exe = _after(raw, b" exe=", m.end() - 1)
        k = raw.rfind(b" key=")
        key = raw[k + 5 :].split(b" ", 1)[0] if k >= 0 else None
        arch, nr, succ, ex, a0, a1, a2, a3, items, ppid, pid, auid, uid, gid, euid = g
    else:
        d = _fields(raw)
        try:
            arch, nr, a0, a1, a2, a3 = (d[k] for k in _SYSCALL_REQUIRED)
            items, ppid, pid = d.get(b"items", b"0"), d[b"ppid"], d[b"pid"]
        except KeyError as e:
            raise _Malformed(f"missing field {e.args[0].decode()}") from None
        succ, ex, auid, uid = d.get(b"success"), d.get(b"exit"), d.get(b"auid"), d.get(b"uid")
        gid, euid, comm, exe = d.get(b"gid"), d.get(b"euid"), d.get(b"comm"), d.get(b"exe")
        key = d.get(b"key")
    if succ is None or succ == b"yes":
        success = True
    elif succ == b"no":
        success = False
    else:
        raise _Malformed(f"bad success value {_show(succ)}")
    name = _enriched_syscall(enriched) if enriched else None
    try:
        number = int(nr)
        args = (int(a0, 16), int(a1, 16), int(a2, 16), int(a3, 16))
        nums = (int(items), int(ppid), int(pid), _int(auid), _int(uid), _int(gid), _int(euid))
        ex_i = _int(ex)
    except ValueError as e:
        raise _Malformed(f"bad number: {e}") from None
    if name is None:
        name = syscall_name(arch.decode("ascii"), number)
    comm_s = None if comm is None else _text(comm)
    exe_s = None if exe is None else _text(exe)
    key_s = None if key is None else _text(key)
    return (name, success, ex_i, args, *nums, comm_s, exe_s, key_s)


_SYSCALL_REQUIRED = (b"arch", b"syscall", b"a0", b"a1", b"a2", b"a3")


def _after(raw: bytes, marker: bytes, start: int) -> bytes | None:
    """Value following ``marker`` (e.g. `` comm=``) up to the next space."""
    i = raw.find(marker, start)
    if i < 0:
        return None
    i += len(marker)
    j = raw.find(b" ", i)
    return raw[i:] if j < 0 else raw[i:j]


def _enriched_syscall(enriched: bytes) -> str | None:
    """Syscall name from the ENRICHED ``SYSCALL=`` field, if present."""
    if enriched.startswith(b"SYSCALL="):
        i = 8
    else:
        i = enriched.find(b" SYSCALL=")
        if i < 0:
            return None
        i += 9
    j = enriched.find(b" ", i)
    v = (enriched[i:] if j < 0 else enriched[i:j]).strip(b'"')
    return v.decode("utf-8", "backslashreplace") or None


def _parse_path(body: bytes) -> PathItem:
    """One PATH record."""
    raw = _raw_part(body)
    m = _PATH.match(raw)
    if m is not None:
        item, name, inode, dev, mode = m.groups()
        nametype = _after(raw, b" nametype=", m.end() - 1)
    else:
        d = _fields(raw)
        item, name, nametype = d.get(b"item"), d.get(b"name"), d.get(b"nametype")
        inode, dev, mode = d.get(b"inode"), d.get(b"dev"), d.get(b"mode")
        if item is None or name is None:
            raise _Malformed("missing item= or name=")
    if not nametype:
        raise _Malformed("missing nametype=")
    try:
        return PathItem(
            int(item),
            _text(name),
            _int(inode),
            None if dev is None else dev.decode("ascii"),
            _int(mode, 8),
            nametype.decode("ascii"),
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
                raise _Malformed(f"EXECVE field {k.decode()} repeated")
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
        argv.append(arg.decode("utf-8", "backslashreplace"))
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
    chunks = []
    j = 0
    while (c := d.get(b"a%d[%d]" % (i, j))) is not None:
        chunks.append(_value(c) or b"")
        j += 1
    data = b"".join(chunks)
    try:
        want = int(total)
    except ValueError:
        raise _Malformed(f"bad a{i}_len {_show(total)}") from None
    if len(data) < want:
        return None
    if len(data) > want:
        raise _Malformed(f"argument a{i} has {len(data)} bytes, a{i}_len={want}")
    return data


def _single_value(body: bytes, field: bytes) -> bytes:
    """The value of a record whose body is one ``field=value`` (CWD, PROCTITLE...)."""
    raw = _raw_part(body).strip(b" ")
    if not raw.startswith(field) or b" " in raw:
        raise _Malformed(f"expected a single {field.decode()} field")
    return raw[len(field) :]


def _parse_cwd(body: bytes) -> str | None:
    """CWD record."""
    return _text(_single_value(body, b"cwd="))


def _parse_proctitle(body: bytes) -> list[str] | None:
    """PROCTITLE record: NUL-separated argv (kernel-truncated to 128 bytes)."""
    b = _value(_single_value(body, b"proctitle="))
    if b is None:
        return None
    parts = b.split(b"\0")
    if len(parts) > 1 and not parts[-1]:
        parts.pop()
    return [p.decode("utf-8", "backslashreplace") for p in parts]


def _parse_sockaddr(body: bytes) -> SockAddr:
    """SOCKADDR record: decode the binary ``struct sockaddr`` in ``saddr``."""
    d = _fields(_raw_part(body))
    v = d.get(b"saddr")
    if v is None:
        raise _Malformed("missing saddr=")
    b = _value(v)
    if b is None or len(b) < 2:
        raise _Malformed(f"saddr too short {_show(v)}")
    return decode_sockaddr(b)


def decode_sockaddr(b: bytes) -> SockAddr:
    """``struct sockaddr`` bytes (as the kernel logs them) to a SockAddr."""
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
        if not path:
            return SockAddr("unix", None, None)
        # Abstract names start with NUL; shown as "@name" as ss(8) does.
        name = b"@" + path[1:].split(b"\0", 1)[0] if path[0] == 0 else path.split(b"\0", 1)[0]
        return SockAddr("unix", name.decode("utf-8", "backslashreplace"), None)
    if fam == 16:
        return SockAddr("netlink", None, None)
    return SockAddr(f"other:{fam}", None, None)


def _parse_fd_pair(body: bytes) -> tuple[int, int]:
    """FD_PAIR record (pipe/socketpair)."""
    m = _FD_PAIR.match(body)
    if m is None:
        raise _Malformed("expected fd0=N fd1=N")
    return int(m[1]), int(m[2])


_AUX_PARSERS = {
    b"CWD": _parse_cwd,
    b"PROCTITLE": _parse_proctitle,
    b"SOCKADDR": _parse_sockaddr,
    b"FD_PAIR": _parse_fd_pair,
}


# --------------------------------------------------------------------------- parser


class _Pending:
    """Records of one event that has not been emitted yet."""

    __slots__ = ("seq", "offset", "eoe", "recs")

    def __init__(self, seq: int, offset: int) -> None:
        self.seq = seq
        self.offset = offset
        self.eoe = False
        self.recs: list[_Rec] = []


def _junk_reason(line: bytes) -> str:
    """Why a line is not a record, as specific as cheaply possible."""
    if not line:
        return "not an audit record: empty line"
    if not line.isascii():
        return "not an audit record: binary or non-ASCII bytes"
    if b"type=" not in line:
        return "not an audit record: no type= field"
    if b"msg=audit(" not in line:
        return "not an audit record: no msg=audit(...) header"
    return "not an audit record: malformed type=/msg=audit(SEC.MSEC:SERIAL): header"


def _bad_bytes(line: bytes) -> str | None:
    """Reason if a header-valid line has bytes the kernel never writes, else None.

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


def _stamp(stamp: bytes) -> tuple[int, int]:
    """``SEC.FRAC:SERIAL`` -> (epoch ns, serial)."""
    sec, _, rest = stamp.partition(b".")
    frac, _, serial = rest.partition(b":")
    frac = frac[:9]
    return int(sec) * 1_000_000_000 + int(frac) * 10 ** (9 - len(frac)), int(serial)


class AuditParser:
    """Incremental parser: feed raw lines, get completed events and dead letters.

    ``window``: an event without EOE is completed once more than ``window`` newer events
    have started. Memory is bounded by the pending events plus a record of the last
    ``4 * window`` emitted stamps (used to dead-letter records arriving too late).
    """

    def __init__(self, default_node: str | None = None, window: int = 256) -> None:
        if window < 0:
            raise ValueError("window must be >= 0")
        self.default_node = default_node
        self.window = window
        self.records = 0
        self.skipped = 0
        self._seq = 0
        self._pending: dict[tuple[bytes | None, bytes], _Pending] = {}
        self._done: dict[tuple[bytes | None, bytes], None] = {}
        self._done_cap = max(4 * window, 1024)

    @property
    def pending(self) -> int:
        """Events started but not yet emitted."""
        return len(self._pending)

    def feed(self, line: bytes, offset: int = -1) -> list[Output]:
        """One raw line (with or without trailing newline). Returns events completed by it."""
        line = line.rstrip(b"\r\n")
        m = _HEADER.match(line)
        if m is None:
            return [DeadLetter(_junk_reason(line), line[:RAW_LIMIT], offset)]
        if not line.isascii():
            bad = _bad_bytes(line)
            if bad is not None:
                return [DeadLetter(bad, line[:RAW_LIMIT], offset)]
        node, rtype, stamp = m.group(1, 2, 3)
        self.records += 1
        key = (node, stamp)
        ev = self._pending.get(key)
        if ev is None:
            return self._start(key, rtype, line, m.end(), offset)
        ev.recs.append((rtype, line, m.end(), offset))
        if rtype == b"EOE" or (ev.eoe and rtype in _COMPLETING):
            return self._try_emit(key, ev, final=False)
        return []

    def flush(self) -> list[Output]:
        """End of input: emit complete pending events, dead-letter truncated ones."""
        out: list[Output] = []
        for key, ev in list(self._pending.items()):
            del self._pending[key]
            out += self._emit(key, ev, final=True) or ()
        return out

    # ------------------------------------------------------------------ internals

    def _start(
        self, key: tuple[bytes | None, bytes], rtype: bytes, line: bytes, body: int, offset: int
    ) -> list[Output]:
        """First record of a stamp: skip, reject as late, or open a pending event."""
        self._seq += 1
        out = self._expire() if self._pending else []
        if rtype in _USER_TYPES:
            self.skipped += 1
            return out
        if key in self._done:
            reason = f"{rtype.decode()} record for serial {_serial(key)} arrived after its event"
            out.append(DeadLetter(reason, line[:RAW_LIMIT], offset))
            return out
        ev = _Pending(self._seq, offset)
        ev.recs.append((rtype, line, body, offset))
        self._pending[key] = ev
        if rtype == b"EOE":
            out += self._try_emit(key, ev, final=False)
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
                break
            del pending[key]
            out += self._emit(key, ev, final=True) or ()
        return out

    def _try_emit(self, key: tuple[bytes | None, bytes], ev: _Pending, final: bool) -> list[Output]:
        """Emit ``ev`` if complete; otherwise mark it as waiting for late records."""
        res = self._emit(key, ev, final)
        if res is None:
            ev.eoe = True
            return []
        del self._pending[key]
        return res

    def _emit(
        self, key: tuple[bytes | None, bytes], ev: _Pending, final: bool
    ) -> list[Output] | None:
        """Build the event's output, or None if incomplete and not ``final``."""
        done = self._done
        done[key] = None
        if len(done) > self._done_cap:
            del done[next(iter(done))]
        try:
            res = self._build(key, ev, final)
        except Exception as e:  # noqa: BLE001 - a parser bug must not stop the stream
            raw = b"\n".join(r[1] for r in ev.recs)[:RAW_LIMIT]
            reason = f"internal error parsing event serial {_serial(key)}: {e!r}"
            return [DeadLetter(reason, raw, ev.offset)]
        if res is None:
            del done[key]
        return res

    def _build(
        self, key: tuple[bytes | None, bytes], ev: _Pending, final: bool
    ) -> list[Output] | None:
        """Group, dedupe and parse the event's records (see module docstring for policy)."""
        out: list[Output] = []
        serial = _serial(key)
        single: dict[bytes, _Rec] = {}
        paths: dict[int | bytes, _Rec] = {}
        execs: list[_Rec] = []
        nrec = 0
        for rec in ev.recs:
            t = rec[0]
            if t == b"PATH":
                paths_key = _path_item(rec)
                prev = paths.get(paths_key)
                if prev is None:
                    paths[paths_key] = rec
                    nrec += 1
                elif prev[1] == rec[1]:
                    out.append(_dup(rec, serial))
                else:
                    why = f"conflicting PATH records for item {_show_item(paths_key)}"
                    return self._event_dead(why, serial, rec)
                continue
            if t == b"EXECVE":
                if any(e[1] == rec[1] for e in execs):
                    out.append(_dup(rec, serial))
                else:
                    execs.append(rec)
                    nrec += 1
                continue
            if t in _PARSED:
                prev = single.get(t)
                if prev is None:
                    single[t] = rec
                elif prev[1] == rec[1]:
                    out.append(_dup(rec, serial))
                    continue
                else:
                    return self._event_dead(f"conflicting {t.decode()} records", serial, rec)
            nrec += 1
        sysrec = single.get(b"SYSCALL")
        if sysrec is None:
            if not final:
                return None
            self.skipped += 1
            return out
        try:
            sc = _parse_syscall(sysrec[1][sysrec[2] :])
        except _Malformed as e:
            return self._event_dead(f"malformed SYSCALL record: {e}", serial, sysrec)
        name, success, exit_, args, items, ppid, pid, auid, uid, gid, euid, comm, exe, k = sc
        plist: list[PathItem] = []
        for rec in paths.values():
            try:
                plist.append(_parse_path(rec[1][rec[2] :]))
            except _Malformed as e:
                return self._event_dead(f"malformed PATH record: {e}", serial, rec)
        if len(plist) > items:
            return self._event_dead(f"{len(plist)} PATH records but items={items}", serial, sysrec)
        missing = None
        if len(plist) < items:
            missing = f"{len(plist)} of {items} PATH records"
        argv = None
        if execs:
            try:
                argv = _parse_execve([r[1][r[2] :] for r in execs])
            except _Malformed as e:
                return self._event_dead(f"malformed EXECVE record: {e}", serial, execs[0])
        if argv is None and success and name in _EXECS and missing is None:
            missing = "incomplete EXECVE arguments" if execs else "no EXECVE record"
        if missing is not None:
            if not final:
                return None
            raw = b"\n".join(r[1] for r in ev.recs)[:RAW_LIMIT]
            out.append(DeadLetter(f"truncated event serial {serial}: {missing}", raw, ev.offset))
            return out
        if len(plist) > 1:
            plist.sort(key=_item_of)
        aux: dict[bytes, object] = {}
        for t, parse in _AUX_PARSERS.items():
            rec = single.get(t)
            if rec is None:
                continue
            try:
                aux[t] = parse(rec[1][rec[2] :])
            except _Malformed as e:
                reason = f"malformed {t.decode()} record (serial {serial}): {e}"
                out.append(DeadLetter(reason, rec[1][:RAW_LIMIT], rec[3]))
        node_b, stamp = key
        ts, _ = _stamp(stamp)
        out.append(
            AuditEvent(
                node=self.default_node if node_b is None else node_b.decode("ascii"),
                serial=serial,
                ts=ts,
                syscall=name,
                success=success,
                exit=exit_,
                args=args,
                pid=pid,
                ppid=ppid,
                uid=uid,
                euid=euid,
                gid=gid,
                auid=auid,
                comm=comm,
                exe=exe,
                key=k,
                cwd=aux.get(b"CWD"),  # type: ignore[arg-type]
                paths=plist,
                argv=argv,
                proctitle=aux.get(b"PROCTITLE"),  # type: ignore[arg-type]
                sockaddr=aux.get(b"SOCKADDR"),  # type: ignore[arg-type]
                fd_pair=aux.get(b"FD_PAIR"),  # type: ignore[arg-type]
                records=nrec,
                offset=ev.offset,
            )
        )
        return out

    def _event_dead(self, why: str, serial: int, rec: _Rec) -> list[Output]:
        """The whole event as one DeadLetter; raw is the offending record."""
        return [DeadLetter(f"event serial {serial} dropped: {why}", rec[1][:RAW_LIMIT], rec[3])]


def _serial(key: tuple[bytes | None, bytes]) -> int:
    """Serial number of an event key."""
    return int(key[1].rpartition(b":")[2])


def _dup(rec: _Rec, serial: int) -> DeadLetter:
    """DeadLetter for a byte-identical repeat of a record."""
    return DeadLetter(
        f"duplicate {rec[0].decode()} record in event serial {serial}", rec[1][:RAW_LIMIT], rec[3]
    )


def _path_item(rec: _Rec) -> int | bytes:
    """PATH ``item=`` number for grouping; the raw body if it has none (fails later)."""
    body = rec[1][rec[2] :].lstrip(b" ")
    if body.startswith(b"item="):
        j = body.find(b" ")
        v = body[5:] if j < 0 else body[5:j]
        if v.isdigit():
            return int(v)
    return body


def _show_item(k: int | bytes) -> str:
    """Item key for reasons."""
    return str(k) if isinstance(k, int) else _show(k)


def _item_of(p: PathItem) -> int:
    """Sort key for PATH records."""
    return p.item


def iter_file(path: str, default_node: str | None = None) -> Iterator[Output]:
    """Parse a whole audit.log, yielding events and dead letters; offsets are byte offsets.

    A last line without a newline was cut off while being written and is dead-lettered.
    """
    parser = AuditParser(default_node)
    feed = parser.feed
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            if line[-1:] != b"\n":
                reason = "last line cut off (no trailing newline)"
                yield DeadLetter(reason, line[:RAW_LIMIT], offset)
                break
            out = feed(line, offset)
            if out:
                yield from out
            offset += len(line)
    yield from parser.flush()
