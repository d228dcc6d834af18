"""`ursprung run` starts the command before it imports the recorder (`collectors.trace.
launch`), and a command so started runs to its end even when recording fails."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ursprung_graph.cli.group import cli
from ursprung_graph.store.base import StoreError

#: What `ursprung run` imports while the command runs, not before it starts.
AFTER_START = ("ursprung_graph.pipeline.record", "ursprung_graph.collectors.trace.runner",
               "ursprung_graph.collectors.trace.convert", "ursprung_graph.store.falkordb",
               "ursprung_graph.ingest.upserts", "ursprung_graph.query.runs",
               "ursprung_graph.content")


def test_the_command_starts_before_the_recorder_is_imported() -> None:
    probe = ("import sys, ursprung_graph.cli.run, ursprung_graph.collectors.trace.launch\n"
             f"print([m for m in {AFTER_START!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout
    only_stdlib = ("import sys, ursprung_graph.collectors.trace.launch\n"
                   "print(sorted(m for m in sys.modules if m.startswith('ursprung_graph.')))")
    out = subprocess.run([sys.executable, "-c", only_stdlib], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == ("['ursprung_graph.collectors', "
                                  "'ursprung_graph.collectors.trace', "
                                  "'ursprung_graph.collectors.trace.launch']"), out.stdout


def test_a_started_command_ends_even_when_recording_fails(
        settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ursprung_graph.pipeline.record as record

    def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("the store went away")

    monkeypatch.setattr(record, "record_run", broken)
    done = tmp_path / "done"
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["run", "--tracer", "strace", "--", "sh", "-c",
                                       f"sleep 0.5; touch {done}"])
    assert result.exit_code == StoreError.exit_code, result.output
    assert "the store went away" in result.output and "Traceback" not in result.output
    assert done.exists() and time.monotonic() - started >= 0.5


# ------------------------------------------------------------------ started before the CLI

#: Argument lists `ursprung run` may be given, each parsed by ``early.parse`` and by click,
#: with whether the early start may take them (else they go the ordinary way).
SHAPES = [
    (["run", "--", "sh", "-c", "true"], True),
    (["run", "sh", "-c", "true"], True),
    (["run", "--pipeline", "p", "--param", "a=1", "--param=b=2", "--", "python", "x"], True),
    (["run", "--tracer", "strace", "-v", "--host=h", "--id-file", "run.id", "true", "-x"],
     True),
    (["run", "--verbose", "--pipeline", "-odd", "--", "--weird-name"], True),
    (["run", "--tracer=auto", "--", "true", "--", "x"], True),
    (["run", "--pipeline", "--", "true"], True),  # "--" is the pipeline's name
    (["run", "--id-file=", "--", "true"], True),
    (["run", "", "x"], True),  # parsed alike; no such program, so not started early
    (["run", "--", "--", "x"], True),
    (["run", "--tracer", "ebpf", "--tracer", "strace", "true"], True),  # the last one wins
    (["run", "--tracer", "strace", "--tracer", "ebpf", "true"], False),
    (["run", "--pipeline", "p"], False),  # no command
    (["run", "--rules", "r.rules", "--", "true"], False),
    (["run", "--help"], False),
    (["run", "--tracer", "ebpf", "--", "true"], False),
    (["run", "-vv", "--", "true"], False),
    (["run", "-v=x", "--", "true"], False),
    (["run", "-", "true"], False),
    (["run", "--pipe", "p", "--", "true"], False),
    (["run", "--param", "novalue", "--", "true"], False),
    (["run", "--param", "=1", "--", "true"], False),
    (["run", "--verbose=yes", "--", "true"], False),
    (["run", "--host"], False),
    (["runs", "list"], False),
    ([], False),
]


@pytest.fixture(autouse=True)
def _nothing_started_is_left() -> Iterator[None]:
    from ursprung_graph.cli import early

    yield
    early.finish()  # a command a failed test started early ends with it


def _trace_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "ursprung-trace-*")))


def test_the_early_parse_is_clicks_where_it_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ursprung_graph.cli import early
    from ursprung_graph.cli.run import run_cmd

    monkeypatch.chdir(tmp_path)  # --id-file run.id: click looks at it
    options = {name: not p.is_flag for p in run_cmd.params if isinstance(p, click.Option)
               for name in p.opts}
    assert {name: options.get(name) for name in early.OPTIONS} == early.OPTIONS
    for args, expected in SHAPES:
        parsed = early.parse(args)
        assert (parsed is not None) == expected, args
        if parsed is None:
            continue
        ctx = run_cmd.make_context("run", list(args[1:]))
        assert (parsed.command, parsed.tracer, parsed.id_file) == (
            ctx.params["command"], ctx.params["tracer"], ctx.params["id_file"]), args


def test_only_the_default_configuration_starts_early(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ursprung_graph.cli.early import defaults_only

    monkeypatch.chdir(tmp_path)
    assert defaults_only({"URSPRUNG_HOME": "/h", "URSPRUNG_GRAPH": "g", "PATH": "/bin",
                          "URSPRUNG_STORE": "", "URSPRUNG_PARAM_ENV": "SEED"})
    for name in ("URSPRUNG_STORE", "URSPRUNG_RUNS_HASH_LIMIT", "URSPRUNG_CONFIG",
                 "URSPRUNG_FUTURE_THING"):
        assert not defaults_only({name: "x"}), name
    (tmp_path / "ursprung.toml").write_text("[runs]\nhash_limit = 1\n")
    assert not defaults_only({})


def test_what_could_stop_a_run_leaves_it_to_the_ordinary_way(
        settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ursprung_graph.cli.early import RunArgs, strace_to_start
    from ursprung_graph.collectors.trace.launch import check_tracing, strace_path

    monkeypatch.chdir(tmp_path)
    check_tracing(strace_path(), cache_dir=settings.home / "cache")
    env = {"PATH": os.environ["PATH"], "URSPRUNG_HOME": str(settings.home)}
    plain = RunArgs(("true",), "strace", None)
    assert strace_to_start(plain, env) == strace_path()
    (tmp_path / "a-dir").mkdir()
    refused = {
        "a directory as --id-file": (RunArgs(("true",), "strace", "a-dir"), env),
        "no such program": (RunArgs(("no-such-program-here",), "strace", None), env),
        "shell completion": (plain, {**env, "_URSPRUNG_COMPLETE": "bash_complete"}),
        "no store running": (plain, {**env, "URSPRUNG_HOME": str(tmp_path / "h")}),
        "no strace on PATH": (plain, {**env, "PATH": str(tmp_path)}),
    }
    for why, (run, given) in refused.items():
        assert strace_to_start(run, given) is None, why
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # root: --tracer auto may choose eBPF
    assert strace_to_start(RunArgs(("true",), "auto", None), env) is None
    assert strace_to_start(plain, env) == strace_path()
    monkeypatch.undo()
    (settings.home / "cache" / "strace-traces").unlink()  # no probe remembered
    assert strace_to_start(plain, env) is None


def _launch_probe(*args: str) -> list[str]:
    """`ursprung run ARGS` in a fresh interpreter, as the `ursprung` program; what it had
    imported when it started the command, and its output."""
    probe = (
        "import sys\n"
        "import ursprung_graph.collectors.trace.launch as launch\n"
        "import ursprung_graph.cli.early as early\n"
        "real = launch.launch\n"
        "def spy(*a, **k):\n"
        "    print('LAUNCH', 'click' in sys.modules, 'msgspec' in sys.modules, "
        "file=sys.stderr)\n"
        "    return real(*a, **k)\n"
        "launch.launch = early.launch = spy\n"
        "from ursprung_graph.cli import main\n"
        "main()\n")
    return [sys.executable, "-c", probe, "run", *args]


def test_a_plain_run_starts_its_command_before_click_and_the_configuration(
        settings, store, tmp_path: Path) -> None:
    from tests.runs.helpers import cli_env

    env = cli_env(settings)
    env.pop("URSPRUNG_CONFIG", None)
    for name in [n for n in env if n.startswith("URSPRUNG_")]:
        if name not in ("URSPRUNG_HOME", "URSPRUNG_GRAPH"):
            env.pop(name)
    marker = tmp_path / "ran"
    args = ["--tracer", "strace", "--pipeline", "early", "--", "sh", "-c",
            f"echo out; touch {marker}; exit 3"]
    (settings.home / "cache" / "strace-traces").unlink(missing_ok=True)
    seen = []
    for _ in range(2):  # the first run probes strace (the ordinary way), the second need not
        marker.unlink(missing_ok=True)
        done = subprocess.run(_launch_probe(*args), env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 3 and done.stdout == "out\n" and marker.exists(), done
        seen.append([line for line in done.stderr.splitlines() if line.startswith("LAUNCH")])
    assert seen == [["LAUNCH True True"], ["LAUNCH False False"]]
    runs = store.read("MATCH (r:PipelineRun {pipeline: 'early'}) "
                      "RETURN r.exit_code AS code, r.end IS NOT NULL AS ended")
    assert runs == [{"code": 3, "ended": True}] * 2
    # with a configuration file: the ordinary way
    (tmp_path / "ursprung.toml").write_text("")
    done = subprocess.run(_launch_probe(*args), env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and "LAUNCH True True" in done.stderr, done


def test_a_command_started_early_that_is_not_the_one_parsed_is_an_error(
        settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ursprung_graph.cli import early
    from ursprung_graph.collectors.trace.launch import check_tracing, strace_path
    from ursprung_graph.errors import UrsprungError

    monkeypatch.chdir(tmp_path)
    env = {"PATH": os.environ["PATH"], "URSPRUNG_HOME": str(settings.home)}
    check_tracing(strace_path(), cache_dir=settings.home / "cache")
    marker = tmp_path / "ran"
    before = _trace_dirs()
    assert early.start(["run", "--tracer", "strace", "sh", "-c", f"touch {marker}"], env)
    assert _trace_dirs() != before  # its trace is being written
    with pytest.raises(UrsprungError, match="started"):
        early.take(["sh", "-c", "something else"])
    assert marker.exists() and _trace_dirs() == before  # it ran to its end; nothing is left
    assert early.take(["sh", "-c", f"touch {marker}"]) is None


def test_a_command_started_early_ends_when_a_check_fails_after_all(
        settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ursprung_graph.cli import early
    from ursprung_graph.collectors.trace.launch import check_tracing, strace_path

    monkeypatch.chdir(tmp_path)
    check_tracing(strace_path(), cache_dir=settings.home / "cache")
    marker = tmp_path / "ran"
    command = ["sh", "-c", f"sleep 0.3; touch {marker}"]
    before = _trace_dirs()
    assert early.start(["run", "--tracer", "strace", *command],
                       {"PATH": os.environ["PATH"], "URSPRUNG_HOME": str(settings.home)})
    monkeypatch.setenv("URSPRUNG_RUNS_HASH_LIMIT", "lots")  # appears meanwhile
    result = CliRunner().invoke(cli, ["run", "--tracer", "strace", *command])
    assert result.exit_code == 1 and "runs.hash_limit" in result.output, result.output
    assert "Traceback" not in result.output
    assert marker.exists() and _trace_dirs() == before
