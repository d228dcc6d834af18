"""`ursprung winnower`: learn what replicated nodes and repeated runs normally do, and show
what deviates."""

from __future__ import annotations

import json

import click
import msgspec

from ..winnower.abstraction import AbstractionError, Abstractor, load_rules
from ..winnower.anomalies import Anomaly
from ..winnower.runs import NoRuns, runs_report
from .common import open_graph, printable

_json = msgspec.json.Encoder()


def _rules(path: str | None) -> Abstractor:
    try:
        return load_rules(path)
    except AbstractionError as exc:
        raise click.ClickException(f"abstraction rules: {exc}") from exc


def rules_option(f):  # noqa: ANN001, ANN201 - a click decorator
    return click.option("--rules", "rules_path", default=None, metavar="TOML",
                        help="Abstraction rules (TOML) run before the defaults.")(f)


def depth_option(f):  # noqa: ANN001, ANN201
    return click.option("-k", "--depth", "k", default=1, show_default=True,
                        type=click.IntRange(0, 8),
                        help="Structure depth at which equal vertices merge into one state.")(f)


def rare_option(f):  # noqa: ANN001, ANN201
    return click.option("--rare", default=0.2, show_default=True,
                        type=click.FloatRange(0, 1),
                        help="Rare: exhibited by at most this fraction of nodes or runs.")(f)


@click.group("winnower")
def winnower() -> None:
    """Models of replicated nodes and of repeated pipeline runs; what deviates."""


def _origins(a: Anomaly) -> str:
    return ", ".join(f"{o}x{n}" if n > 1 else o for o, n in a.origins.items())


def render_anomaly(a: Anomaly, indent: str = "  ") -> list[str]:
    lines = [f"{indent}[{'/'.join(a.reasons)}] {printable(a.text())}",
             f"{indent}    seen on: {printable(_origins(a))}"]
    lines += [f"{indent}    e.g. {printable(e.text)}" for e in a.examples[:3]]
    return lines


@winnower.command("runs")
@click.option("--pipeline", required=True, help="The pipeline whose runs are compared.")
@rules_option
@depth_option
@rare_option
@click.option("--since", type=int, default=None, metavar="N",
              help="Also report what is new from the N-th run (0 = oldest) on.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def runs_cmd(pipeline: str, rules_path: str | None, k: int, rare: float, since: int | None,
             as_json: bool) -> None:
    """Learn what the recorded runs of PIPELINE normally do and report the runs that did
    something the others did not."""
    abstractor = _rules(rules_path)
    try:
        report = runs_report(open_graph(), pipeline, abstractor, k=k, rare=rare, since=since)
    except NoRuns as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(report), indent=2))
        return
    click.echo(f"{len(report.runs)} runs of {printable(pipeline)}: {report.states} states, "
               f"{report.transitions} transitions; {len(report.deviations)} deviating")
    for d in report.deviations:
        click.echo(f"\nrun {printable(d.run)}: {len(d.facts)} things the other runs did not do")
        for fact in d.facts:
            click.echo("\n".join(render_anomaly(fact)))
