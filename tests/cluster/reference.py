"""The clean reference: the same inputs imported directly into a store (no bus), and a
Spectrum Scale event file made from the processes of a real recorded audit log."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from ursprung_graph.config import CollectConfig
from ursprung_graph.pipeline.importer import default_host, import_file, import_scale_file
from ursprung_graph.store.base import GraphStore
from ursprung_graph.store.cypher import Cypher

S = 1_000_000_000

PROCESSES = Cypher(
    "MATCH (p:Process) WHERE p.host = $host AND p.start > 0 "
    "RETURN p.pid AS pid, p.start AS start, p.end AS end ORDER BY p.start"
)


def local_import(store: GraphStore, audit: list[tuple[Path, str]], scale: list[Path]) -> None:
    """Audit logs first, then Scale events resolved against their processes."""
    for path, host in audit:
        import_file(store, path, host=host)
    for path in scale:
        import_scale_file(store, path.resolve(), host=default_host(), collect=CollectConfig())


def scale_time(ns: int, offset_minutes: int = -420) -> str:
    """Scale's watch-folder format, in a zone with the given offset, whole seconds."""
    secs = ns // S + offset_minutes * 60
    sign = "-" if offset_minutes < 0 else "+"
    off = abs(offset_minutes)
    return time.strftime("%Y-%m-%d_%H:%M:%S", time.gmtime(secs)) + f"{sign}{off // 60:02d}" \
        f"{off % 60:02d}"


def make_scale_events(store: GraphStore, host: str, out: Path, *, seed: int = 7,
                      count: int = 40) -> Path:
    """Watch-folder events on host's real processes (at times inside their lives), on
    unknown pids, a rename pair, and junk: the Scale half of the end-to-end input."""
    rng = random.Random(seed)
    procs = store.read(PROCESSES, {"host": host})
    assert procs, f"no processes of {host} in the reference store"
    lines = []

    def wf(event: str, path: str, pid: int, ts: int, cookie: str = "0",
           flags: str = "32768") -> str:
        return json.dumps({
            "WF_JSON": "0.0.1", "wd": "1", "cookie": cookie, "event": event, "path": path,
            "clusterName": "c", "nodeName": host, "nfsClientIp": "", "fsName": "gpfs0",
            "inode": str(1000 + len(lines)), "fileSetID": "0", "linkCount": "1",
            "openFlags": flags, "poolName": "system", "fileSize": "1", "ownerUserId": "0",
            "ownerGroupId": "0", "eventTime": scale_time(ts), "clientUserId": "0",
            "clientGroupId": "0", "processId": str(pid), "permissions": "200100644",
            "acls": None, "xattrs": None, "subEvent": "NONE"})

    for i in range(count):
        p = rng.choice(procs)
        end = p["end"] if p["end"] is not None else p["start"] + S
        ts = rng.randint(p["start"], max(p["start"], end))
        path = f"/gpfs/gpfs0/proj/f{i % 12}.dat"
        if i % 3 == 0:
            lines.append(wf("IN_OPEN", path, p["pid"], ts, flags="32833"))
            lines.append(wf("IN_CLOSE_WRITE", path, p["pid"], ts, flags="32833"))
        else:
            lines.append(wf("IN_OPEN", path, p["pid"], ts))
            lines.append(wf("IN_CLOSE_NOWRITE", path, p["pid"], ts))
    t0 = procs[0]["start"]
    lines.append(wf("IN_OPEN", "/gpfs/gpfs0/proj/legacy.dat", 4_000_000, t0))  # never audited
    lines.append(wf("IN_MOVED_FROM", "/gpfs/gpfs0/proj/f1.dat", procs[-1]["pid"],
                    procs[-1]["start"], cookie="99"))
    lines.append(wf("IN_MOVED_TO", "/gpfs/gpfs0/proj/final.dat", procs[-1]["pid"],
                    procs[-1]["start"], cookie="99"))
    lines.append("{not json")
    out.write_text("\n".join(lines) + "\n")
    return out
