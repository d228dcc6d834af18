"""The agent as the follower's sink, end to end over a real Kafka broker (Tansu): one node's
agent follows an audit log that is appended while it runs, is killed (SIGKILL) half way and
restarted; another node's agent reads the same log once. The model the monitor keeps has
the same support from both: the restarted agent lost nothing and counted nothing twice.
Drill over the bus: the running agent answers with what its own archive holds; once it is
gone, the request times out with a clear error."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import msgspec

from tests.runs.helpers import URSPRUNG, cli_env
from ursprung_graph.ingest.bus import KafkaBus
from ursprung_graph.pipeline.winnower_agent import load_state
from ursprung_graph.winnower import persist
from ursprung_graph.winnower.agent import drill

DATA = Path(__file__).resolve().parents[1] / "data"
LOG = DATA / "pipeline.audit.log"  # 1.7 s of a pipeline run: seven epochs of 0.25 s
EPOCH = "0.25"
_ids = itertools.count()


def _wait(what: str, cond, timeout: float = 60.0, proc: subprocess.Popen | None = None,
          out: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the agent exited while waiting for {what}: "
                                 f"{out.read_text() if out else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: "
                                 f"{out.read_text() if out else ''}")
        time.sleep(0.1)


def _append(path: Path, lines: list[bytes]) -> None:
    with path.open("ab") as fh:
        fh.write(b"".join(lines))


def test_followed_agent_restarts_without_loss_or_double_counts_and_answers_drills(
        tmp_path: Path, settings, store, broker: str):
    prefix = f"wf{os.getpid()}x{next(_ids)}"
    env = cli_env(settings, URSPRUNG_KAFKA_SESSION_TIMEOUT_MS="2000")
    url = f"kafka://{broker}"
    common = ["--to", url, "--topics", prefix, "--epoch-seconds", EPOCH]
    KafkaBus(broker).ensure_topics([f"{prefix}.deltas", f"{prefix}.model"], 1)

    # the reference: the whole log read once
    ref = subprocess.run([URSPRUNG, "winnower", "agent", "--log", str(LOG), "--node", "ref",
                          "--state-dir", str(tmp_path / "ref"), *common], env=env,
                         capture_output=True, timeout=120)
    assert ref.returncode == 0, ref.stderr
    sent_ref = ref.stdout.count(b"bytes sent")
    assert sent_ref >= 5

    lines = LOG.read_bytes().splitlines(keepends=True)
    live_log = tmp_path / "audit.log"
    live_log.write_bytes(b"")
    state_dir = tmp_path / "live"
    state = state_dir / "state"
    started: list[subprocess.Popen] = []

    def start(run: int) -> tuple[subprocess.Popen, Path]:
        out = tmp_path / f"live.{run}.out"
        with out.open("wb") as fh:
            p = subprocess.Popen([URSPRUNG, "winnower", "agent", "--log", str(live_log),
                                  "--node", "live", "--state-dir", str(state_dir), "--follow",
                                  "--close-after", "3", *common], env=env, stdout=fh,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        started.append(p)
        return p, out

    try:
        agent, out = start(0)
        half = len(lines) * 3 // 5
        for piece in (lines[:half // 3], lines[half // 3:2 * half // 3],
                      lines[2 * half // 3:half]):
            _append(live_log, piece)
            time.sleep(0.3)
        # an epoch went out and the state names a checkpoint inside the log
        _wait("a first epoch", lambda: b"bytes sent" in out.read_bytes(), proc=agent, out=out)
        _wait("a checkpoint", lambda: (s := load_state(state)) is not None
              and s.checkpoint is not None, proc=agent, out=out)
        os.kill(agent.pid, signal.SIGKILL)  # a crash: nothing is flushed or saved
        agent.wait()
        saved = load_state(state)
        assert saved is not None and saved.checkpoint is not None
        assert 0 < saved.checkpoint.offset <= live_log.stat().st_size

        agent, out = start(1)
        _append(live_log, lines[half:])
        size = live_log.stat().st_size

        def all_closed() -> bool:
            s = load_state(state)
            return (s is not None and s.checkpoint is not None and s.epoch is None
                    and s.checkpoint.offset == size)

        _wait("every epoch closed", all_closed, proc=agent, out=out)

        monitor = subprocess.run([URSPRUNG, "winnower", "monitor", "--from", url, "--topics",
                                  prefix, "--idle-exit", "4"], env=env, capture_output=True,
                                 timeout=180)
        assert monitor.returncode == 0, monitor.stderr
        assert b"from 2 nodes" in monitor.stdout

        loaded = persist.load(store, "cluster")
        assert loaded is not None
        model = loaded[0]
        parts = [*model.states.values(), *model.transitions.values()]
        assert parts and all(p.support.get("live") == p.support.get("ref") for p in parts), \
            [(p, p.support) for p in parts if p.support.get("live") != p.support.get("ref")][:3]
        assert all(p.support.get("live") for p in parts)

        # drill over the bus: the running agent answers from its archive
        ids = sorted(model.transitions)[:5]
        asked = subprocess.run([URSPRUNG, "winnower", "drill", *map(str, ids), "--node",
                                "live", "--via", url, "--topics", prefix, "--json",
                                "--timeout", "60"], env=env, capture_output=True, timeout=120)
        assert asked.returncode == 0, asked.stderr
        found = json.loads(asked.stdout)
        local = drill(state_dir / "epochs", set(ids))
        assert found and len(found) == len(local)
        def canon(items: list) -> list[str]:
            return sorted(json.dumps(x, sort_keys=True) for x in items)

        assert canon(found) == canon(msgspec.to_builtins(local))
        assert {f["id"] for f in found} <= set(ids)

        agent.send_signal(signal.SIGTERM)
        assert agent.wait(60) == 0, out.read_text()
        summary = out.read_text()
        assert "resumed at byte" in summary and "1 drill requests answered" in summary

        gone = subprocess.run([URSPRUNG, "winnower", "drill", str(ids[0]), "--node", "live",
                               "--via", url, "--topics", prefix, "--timeout", "3"], env=env,
                              capture_output=True, timeout=120)
        assert gone.returncode == 1
        assert b"no answer from the agent of node 'live' within 3 s" in gone.stderr
        assert b"Traceback" not in gone.stderr
    finally:
        for p in started:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
