"""`ursprung run`: run a command traced, and record it as a pipeline run."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from ..collectors.linux import default_host
from ..collectors.trace.launch import (
    Launched,
    TraceUnavailable,
    check_tracing,
    forget_tracing,
    launch,
    strace_path,
    tracing_known,
)
from ..config import Settings
from ..store import GraphStore, StoreError, embedded_server, open_store
from .common import config_or_fail, printable, rule_engine, rules_option
from .early import program_found
from .early import take as take_early

if TYPE_CHECKING:
    from ..pipeline.record import RecordedRun

#: The recorder allocates hundreds of thousands of short-lived objects (events, rows), few
#: of them in cycles: with Python's default thresholds the cyclic collector ran about 150
#: times during a 15,000-event run (56-80 ms of CPU beside the command); collecting every
#: 50,000 allocations, with the modules' own objects frozen out of it, once (16-27 ms).
GC_THRESHOLDS = (50_000, 20, 100)


def _param(values: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for value in values:
        name, sep, v = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r} is not NAME=VALUE", param_hint="--param")
        params[name] = v
    return params


@click.command("run", context_settings={"ignore_unknown_options": True,
                                        "allow_interspersed_args": False})
@click.option("--pipeline", default=None,
              help="Pipeline name [default: the script's or program's name].")
@click.option("--param", "param_values", multiple=True, metavar="NAME=VALUE",
              help="A parameter of the run (repeatable); command-line parameters of CMD "
                   "(--k v, --k=v, k=v) are recorded anyway.")
@click.option("--host", default=None, help="Host name to record [default: this machine's].")
@click.option("--id-file", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the run's id to this file.")
@click.option("--tracer", type=click.Choice(["auto", "ebpf", "strace"]), default="auto",
              show_default=True,
              help="ebpf: the kernel traces (root; the compiled libbpf loader, else "
                   "bpftrace); strace: ptrace, no root needed; auto: eBPF when root and its "
                   "program loads, else strace.")
@click.option("-v", "--verbose", is_flag=True,
              help="Say on stderr what was recorded (otherwise ursprung adds no output).")
@rules_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_cmd(pipeline: str | None, param_values: tuple[str, ...], host: str | None,
            id_file: str | None, tracer: str, verbose: bool, rules: tuple[str, ...],
            command: tuple[str, ...]) -> None:
    """Run CMD with all its descendants traced (eBPF as root, else strace) and record it as
    a pipeline run: ursprung run [OPTIONS] -- CMD [ARGS]...

    CMD's stdin, stdout, stderr and exit status pass through unchanged. If tracing cannot
    work here (no strace, ptrace forbidden; for --tracer ebpf: not root, no bpftrace), CMD
    is not run at all.
    """
    gc.set_threshold(*GC_THRESHOLDS)
    launched = take_early(command)  # running already if nothing could stop it (early.py)
    try:
        recorded = _record(command, launched, pipeline=pipeline, params=_param(param_values),
                           host=host, tracer=tracer, rules=rules)
    except BaseException:
        _let_finish(launched)
        raise
    if recorded.error:
        click.echo(f"ursprung run: {printable(recorded.error)}", err=True)
    if id_file:
        with open(id_file, "w", encoding="utf-8") as fh:
            fh.write(recorded.id + "\n")
    if verbose:
        t = recorded.trace
        click.echo(f"ursprung run: recorded run {recorded.id}: {len(t.members)} processes, "
                   f"{t.events} events, {recorded.versions} file versions "
                   f"({recorded.hashed_early} hashed and {recorded.stored_early} stored while "
                   f"it ran, {recorded.stored} contents kept), "
                   f"exit status {t.returncode}; traced by {t.tracer}; all stored "
                   f"{recorded.after / 1e9:.2f} s after the command ended", err=True)
    _exit(recorded.returncode)


def _record(command: tuple[str, ...], launched: Launched | None, *, pipeline: str | None,
            params: dict[str, str], host: str | None, tracer: str,
            rules: tuple[str, ...]) -> RecordedRun:
    """Check that the command may run, start it (unless ``launched``: started already, by
    the same checks), and record it."""
    loaded = config_or_fail(None)
    settings, config = loaded.settings, loaded.runs
    tracer = _tracer(tracer)
    strace = None
    if tracer == "strace":
        try:
            strace = strace_path(os.environ.get("PATH"))
        except TraceUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
    if not program_found(command[0], os.environ.get("PATH")):
        click.echo(f"ursprung run: {command[0]}: command not found", err=True)
        sys.exit(127)
    opened: list[GraphStore] = []  # closed here, whatever happens
    try:
        # a command started already is traced already: only the store is checked then
        store = _checked(settings, None if launched else strace, opened,
                         started=launched is not None)
        with rule_engine(rules, store, loaded) as engine, stdout_capture(engine) as stdout:
            if launched is None and strace:
                # strace and the command start now; the recorder is imported while it runs
                launched = launch(strace, command, stdout=stdout)
            try:
                from ..pipeline.record import record_run

                gc.freeze()  # what the imports made stays: no collection looks at it
                return record_run(store, list(command), host=host or default_host(),
                                  pipeline=pipeline, params=params, config=config,
                                  content_root=settings.home / "content",
                                  cache_dir=settings.home / "cache", check=False,
                                  tracer=tracer,
                                  observe=None if engine is None else engine.observe,
                                  stdout=stdout, launched=launched)
            except BaseException:
                _let_finish(launched)
                raise
    except TraceUnavailable as exc:
        forget_tracing(settings.home / "cache")  # the next run probes again
        raise click.ClickException(str(exc)) from exc
    finally:
        for s in opened:
            s.close()


def _let_finish(launched: Launched | None) -> None:
    """A command started before recording failed: it runs to its end all the same (the
    error is reported then), and nothing of it is left behind."""
    if launched is not None:
        launched.finish()


def _tracer(mode: str) -> str:
    """The tracer for ``--tracer``: ``auto`` is eBPF when it can work here (root, bpftrace,
    tracefs; whether its program loads is found out before CMD starts, falling back to
    strace), else strace."""
    if mode != "auto":
        return mode
    from ..collectors.ebpf.capture import EbpfUnavailable, check_ebpf

    try:
        check_ebpf()
    except EbpfUnavailable:
        return "strace"
    return "auto"


@contextlib.contextmanager
def stdout_capture(engine):
    """The command's stdout for CAPTURESOUT rules (a pipe copied to ours), else None."""
    if engine is None or not engine.wants_stdout:
        yield None
        return
    from ..rules.capture import StdoutTee

    sys.stdout.flush()
    tee = StdoutTee(engine.capture_line, sys.stdout.fileno())
    try:
        yield tee.fd
    finally:
        tee.close()


def _checked(settings: Settings, strace: str | None, opened: list[GraphStore], *,
             started: bool = False) -> Callable[[], GraphStore] | GraphStore:
    """Check, before anything runs, that tracing works here and that the store is there.

    Both are checked at the same time. The embedded store is checked by its server's
    answer (starting it if needed) and connected to once the command runs (connecting and
    reading its schema marker cost the command nothing then). A store given by URL is
    connected to now, so that a wrong address stops us before the command runs. A tracing
    problem is reported first. ``started``: the command runs already (cli/early.py), and
    a failure says so."""

    def connect() -> GraphStore:
        store = open_store(settings, quiet=True)
        opened.append(store)
        store.ensure_schema()
        return store

    def check_store() -> Callable[[], GraphStore] | GraphStore:
        if settings.store_url:
            return connect()
        server = embedded_server(settings)
        if not server.is_running():
            server.start()
        return connect

    cache = settings.home / "cache"
    if strace is not None and tracing_known(strace, cache):
        strace = None  # a probe passed, and nothing it depends on changed
    store: Callable[[], GraphStore] | GraphStore | None = None
    failure: StoreError | None = None
    if strace is None:
        try:
            store = check_store()
        except StoreError as exc:
            failure = exc
    else:
        from concurrent.futures import ThreadPoolExecutor  # only to probe meanwhile

        with ThreadPoolExecutor(max_workers=1) as pool:
            checking = pool.submit(check_tracing, strace, cache_dir=cache)
            try:
                store = check_store()
            except StoreError as exc:
                failure = exc
            try:
                checking.result()
            except TraceUnavailable as exc:
                raise click.ClickException(str(exc)) from exc
    if failure is not None or store is None:
        outcome = "the command ran unrecorded" if started else "the command was not run"
        raise click.ClickException(f"{failure}; {outcome}") from failure
    return store


def _exit(code: int) -> None:
    """Leave with the command's status. Everything is stored and closed by now, so the
    program skips the interpreter's teardown (tearing down the modules of the store
    client and the rest takes 50-100 ms, all of it after the command has ended). Where the
    streams are not real files (click's test runner), it exits the ordinary way."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout.fileno()
        sys.stderr.fileno()
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        sys.exit(code)
    os._exit(code)
