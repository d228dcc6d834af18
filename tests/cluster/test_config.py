"""Configuration: TOML file, environment overrides, clear errors, old callers unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ursprung_graph.cli.group import cli
from ursprung_graph.config import ConfigError, load_config, load_settings


def test_defaults_file_and_environment(tmp_path: Path) -> None:
    toml = tmp_path / "ursprung.toml"
    toml.write_text('[store]\ngraph = "prod"\n[kafka]\nbootstrap = "k1:9092"\npartitions = 24\n'
                    '[kafka.producer]\n"security.protocol" = "SSL"\n'
                    '[ingest]\nworkers = 4\nresolve_wait = 2.5\n')
    c = load_config(toml, env={})
    assert (c.store.graph, c.kafka.bootstrap, c.kafka.partitions, c.ingest.workers) == (
        "prod", "k1:9092", 24, 4)
    assert c.kafka.producer == {"security.protocol": "SSL"}
    assert c.kafka.events_topic == "ursprung.events"
    assert c.kafka.deadletter_topic == "ursprung.deadletter"
    env = {"URSPRUNG_KAFKA_PARTITIONS": "6", "URSPRUNG_INGEST_RESOLVE_WAIT": "0",
           "URSPRUNG_GRAPH": "g2", "URSPRUNG_HOME": str(tmp_path), "URSPRUNG_CONFIG": "x",
           "URSPRUNG_SOMETHING_ELSE": "not ours"}
    c = load_config(toml, env=env)
    assert (c.kafka.partitions, c.ingest.resolve_wait, c.store.graph) == (6, 0.0, "g2")
    assert c.settings.home == tmp_path and c.checkpoint_dir == tmp_path / "checkpoints" / "collect"
    assert c.ingest.workers == 4  # the file still counts where the environment is silent
    # URSPRUNG_CONFIG names the file when --config does not.
    assert load_config(env={"URSPRUNG_CONFIG": str(toml)}).kafka.partitions == 24


@pytest.mark.parametrize(("text", "env", "message"), [
    ("[kafka]\npartitions = \"many\"\n", {}, "kafka.partitions: Expected `int`, got `str`"),
    ("[kafka]\npartition = 3\n", {}, "unknown field `partition`"),
    ("[kafak]\n", {}, "unknown field `kafak`"),
    ("[ingest]\nworkers = 0\n", {}, "ingest.workers must be > 0"),
    ("[kafka]\ncompression = \"brotli\"\n", {}, "kafka.compression must be"),
    ("[store]\nurl = \"redis://x\"\n", {}, "use falkordb://HOST:PORT"),
    ("[kafka\n", {}, "not valid TOML"),
    ("", {"URSPRUNG_INGEST_WORKRS": "2"}, "URSPRUNG_INGEST_WORKRS"),
    ("", {"URSPRUNG_INGEST_WORKERS": "two"}, "ingest.workers"),
    ("", {"URSPRUNG_KAFKA_EVENTS_TOPIC": "ursprung.deadletter"}, "must differ"),
])
def test_errors_say_what_and_where(tmp_path: Path, text: str, env: dict, message: str) -> None:
    toml = tmp_path / "ursprung.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(toml, env=env)
    assert message in str(err.value)
    if not env:
        assert str(toml) in str(err.value)


def test_missing_file_and_old_callers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "nope.toml", env={})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("URSPRUNG_HOME", str(tmp_path))
    monkeypatch.setenv("URSPRUNG_STORE", "falkordb://db:6379")
    monkeypatch.delenv("URSPRUNG_GRAPH", raising=False)
    monkeypatch.delenv("URSPRUNG_CONFIG", raising=False)
    s = load_settings()
    assert (s.home, s.store_url, s.graph) == (tmp_path, "falkordb://db:6379", "ursprung")
    (tmp_path / "ursprung.toml").write_text('[store]\ngraph = "from-file"\n')
    assert load_settings().graph == "from-file"  # ./ursprung.toml is found


def test_cli_reports_a_bad_config(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text("[ingest]\nbatch_events = -1\n")
    r = CliRunner().invoke(cli, ["ingest", "--from", "kafka://127.0.0.1:1",
                                  "--config", str(toml)])
    assert r.exit_code != 0 and "ingest.batch_events must be > 0" in r.output
    r = CliRunner().invoke(cli, ["ingest", "--from", "http://x"])
    assert r.exit_code != 0 and "kafka://HOST:PORT" in r.output
