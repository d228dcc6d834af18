"""`ursprung winnower`: learn what replicated nodes and repeated runs normally do, and show
what deviates."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from ..config import load_settings
from ..ingest.bus import Bus, BusError, KafkaBus, open_bus
from ..pipeline.follow import FollowOptions
from ..pipeline.winnower_agent import CLOSE_AFTER, EpochSent, run_agent
from ..pipeline.winnower_agent import load_state as load_agent_state
from ..winnower.abstraction import AbstractionError, Abstractor, load_rules
from ..winnower.agent import Agent, Topics, drill
from ..winnower.anomalies import RARE, Anomaly
from ..winnower.delta import DeltaError
from ..winnower.induction import describe
from ..winnower.model import ModelMismatch
from ..winnower.monitor import Monitor
from ..winnower.remote import TIMEOUT, DrillFailed, DrillTimeout, request
from ..winnower.runs import NoRuns, runs_report
from ..winnower.stored import CLUSTER_MODEL, NoModel, stored_anomalies
from .common import config_or_fail, open_graph, printable, setup_logging, stop_on_signals

F = TypeVar("F", bound=Callable[..., Any])

#: librdkafka's max.poll.interval.ms for the agent's view consumer (see agent_cmd).
VIEW_POLL_INTERVAL_MS = 10000

_json = msgspec.json.Encoder()


def _rules(path: str | None) -> Abstractor:
    try:
        return load_rules(path)
    except AbstractionError as exc:
        raise click.ClickException(f"abstraction rules: {exc}") from exc


def topics_option(f: F) -> F:
    return click.option("--topics", "prefix", default="winnower", show_default=True,
                        help="Prefix of the bus topics (PREFIX.deltas, PREFIX.model).")(f)


def rules_option(f: F) -> F:
    return click.option("--rules", "rules_path", default=None, metavar="TOML",
                        help="Abstraction rules (TOML) run before the defaults.")(f)


def depth_option(f: F) -> F:
    return click.option("-k", "--depth", "k", default=1, show_default=True,
                        type=click.IntRange(0, 8),
                        help="Structure depth at which equal vertices merge into one state.")(f)


def rare_option(f: F) -> F:
    return click.option("--rare", default=RARE, show_default=True,
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


@winnower.command("anomalies")
@click.option("--model", "name", default=CLUSTER_MODEL, show_default=True,
              help="The stored model (what `ursprung winnower monitor` keeps).")
@rare_option
@click.option("--since", type=int, default=None, metavar="EPOCH",
              help="Also report what was first seen in EPOCH or later (new relative to the "
                   "model before it, even if every node does it).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def anomalies_cmd(name: str, rare: float, since: int | None, as_json: bool) -> None:
    """Rare and new behaviour in a stored model, rarest first, with the node it came from
    and a concrete instance."""
    try:
        report = stored_anomalies(open_graph(), name, rare=rare, since=since)
    except NoModel as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(report), indent=2))
        return
    click.echo(f"model {printable(name)}: {len(report.origins)} nodes, {report.transitions} "
               f"transitions; {len(report.anomalies)} anomalies")
    for a in report.anomalies:
        click.echo("\n".join(render_anomaly(a)))
        click.echo(f"      ids: {' '.join(str(i) for i in a.ids)}")


def _bus(url: str, config_path: str | None) -> Bus:
    try:
        return open_bus(url, config_or_fail(config_path))
    except BusError as exc:
        raise click.ClickException(str(exc)) from exc


def _state_dir(node: str, state_dir: str | None) -> Path:
    if state_dir is not None:
        return Path(state_dir)
    return load_settings().home / "winnower" / node


@winnower.command("agent")
@click.option("--log", "log_path", required=True, type=click.Path(dir_okay=False),
              help="The node's audit log (raw auditd format).")
@click.option("--to", "url", required=True, metavar="kafka://HOST:PORT",
              help="The bus to send deltas to and take the global model from.")
@click.option("--node", default=None, help="This node's name (default: the host name).")
@click.option("--epoch-seconds", default=60.0, show_default=True, type=click.FloatRange(0.001),
              help="Length of an epoch.")
@click.option("--follow", is_flag=True,
              help="Keep reading the log as it grows (and its rotations); answer drill "
                   "requests. Stop with SIGTERM or Ctrl-C.")
@click.option("--close-after", default=CLOSE_AFTER, show_default=True,
              type=click.FloatRange(0.0),
              help="When following: close an epoch that has ended once the log has been "
                   "quiet this many seconds.")
@click.option("--state-dir", default=None, type=click.Path(file_okay=False),
              help="The node's state, checkpoint and epoch archive "
                   "(default: HOME/winnower/NODE).")
@click.option("--config", "config_path", default=None,
              help="ursprung.toml (Kafka options, [collect] chunking).")
@topics_option
@rules_option
@depth_option
def agent_cmd(log_path: str, url: str, node: str | None, epoch_seconds: float, follow: bool,
              close_after: float, state_dir: str | None, config_path: str | None, prefix: str,
              rules_path: str | None, k: int) -> None:
    """Build this node's epoch graphs from its audit log, check each against the global
    model, and send only what the model does not accept, with support counts. Checkpointed:
    a restarted agent goes on where it stopped, counting every event once."""
    node = node or socket.gethostname()
    abstractor = _rules(rules_path)
    home = _state_dir(node, state_dir)
    home.mkdir(parents=True, exist_ok=True)
    path = Path(log_path)
    if not follow and not path.is_file():
        raise click.ClickException(f"{log_path}: no such file")
    config = config_or_fail(config_path)
    try:
        saved = load_agent_state(home / "state")
        agent = Agent(node, abstractor, k=k, state=saved.node if saved else None,
                      archive=home / "epochs")
    except (DeltaError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    bus = _bus(url, config_path)
    if isinstance(bus, KafkaBus):
        # The agent's groups only read views and drill requests. A join still pending when
        # the agent stops (a short run over a finished log) makes closing wait for the
        # rebalance timeout, which is max.poll.interval.ms (5 min by default): keep it
        # short; the agent polls twice a second.
        bus.consumer_options.setdefault(
            "max.poll.interval.ms", str(max(VIEW_POLL_INTERVAL_MS, bus.session_timeout_ms)))

    def report(sent: EpochSent) -> None:
        click.echo(f"epoch {sent.epoch}: {sent.events} events, {sent.states} new states, "
                   f"{sent.transitions} new transitions, {sent.bytes} bytes sent")

    try:
        run = run_agent(path, agent, bus, Topics(prefix), state_path=home / "state",
                        saved=saved, epoch_ns=int(epoch_seconds * 1e9), follow=follow,
                        stop=stop_on_signals(),
                        options=FollowOptions.from_config(config.collect, follow=follow),
                        close_after=close_after, report=report)
    except OSError as exc:
        raise click.ClickException(f"{log_path}: {exc.strerror}") from exc
    except BusError as exc:
        raise click.ClickException(f"{exc} (the state was not moved past what the bus has; "
                                   "run again to resume)") from exc
    s = run.follow
    resumed = f", resumed at byte {s.resumed_from:,}" if s.resumed_from else ""
    click.echo(f"{node}: {s.lines:,} lines -> {s.events:,} events ({s.dead_letters:,} dead "
               f"letters), {len(run.sent)} epochs sent, {run.drills} drill requests "
               f"answered{resumed}", err=True)


@winnower.command("monitor")
@click.option("--from", "url", required=True, metavar="kafka://HOST:PORT",
              help="The bus the agents send deltas to.")
@click.option("--model", "name", default=CLUSTER_MODEL, show_default=True,
              help="The name the model is stored under.")
@click.option("--idle-exit", type=float, default=None, metavar="SECONDS",
              help="Stop when no delta came for this long (default: run until stopped).")
@click.option("--config", "config_path", default=None, help="ursprung.toml (Kafka options).")
@click.option("-v", "--verbose", is_flag=True, help="Log each merge.")
@topics_option
@depth_option
def monitor_cmd(url: str, name: str, idle_exit: float | None, config_path: str | None,
                verbose: bool, prefix: str, k: int) -> None:
    """Merge the agents' deltas into the global model, keep it in the graph store and send
    it back to the agents."""
    setup_logging(verbose)
    try:
        monitor = Monitor(name, open_graph(writes=True), k=k)
    except ModelMismatch as exc:
        raise click.ClickException(str(exc)) from exc
    bus = _bus(url, config_path)
    stop = stop_on_signals()
    try:
        topics = Topics(prefix)
        bus.ensure_topics([topics.deltas, topics.model, topics.dead], 1)
        sub = bus.subscribe(f"{prefix}-monitor-{name}", [topics.deltas])
        pub = bus.publisher()
        try:
            monitor.serve(sub, pub, topics, stop, idle_exit=idle_exit)
        finally:
            sub.close()
            pub.close()
    except BusError as exc:
        raise click.ClickException(str(exc)) from exc
    s = monitor.stats
    click.echo(f"merged {s.deltas} deltas ({s.bytes} bytes) from {len(s.origins)} nodes: "
               f"{len(monitor.model.states)} states, {len(monitor.model.transitions)} "
               f"transitions; {s.dead} dead letters")


@winnower.command("drill")
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option("--node", default=None, help="The node (default: the host name).")
@click.option("--via", "url", default=None, metavar="kafka://HOST:PORT",
              help="Ask the node's agent over this bus (default: read the node's archive "
                   "on this machine).")
@click.option("--timeout", default=TIMEOUT, show_default=True, type=click.FloatRange(0.1),
              help="With --via: seconds to wait for the agent's answer.")
@click.option("--state-dir", default=None, type=click.Path(file_okay=False),
              help="The node's agent state (default: HOME/winnower/NODE).")
@click.option("--epoch", "epochs", multiple=True, type=int, help="Only these epochs.")
@click.option("--config", "config_path", default=None, help="ursprung.toml (Kafka options).")
@topics_option
@click.option("--json", "as_json", is_flag=True, help="Print what was found as JSON.")
def drill_cmd(ids: tuple[int, ...], node: str | None, url: str | None, timeout: float,
              state_dir: str | None, epochs: tuple[int, ...], config_path: str | None,
              prefix: str, as_json: bool) -> None:
    """The concrete processes, files and connections behind state or transition IDS (from
    `ursprung winnower anomalies`): from the node's own epoch archive, or (--via) asked of
    the node's running agent over the bus."""
    node = node or socket.gethostname()
    if url is not None:
        try:
            found = request(_bus(url, config_path), Topics(prefix), node, list(ids),
                            list(epochs) or None, timeout=timeout)
        except (BusError, DrillTimeout, DrillFailed) as exc:
            raise click.ClickException(str(exc)) from exc
    else:
        archive = _state_dir(node, state_dir) / "epochs"
        if not archive.is_dir():
            raise click.ClickException(f"no epoch archive of node {node!r} at {archive}")
        found = drill(archive, set(ids), set(epochs) or None)
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(found), indent=2))
        return
    click.echo(f"{len(found)} instances on {printable(node)}")
    for f in found:
        if f.kind == "state" and f.vertex is not None:
            click.echo(f"  epoch {f.epoch}  {printable(describe(f.vertex))}")
        elif f.edge is not None and f.source is not None and f.target is not None:
            click.echo(f"  epoch {f.epoch}  {printable(describe(f.source))} -{f.edge.rel}-> "
                       f"{printable(describe(f.target))}  at {f.edge.first}")
