"""The node collector: node-wide capture filtered by command pattern and by uid, the window
it missed across a restart, and `ursprung collect ebpf --to local` end to end."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.runs.helpers import cli_env, ursprung
from ursprung_graph.collectors.ebpf.node import NodeCollector, NodeFilter
from ursprung_graph.schema.event import Event, Kind

from .conftest import ebpf_missing, needs_ebpf

pytestmark = needs_ebpf


def collect(tmp_path: Path, node_filter: NodeFilter, work) -> tuple[list[Event], object]:
    events: list[Event] = []
    stop = threading.Event()
    collector = NodeCollector(events.extend, host="node", state_dir=tmp_path / "state",
                              node_filter=node_filter, flush_seconds=0.1, stop=stop,
                              on_window=lambda w: None)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("stats", collector.run()))
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while collector.capture is None or collector.capture._markers < 1:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.05)
        work()
        time.sleep(0.3)
        assert collector.capture.sync()
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()
    return events, result["stats"]


def written(events: list[Event]) -> set[str]:
    return {e.file.path for e in events if e.kind is Kind.WRITE and e.file is not None}


def test_command_pattern_follows_matching_programs_and_their_children(tmp_path: Path):
    prog = tmp_path / "marker-prog"
    prog.symlink_to(sys.executable)
    keep, other = tmp_path / "kept.txt", tmp_path / "other.txt"

    def work() -> None:
        subprocess.run([str(prog), "-c", f"import subprocess; open({str(keep)!r}, 'w');"
                        f"subprocess.run(['touch', {str(keep) + '.child'!r}])"], check=True)
        subprocess.run([sys.executable, "-c", f"open({str(other)!r}, 'w')"], check=True)

    events, stats = collect(tmp_path, NodeFilter(commands=("marker-*",)), work)
    paths = written(events)
    assert str(keep) in paths and str(keep) + ".child" in paths
    assert str(other) not in paths
    assert all(e.source == "ebpf" and e.host == "node" for e in events)
    assert stats.missed == []  # first start: nothing to report

    # a restart says what it missed: from when it last noted itself alive
    alive = json.loads((tmp_path / "state" / "ebpf-node.json").read_text())["alive"]
    _, again = collect(tmp_path, NodeFilter(commands=("marker-*",)), lambda: None)
    [missed] = again.missed
    assert missed.start == alive and missed.end > alive and missed.lost is None


def test_uid_filter(tmp_path: Path):
    shared = Path(tempfile.mkdtemp(prefix="ursprung-uid-", dir="/tmp"))  # nobody can reach
    shared.chmod(0o777)
    mine, theirs = shared / "root.txt", shared / "nobody.txt"

    def work() -> None:
        subprocess.run(["touch", str(mine)], check=True)
        subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "touch", str(theirs)], check=True)

    try:
        events, _ = collect(tmp_path, NodeFilter(uids=(65534,)), work)
    finally:
        shutil.rmtree(shared)
    paths = written(events)
    assert str(theirs) in paths and str(mine) not in paths


def test_collect_ebpf_to_the_local_store(tmp_path: Path, settings):
    config = tmp_path / "ursprung.toml"
    config.write_text(f'[collect]\ncheckpoint_dir = "{tmp_path / "ck"}"\n'
                      f'ebpf_commands = ["collect-marker"]\n')
    prog = tmp_path / "collect-marker"
    prog.symlink_to(sys.executable)
    out = tmp_path / "collected.txt"
    env = cli_env(settings)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ursprung"), "collect", "ebpf",
                             "--to", "local", "--config", str(config)], env=env,
                            stderr=subprocess.PIPE)
    try:
        time.sleep(1)
        deadline = time.monotonic() + 120
        while True:  # until its probes are attached: a marker file shows up in the store
            subprocess.run([str(prog), "-c", f"open({str(out)!r}, 'w')"], check=True)
            time.sleep(1)
            up = ursprung(settings, "lineage", str(out), "--direction", "down", "--json")
            if up.returncode == 0:
                break
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert b"calls ->" in err
    if ebpf_missing("libbpf") is None:  # the faster back end, where it is built
        assert b"collecting on" in err and b"with the compiled libbpf loader" in err
    nodes = json.loads(up.stdout)["nodes"]
    assert any(n.get("path") == str(out) for n in nodes)
    assert list((tmp_path / "ck").glob("ebpf-*.json"))  # it noted until when it delivered
