"""Commands that start the embedded store at once: one server, always, and a home that
starts again afterwards (two servers on one data directory destroyed it). A server that
crashed and was not reaped yet (a zombie) does not count as running."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ursprung_graph.store.base import StoreError
from ursprung_graph.store.embedded import EmbeddedServer
from ursprung_graph.store.falkordb import FalkorDBStore

from .conftest import DATA, URSPRUNG, env_for, kill_servers, servers_of, ursprung

TRIALS = 20
COUNT = "MATCH (n) RETURN count(n) AS n"


def _small_log(where: Path) -> Path:
    log = where / "small.audit.log"
    with (DATA / "two_runs.audit.log").open("rb") as fh:
        log.write_bytes(b"".join(fh.readlines()[:400]))
    return log


def _together(home: Path, commands: list[list[str]], cwd: Path) -> list[tuple[int, str]]:
    """Start all commands at once; their (exit status, stderr)."""
    env = env_for(home)
    procs = [subprocess.Popen([URSPRUNG, *c], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for c in commands]
    return [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]


def _kinds(log: Path) -> list[list[list[str]]]:
    """The three commands of each kind of trial: the same command three times (they reach
    the start at the same moment most often) and one of each."""
    start = ["db", "start"]
    imp = ["import", "--host", "h", "--no-progress", str(log)]
    run = ["run", "--", "true"]
    return [[start] * 3, [imp] * 3, [run] * 3, [start, imp, run]]


def _trial(root: Path, i: int, log: Path) -> str | None:
    """One trial on a fresh home; what went wrong, or None."""
    home = root / f"home{i}"
    commands = _kinds(log)[i % 4]
    wrote = any(c[0] != "db" for c in commands)
    try:
        results = _together(home, commands, root)
        servers = servers_of(home)
        failed = [(rc, err) for rc, err in results if rc != 0]
        if failed or len(servers) != 1:
            return f"trial {i}: {len(servers)} servers, failed commands {failed}"
        # what `db stop` and `db start` do, without starting Python twice more
        server = EmbeddedServer(home / "falkordb")
        server.stop()
        if servers_of(home):
            return f"trial {i}: a server survived `db stop`"
        try:
            server.start()
        except StoreError as exc:
            return f"trial {i}: the home does not start again: {exc}"
        store = FalkorDBStore(unix_socket=str(server.socket), graph="g")
        try:
            rows = store.read(COUNT)
            if wrote and (not rows or rows[0]["n"] == 0):
                return f"trial {i}: the data is gone"
        finally:
            store.close()
        return None
    finally:
        kill_servers(home)


def test_three_simultaneous_starts_make_one_server(tmp_path: Path) -> None:
    log = _small_log(tmp_path)
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = [p for p in pool.map(lambda i: _trial(tmp_path, i, log), range(TRIALS))
                    if p]
    assert not problems, "\n".join(problems)


def test_four_concurrent_runs_are_all_run(home: Path, tmp_path: Path) -> None:
    results = _together(home, [["run", "--", "true"]] * 4, tmp_path)
    assert [rc for rc, _ in results] == [0, 0, 0, 0], results
    assert len(servers_of(home)) == 1
    runs = ursprung(home, "runs", "list", "--json")
    assert runs.stdout.count('"id"') == 4, runs.stdout


ZOMBIE = textwrap.dedent("""
    import ctypes, os, signal, subprocess, sys, time
    ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: the daemon becomes our child
    ursprung = sys.argv[1]
    first = subprocess.run([ursprung, "db", "start"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    pid = int(open(sys.argv[2]).read())
    os.kill(pid, signal.SIGKILL)  # a crash; we do not reap it: it stays a zombie
    while open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    again = subprocess.run([ursprung, "db", "start"], capture_output=True, text=True,
                           timeout=60)
    print(again.returncode, again.stdout.strip(), again.stderr.strip())
    os.waitpid(pid, 0)
""")


def test_db_start_right_after_a_crash(home: Path) -> None:
    """The crashed server is a zombie (its parent has not reaped it): not alive."""
    pidfile = home / "falkordb" / "falkordb.pid"
    result = subprocess.run([sys.executable, "-c", ZOMBIE, URSPRUNG, str(pidfile)],
                            env=env_for(home), capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    rc, _, said = result.stdout.partition(" ")
    assert rc == "0" and said.startswith("started"), result.stdout
    assert len(servers_of(home)) == 1
