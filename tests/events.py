"""Building normalized events by hand for tests of ingest and lineage."""

from __future__ import annotations

from ursprung_graph.schema.event import SCHEMA_VERSION, Endpoint, Event, FileRef, Kind, ProcessInfo

HOST = "h1"
S = 1_000_000_000  # one second in ns


class Script:
    """Writes a little story of processes and files as events, in order."""

    def __init__(self, host: str = HOST) -> None:
        self.host = host
        self.events: list[Event] = []

    def _ev(self, kind: Kind, t: int, proc: ProcessInfo, **kw) -> Event:
        ev = Event(v=SCHEMA_VERSION, source="test", host=self.host, ts=t * S,
                   seq=str(len(self.events)), kind=kind, proc=proc, **kw)
        self.events.append(ev)
        return ev

    @staticmethod
    def proc(pid: int, start: int = 0, argv: list[str] | None = None) -> ProcessInfo:
        return ProcessInfo(pid=pid, start=start * S, exe=argv[0] if argv else None, argv=argv)

    def exec(self, t: int, p: ProcessInfo, path: str) -> None:
        self._ev(Kind.EXEC, t, p, file=FileRef(path))

    def fork(self, t: int, parent: ProcessInfo, child: ProcessInfo) -> None:
        self._ev(Kind.FORK, t, parent, child=child)

    def read(self, t: int, p: ProcessInfo, path: str) -> None:
        self._ev(Kind.READ, t, p, file=FileRef(path))

    def write(self, t: int, p: ProcessInfo, path: str) -> None:
        self._ev(Kind.WRITE, t, p, file=FileRef(path))

    def rename(self, t: int, p: ProcessInfo, old: str, new: str) -> None:
        self._ev(Kind.RENAME, t, p, file=FileRef(old), dst=FileRef(new))

    def pipe(self, t: int, p: ProcessInfo, pipe: str, *, write: bool) -> None:
        self._ev(Kind.PIPE_WRITE if write else Kind.PIPE_READ, t, p, pipe=pipe)

    def connect(self, t: int, p: ProcessInfo, port: int) -> None:
        self._ev(Kind.CONNECT, t, p, peer=Endpoint("inet", "127.0.0.1", port))

    def bind(self, t: int, p: ProcessInfo, port: int) -> None:
        self._ev(Kind.BIND, t, p, peer=Endpoint("inet", "0.0.0.0", port))

    def exit(self, t: int, p: ProcessInfo, code: int = 0) -> None:
        self._ev(Kind.EXIT, t, p, exit_code=code)

    def accept(self, t: int, p: ProcessInfo, port: int) -> None:
        self._ev(Kind.ACCEPT, t, p, peer=Endpoint("inet", "0.0.0.0", port))
