"""The `ursprung` command group: one module per command, each a thin layer over the
collectors, ingest and query layer, imported only when invoked (`ursprung run` starts the
user's command sooner when it does not first import the Kafka client and everything else).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from ..errors import UrsprungError

#: command name -> (module, attribute, one-line help shown in `ursprung --help`)
COMMANDS = {
    "collect": ("collect", "collect", "Collect events on this node and publish them."),
    "cypher": ("cypher", "cypher_cmd", "Run a read-only Cypher query."),
    "db": ("db", "db", "Start, stop or inspect the embedded graph store."),
    "import": ("imports", "import_cmd", "Import audit logs or Scale events into the graph."),
    "ingest": ("ingest", "ingest_cmd", "Consume events from Kafka into the graph store."),
    "lineage": ("lineage", "lineage_cmd", "Upstream or downstream lineage of a file."),
    "report": ("report", "report", "Auditor reports (cypher/*.cypher): list, run."),
    "run": ("run", "run_cmd", "Run a command traced, recorded as a pipeline run."),
    "runs": ("runs", "runs", "Pipeline runs: define, list, show, compare."),
    "serve": ("serve", "serve_cmd", "Serve the GraphQL API (and GraphiQL) over HTTP."),
    "winnower": ("winnower", "winnower", "Models of replicated nodes and runs; anomalies."),
    "rules": ("rules", "rules", "Rules for application provenance: check, test."),
    "versions": ("versions", "versions_cmd", "Content versions of a file (TRACK rules, runs)."),
    "diff": ("versions", "diff_cmd", "Unified diff between two versions of a file."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(f".{module}", __package__), attr)

    def invoke(self, ctx: click.Context) -> Any:
        """Errors the project raises on purpose become one line on stderr and an exit
        status that says what kind of error it was, never a traceback. Messages name files
        and values from the graph, so they are escaped like all human output."""
        from .common import printable

        try:
            return super().invoke(ctx)
        except UrsprungError as exc:
            click.echo(f"ursprung: error: {printable(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except click.ClickException as exc:
            setattr(exc, "message", printable(exc.message))  # noqa: B010 (Final in click's stubs)
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in sorted(COMMANDS)])


@click.group(cls=LazyGroup)
@click.version_option(package_name="ursprung-graph")
def cli() -> None:
    """ursprung-graph: provenance of data-science pipelines, as a graph."""
