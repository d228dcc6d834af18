"""`ursprung run` starts the command before it imports the recorder (`collectors.trace.
launch`), and a command so started runs to its end even when recording fails."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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

#: Argument lists `ursprung run` may be given, each parsed by ``early.parse`` and by click.
SHAPES = [
    ["run", "--", "sh", "-c", "true"],
    ["run", "sh", "-c", "true"],
    ["run", "--pipeline", "p", "--param", "a=1", "--param=b=2", "--", "python", "x.py"],
    ["run", "--tracer", "strace", "-v", "--host=h", "--id-file", "/tmp/id", "true", "--x"],
    ["run", "--verbose", "--pipeline", "-odd", "--", "--weird-name"],
    ["run", "--tracer=auto", "--", "true", "--", "x"],
    ["run", "--pipeline", "p"],  # no command
    ["run", "--rules", "r.rules", "--", "true"],
    ["run", "--help"],
    ["run", "--tracer", "ebpf", "--", "true"],
    ["run", "-vv", "--", "true"],
    ["run", "--pipe", "p", "--", "true"],
    ["run", "--param", "novalue", "--", "true"],
    ["run", "--param", "=1", "--", "true"],
    ["run", "--verbose=yes", "--", "true"],
    ["run", "--host"],
    ["runs", "list"],
    [],
]
#: Of them, the ones the early start must leave to the ordinary way.
NOT_EARLY = {6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}


def test_the_early_parse_is_clicks_where_it_answers() -> None:
    from ursprung_graph.cli import early
    from ursprung_graph.cli.run import run_cmd

    options = {name: not p.is_flag for p in run_cmd.params if isinstance(p, click.Option)
               for name in p.opts}
    assert {name: options.get(name) for name in early.OPTIONS} == early.OPTIONS
    for i, args in enumerate(SHAPES):
        parsed = early.parse(args)
        assert (parsed is None) == (i in NOT_EARLY), args
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
    assert early.start(["run", "--tracer", "strace", "sh", "-c", f"touch {marker}"], env)
    with pytest.raises(UrsprungError, match="started"):
        early.take(["sh", "-c", "something else"])
    assert marker.exists()  # it ran to its end
    assert early.take(["sh", "-c", f"touch {marker}"]) is None
