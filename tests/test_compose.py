"""compose.yaml is a deployment that can start: it parses, every project service runs a
command the CLI has (with options it accepts), ports and volumes are consistent, and the
ingest workers write to the Neo4j service with a configuration the project accepts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from ursprung_graph.cli.group import cli
from ursprung_graph.config import load_config

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
OURS = {name for name, s in SERVICES.items() if s.get("image") == "ursprung-graph:latest"}
#: Commands of parts not landed yet; the test fails once they exist, to drop them here.
PENDING = {"api"}
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?]([^}]*))?\}")


def expand(text: str) -> str:
    """``${VAR:-default}`` as compose would expand it with VAR unset (``${VAR:?msg}``: a
    placeholder, since compose refuses to start without it)."""
    return _VAR.sub(lambda m: "secret" if ":?" in m.group(0) else (m.group(2) or ""), text)


def resolve(args: list[str]) -> tuple[click.Command, list[str]]:
    """The click command an argv names, and the arguments left for it."""
    command: click.Command = cli
    args = list(args)
    while isinstance(command, click.Group) and args:
        sub = command.get_command(click.Context(command), args[0])
        if sub is None:
            raise LookupError(f"`ursprung {args[0]}` does not exist")
        command, args = sub, args[1:]
    return command, args


def test_it_parses_with_the_expected_services() -> None:
    assert {"kafka", "neo4j", "schema", "ingest", "api", "collector"} <= set(SERVICES)
    assert {"schema", "ingest", "api", "collector", "scale-collector"} <= OURS


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_command_exists_in_the_cli(name: str) -> None:
    argv = [expand(str(a)) for a in SERVICES[name]["command"]]
    if argv[0] in PENDING:
        with pytest.raises(LookupError):
            resolve(argv)
        return
    command, rest = resolve(argv)
    assert not isinstance(command, click.Group), f"{argv} names a group, not a command"
    command.make_context(" ".join(argv[:1]), rest)  # unknown options raise UsageError


def test_depends_on_names_services_and_ingest_can_scale() -> None:
    for name, service in SERVICES.items():
        for dep in service.get("depends_on", {}):
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"
    ingest = SERVICES["ingest"]
    assert "container_name" not in ingest and "ports" not in ingest  # --scale needs both
    assert SERVICES["schema"]["restart"] == "no"
    assert ingest["depends_on"]["schema"]["condition"] == "service_completed_successfully"


def test_volumes_are_declared_and_used() -> None:
    declared = set(COMPOSE["volumes"])
    used = set()
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if not source.startswith(("./", "/")):
                used.add(source)
            else:
                assert (REPO / source).exists(), f"bind mount {source} does not exist"
            assert target.startswith("/")
    assert used == declared
    assert "neo4j-data:/data" in SERVICES["neo4j"]["volumes"]


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    out = []
    for port in service.get("ports", []):
        parts = str(port).split(":")
        host_ip = parts[0] if len(parts) == 3 else "0.0.0.0"
        out.append((host_ip, int(parts[-2]), int(parts[-1])))
    return out


def test_ports_are_consistent() -> None:
    published = [(name, p) for name, s in SERVICES.items() for p in _published(s)]
    host_ports = [p[1] for _, p in published]
    assert len(host_ports) == len(set(host_ports)), published
    # Neo4j and the API on loopback only; Kafka's external listener is what nodes reach
    for name, (host_ip, _, _) in published:
        assert host_ip == "127.0.0.1" or name == "kafka", (name, host_ip)
    [(_, kafka_host, kafka_port)] = _published(SERVICES["kafka"])
    assert f"EXTERNAL://:{kafka_port}" in SERVICES["kafka"]["environment"]["KAFKA_LISTENERS"]
    api = SERVICES["api"]["command"]
    assert _published(SERVICES["api"])[0][2] == int(api[api.index("--port") + 1])
    ingest = SERVICES["ingest"]
    port = ingest["command"][ingest["command"].index("--metrics-port") + 1]
    assert f":{port}/healthz" in " ".join(ingest["healthcheck"]["test"])
    neo4j = SERVICES["neo4j"]
    bolt = neo4j["environment"]["NEO4J_server_bolt_listen__address"].rsplit(":", 1)[1]
    assert _published(neo4j)[0][2] == int(bolt)


def test_neo4j_is_the_workers_store() -> None:
    neo4j = SERVICES["neo4j"]
    assert re.fullmatch(r"neo4j:5(\.\d+)*-community", neo4j["image"])
    bolt = neo4j["environment"]["NEO4J_server_bolt_listen__address"].rsplit(":", 1)[1]
    password = neo4j["environment"]["NEO4J_AUTH"].split("/", 1)[1]
    for name in ("ingest", "schema", "api"):
        env = {k: expand(str(v)) for k, v in SERVICES[name]["environment"].items()}
        assert env["URSPRUNG_STORE"] == f"neo4j://neo4j:{bolt}"
        assert env["URSPRUNG_STORE_PASSWORD"] == expand(password)
        config = load_config(REPO / "deploy" / "ursprung.toml", env=env)
        assert config.settings.store_url == f"neo4j://neo4j:{bolt}"
        assert config.settings.store_user == "neo4j"
        kafka_internal = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
        assert f"INTERNAL://{config.kafka.bootstrap}" in kafka_internal
    assert "kafka://kafka:9092" in SERVICES["ingest"]["command"]


def test_the_image_carries_the_reports() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "COPY cypher ./cypher" in dockerfile
    assert "URSPRUNG_REPORTS_DIR=/opt/ursprung/cypher" in dockerfile
