"""Abstraction: a vertex's label, free of instance detail, by ordered rewrite rules.

What differs between replicas for no reason goes (pids, times, event ids, inodes, hosts and
containers are never part of a label; ephemeral ports, cluster-internal and loopback
addresses, temporary and random path parts, ``/proc/<pid>``, hashes, numbers, run ids and
parameter values are rewritten); what matters stays: the executable, the shape of the
arguments, the shape of paths and external remote addresses.

Rules are TOML (``[[rule]]`` tables, applied in file order, each to one field)::

    include_defaults = true     # the user's rules run before the defaults below
    internal = ["10.77.0.0/16"] # cluster-internal networks (default: the private ranges)
    max_args = 12               # arguments of a command line kept in its label

    [[rule]]
    field = "path"              # path (files, programs, path arguments, unix sockets),
                                # arg (other arguments), address, port
    match = '^/srv/cache/[^/]+' # a Python regex (re.sub), or for address: cidr = [...]
    replace = '/srv/cache/<entry>'

An argument that is an IP address is rewritten by the address rules. A run's own context
comes first: its working directory becomes ``<cwd>``, its id ``<run>``,
the values of its parameters ``<param>`` (`Context`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Literal

import msgspec

from .pgraph import ENDPOINT, FILE, PIPE, PROCESS, Vertex

DEFAULT_RULES_TOML = r"""
# Default abstraction rules (ursprung_graph/winnower/abstraction.py). Order matters.
internal = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10",
            "100.64.0.0/10"]
max_args = 12

[[rule]]
field = "path"
match = '^/proc/(\d+|self|thread-self)(/task/\d+)?(?=/|$)'
replace = '/proc/<pid>'

[[rule]]
field = "path"
match = '^/dev/pts/\d+$'
replace = '/dev/pts/<n>'

[[rule]]
field = "path"
match = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}'
replace = '<uuid>'

[[rule]]
field = "path"
match = '(?<![0-9a-zA-Z])[0-9a-fA-F]{12,}(?![0-9a-zA-Z])'
replace = '<hex>'

[[rule]]
field = "path"
match = '^/(tmp|var/tmp|dev/shm)/[^/]+'
replace = '/\1/<tmp>'

[[rule]]
field = "path"
match = '^/run/user/\d+'
replace = '/run/user/<uid>'

[[rule]]
field = "path"
match = '(?<=/)(tmp|pymp-|ssh-|systemd-private-)[A-Za-z0-9_.-]{5,}(?=/|$)'
replace = '<tmp>'

[[rule]]
field = "path"
match = '\d+'
replace = '<n>'

[[rule]]
field = "arg"
match = '^(--?[A-Za-z][A-Za-z0-9_-]*=)?[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$'
replace = '\1<num>'

[[rule]]
field = "arg"
match = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}'
replace = '<uuid>'

[[rule]]
field = "arg"
match = '(?<![0-9a-zA-Z])[0-9a-fA-F]{12,}(?![0-9a-zA-Z])'
replace = '<hex>'

[[rule]]
field = "address"
loopback = true
replace = '<local>'

[[rule]]
field = "address"
internal = true
replace = '<internal>'

[[rule]]
field = "port"
match = '^(3[2-9]\d{3}|[4-6]\d{4})$'
replace = '<eph>'
"""

Field = Literal["path", "arg", "address", "port"]

#: Labels an abstractor remembers at most (then it starts over).
LABEL_CACHE = 200_000


class AbstractionError(ValueError):
    """A rules file that cannot be used, with the reason."""


class Rule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    field: Field
    replace: str
    match: str | None = None
    cidr: list[str] = msgspec.field(default_factory=list)
    loopback: bool = False  # address rules: loopback and unspecified addresses
    internal: bool = False  # address rules: the file's ``internal`` networks


class RulesFile(msgspec.Struct, forbid_unknown_fields=True):
    rule: list[Rule] = msgspec.field(default_factory=list)
    include_defaults: bool = True
    internal: list[str] | None = None
    max_args: int | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """Instance detail of one run: its working directory, id and parameter values."""

    cwd: str | None = None
    run_id: str | None = None
    params: tuple[str, ...] = ()


_NONE = Context()


class _Compiled:
    __slots__ = ("field", "regex", "replace", "networks", "loopback")

    def __init__(self, rule: Rule, internal: list[str]) -> None:
        self.field = rule.field
        self.replace = rule.replace
        try:
            self.regex = re.compile(rule.match) if rule.match is not None else None
            nets = [*rule.cidr, *(internal if rule.internal else [])]
            self.networks = tuple(ip_network(n, strict=False) for n in nets)
        except (re.error, ValueError) as exc:
            raise AbstractionError(f"rule {rule.match or rule.cidr}: {exc}") from exc
        self.loopback = rule.loopback
        if self.regex is None and not self.networks and not self.loopback:
            raise AbstractionError(f"a {rule.field} rule needs match, cidr, loopback or "
                                   "internal")

    def apply(self, value: str) -> str:
        if self.regex is not None:
            return self.regex.sub(self.replace, value)
        try:
            ip = ip_address(value)
        except ValueError:
            return value
        if self.loopback and (ip.is_loopback or ip.is_unspecified):
            return self.replace
        if any(ip in n for n in self.networks if n.version == ip.version):
            return self.replace
        return value


def _looks_like_address(arg: str) -> bool:
    if not arg or not (arg[0].isdigit() or ":" in arg):
        return False
    try:
        ip_address(arg)
    except ValueError:
        return False
    return True


class Abstractor:
    """Labels of vertices under one rule set."""

    def __init__(self, rules: RulesFile | None = None) -> None:
        defaults = msgspec.convert(tomllib.loads(DEFAULT_RULES_TOML), RulesFile)
        rules = rules or RulesFile()
        ordered = list(rules.rule) + (list(defaults.rule) if rules.include_defaults else [])
        internal = rules.internal if rules.internal is not None else defaults.internal or []
        self.max_args = rules.max_args if rules.max_args is not None else defaults.max_args or 12
        self._rules: dict[str, list[_Compiled]] = {"path": [], "arg": [], "address": [],
                                                   "port": []}
        for r in ordered:
            self._rules[r.field].append(_Compiled(r, internal))
        self._labels: dict[tuple[object, ...], str] = {}

    def _run(self, field: str, value: str) -> str:
        for rule in self._rules[field]:
            value = rule.apply(value)
        return value

    def path(self, path: str, ctx: Context = _NONE) -> str:
        if ctx.cwd:
            root = ctx.cwd.rstrip("/")
            if path == root or path.startswith(root + "/"):
                return "<cwd>" + self._run("path", path[len(root):]) if path != root else "<cwd>"
        return self._run("path", path)

    def arg(self, arg: str, ctx: Context = _NONE) -> str:
        if ctx.run_id and ctx.run_id in arg:
            arg = arg.replace(ctx.run_id, "<run>")
        name, eq, value = arg.partition("=")
        if ctx.params and (arg in ctx.params or (eq and value in ctx.params)):
            return f"{name}=<param>" if eq and value in ctx.params else "<param>"
        if arg.startswith("/"):
            return self.path(arg, ctx)
        if _looks_like_address(arg):
            return self._run("address", arg)
        return self._run("arg", arg)

    def label(self, v: Vertex, ctx: Context = _NONE) -> str:
        """The label of ``v``: its kind and the abstracted fields that identify it
        (memoized: replicated graphs repeat the same programs, files and sockets)."""
        key = (v.kind, v.exe, tuple(v.argv), v.path, v.family, v.address, v.port, ctx)
        label = self._labels.get(key)
        if label is None:
            if len(self._labels) >= LABEL_CACHE:
                self._labels.clear()
            label = self._labels[key] = self._label(v, ctx)
        return label

    def _label(self, v: Vertex, ctx: Context) -> str:
        if v.kind == PROCESS:
            exe = self.path(v.exe, ctx) if v.exe else "?"
            args = [self.arg(a, ctx) for a in v.argv[1:1 + self.max_args]]
            if len(v.argv) > 1 + self.max_args:
                args.append("...")
            name = v.argv[0].rsplit("/", 1)[-1] if v.argv else ""
            return " ".join(["proc", exe, self._run("arg", name), *args]).rstrip()
        if v.kind == FILE:
            return "file " + self.path(v.path or "", ctx)
        if v.kind == ENDPOINT:
            if v.family == "unix":
                return "unix " + self.path(v.address or "", ctx)
            port = self._run("port", str(v.port)) if v.port is not None else "-"
            return f"{v.family} {self._run('address', v.address or '')}:{port}"
        if v.kind == PIPE:
            return "pipe"
        return v.kind


def load_rules(path: str | None) -> Abstractor:
    """The abstractor of a TOML rules file (None: the defaults), or AbstractionError."""
    if path is None:
        return Abstractor()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        return Abstractor(msgspec.convert(data, RulesFile))
    except OSError as exc:
        raise AbstractionError(f"{path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise AbstractionError(f"{path}: {exc}") from exc
