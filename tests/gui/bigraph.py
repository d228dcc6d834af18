"""A synthetic lineage of about N nodes across four hosts, written as normalized events: one
result file, the process that made it from K parts on a shared file system, and K processes
that each made a part from M local inputs (the GUI's large-graph test and its benchmark)."""

from __future__ import annotations

import math
from collections.abc import Callable

from ursprung_graph.schema import graph as g
from ursprung_graph.schema.event import SCHEMA_VERSION, Event, FileRef, Kind, ProcessInfo

S = 1_000_000_000
T0 = 1_790_000_000 * S


def big_lineage(write: Callable[[list[Event]], None], nodes: int = 5000,
                tag: str = "big") -> str:
    """Write the events (in batches) and return the key of the result file."""
    k = max(1, round(math.sqrt(nodes / 2)))
    m = max(1, (nodes - 2 - 2 * k) // k)
    hosts = [f"{tag}-node{i:02d}" for i in range(4)]
    events: list[Event] = []

    def ev(kind: Kind, t: int, host: str, proc: ProcessInfo, file: FileRef) -> None:
        events.append(Event(v=SCHEMA_VERSION, source="test", host=host, ts=T0 + t,
                            seq=str(len(events)), kind=kind, proc=proc, file=file))
        if len(events) >= 2000:
            write(events[:])
            events.clear()

    for i in range(k):
        host = hosts[i % len(hosts)]
        argv = ["/usr/bin/python3", "make_part.py", str(i)]
        proc = ProcessInfo(pid=1000 + i, start=T0 + i * S, exe=argv[0], argv=argv,
                           cwd=f"/work/{tag}")
        for j in range(m):
            ev(Kind.READ, i * S + j * 1000, host, proc, FileRef(f"/data/{tag}/in{i}_{j}.csv"))
        ev(Kind.WRITE, i * S + 500 * S // 1000, host, proc,
           FileRef(f"/shared/{tag}/part{i}.bin", fs="scale"))
    argv = ["/usr/bin/python3", "combine.py"]
    final = ProcessInfo(pid=999, start=T0 + 100 * S, exe=argv[0], argv=argv, cwd=f"/work/{tag}")
    for i in range(k):
        ev(Kind.READ, 100 * S + i * 1000, hosts[0], final,
           FileRef(f"/shared/{tag}/part{i}.bin", fs="scale"))
    result = FileRef(f"/out/{tag}/result.bin")
    ev(Kind.WRITE, 200 * S, hosts[0], final, result)
    if events:
        write(events)
    return g.file_key(hosts[0], result)
