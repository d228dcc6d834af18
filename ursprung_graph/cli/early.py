"""`ursprung run`'s command, started before the command line is imported.

Importing click, the configuration's parser (msgspec) and the rest takes ~0.1 s, all of it
before the command could start, and strace alone pays none of it. So :func:`start` looks
at the arguments and the environment with the standard library alone and starts the
command at once when nothing that `ursprung run` checks first could stop it:

* the arguments are ``run``, options of the plain forms below, then the command;
* the configuration is the defaults: no configuration file, no ``URSPRUNG_`` variable but
  the home, the graph and ``URSPRUNG_PARAM_ENV`` (nothing to validate, no store by URL);
* the tracer is strace (``--tracer strace``, or ``auto`` without root);
* strace is on PATH and a probe of it passed before (:func:`~ursprung_graph.collectors.
  trace.launch.tracing_known`), the command's program exists, the embedded store runs;
* no rules (they could capture the command's stdout), no shell completion asked of click.

Anything else (another option or form, ``--help``, a configuration file, root...) goes the
ordinary way, where the same checks say what is wrong before the command runs. `ursprung
run` then checks everything again as it always does, and follows the command started here
(:func:`take`) instead of starting it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..collectors.trace.launch import (
    Launched,
    TraceUnavailable,
    launch,
    strace_path,
    tracing_known,
)
from ..errors import UrsprungError
from ..locations import ENV_PREFIX, config_path, home_dir
from ..store.embedded import EmbeddedServer

#: `ursprung run`'s options as this module knows them: name -> whether it takes a value.
#: Any other option (``--rules``, ``--help``, an abbreviation) takes the ordinary way.
OPTIONS = {"--pipeline": True, "--param": True, "--host": True, "--id-file": True,
           "--tracer": True, "-v": False, "--verbose": False}
#: The ``URSPRUNG_`` variables the defaults may come with (nothing in them can be invalid).
HARMLESS_ENV = frozenset({"HOME", "GRAPH", "PARAM_ENV"})


@dataclass(frozen=True, slots=True)
class RunArgs:
    """The options of an `ursprung run` that this module may start early."""

    command: tuple[str, ...]
    tracer: str
    id_file: str | None


def parse(args: Sequence[str]) -> RunArgs | None:
    """``args`` (after the program's name) as an `ursprung run` of plain options, or None:
    what click would parse the same way, and nothing else."""
    if not args or args[0] != "run":
        return None
    tracer, id_file = "auto", None
    i = 1
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-"):
            break  # the command (options end at its program, as in click)
        name, eq, value = arg.partition("=")
        takes = OPTIONS.get(name)
        if takes is None or (eq and not takes):
            return None
        if takes and not eq:
            if i + 1 >= len(args):
                return None
            i += 1
            value = args[i]
        if name == "--param" and not _is_param(value):
            return None
        if name == "--tracer":
            tracer = value
        elif name == "--id-file":
            id_file = value
        i += 1
    command = tuple(args[i:])
    if not command or tracer not in ("auto", "strace"):
        return None
    return RunArgs(command, tracer, id_file)


def _is_param(value: str) -> bool:
    name, sep, _ = value.partition("=")
    return bool(sep and name)


def defaults_only(env: Mapping[str, str]) -> bool:
    """Whether the configuration is the defaults (and the harmless variables)."""
    if config_path(None, env) is not None:
        return False
    return all(not name.startswith(ENV_PREFIX) or not value
               or name[len(ENV_PREFIX):] in HARMLESS_ENV for name, value in env.items())


def strace_to_start(run: RunArgs, env: Mapping[str, str]) -> str | None:
    """The strace to start ``run``'s command under now, or None if it must wait for the
    ordinary checks."""
    if run.tracer == "auto" and os.geteuid() == 0:
        return None  # eBPF may be chosen: its checks come first
    if any(name.startswith("_") and name.endswith("_COMPLETE") for name in env):
        return None  # click's shell completion: nothing is to run
    if not defaults_only(env) or not _writable(run.id_file):
        return None
    if not program_found(run.command[0], env.get("PATH")):
        return None
    try:
        strace = strace_path(env.get("PATH"))
    except TraceUnavailable:
        return None
    home = home_dir(env.get(ENV_PREFIX + "HOME") or None)
    if not tracing_known(strace, home / "cache"):
        return None
    if not EmbeddedServer.of_home(home).is_running():
        return None
    return strace


def program_found(program: str, path: str | None) -> bool:
    """Whether the command's program can be run: a path, or a name found on ``path``."""
    return "/" in program or shutil.which(program, path=path) is not None


def _writable(path: str | None) -> bool:
    """What ``--id-file`` asks of a file that exists before anything runs (click's check)."""
    if path is None or not os.path.exists(path):
        return True
    return not os.path.isdir(path) and os.access(path, os.R_OK | os.W_OK)


_started: tuple[tuple[str, ...], Launched] | None = None


def start(args: Sequence[str], env: Mapping[str, str] | None = None) -> bool:
    """Start the command of ``args`` (an `ursprung run`) under strace now if nothing could
    stop it; True if it was started."""
    global _started
    env = os.environ if env is None else env
    run = parse(args)
    strace = None if run is None else strace_to_start(run, env)
    if run is None or strace is None:
        return False
    try:
        _started = (run.command, launch(strace, run.command))
    except (TraceUnavailable, OSError):
        return False  # the ordinary way starts it again and says why it cannot
    return True


def finish() -> None:
    """A command :func:`start` started that was never taken (the program ended before
    `ursprung run` could follow it): it runs to its end, and nothing of it is left."""
    global _started
    if _started is not None:
        launched = _started[1]
        _started = None
        launched.finish()


def take(command: Sequence[str]) -> Launched | None:
    """The command started by :func:`start` (once). One that is not ``command`` (the
    parsers disagree: a bug) runs to its end and is reported."""
    global _started
    if _started is None:
        return None
    started, launched = _started
    _started = None
    if started != tuple(command):
        launched.finish()
        raise UrsprungError(f"ursprung run started {list(started)} but was asked to run "
                           f"{list(command)}")
    return launched
