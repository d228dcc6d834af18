"""The `ursprung` command line: one module per command group, each a thin layer over the
collectors, ingest and query layer."""

from __future__ import annotations

import click

from . import collect, cypher, db, imports, ingest, lineage, run, runs


@click.group()
@click.version_option(package_name="ursprung-graph")
def main() -> None:
    """ursprung-graph: provenance of data-science pipelines, as a graph."""


main.add_command(db.db)
main.add_command(imports.import_cmd)
main.add_command(lineage.lineage_cmd)
main.add_command(cypher.cypher_cmd)
main.add_command(run.run_cmd)
main.add_command(runs.runs)
main.add_command(collect.collect)
main.add_command(ingest.ingest_cmd)
