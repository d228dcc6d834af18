"""CAPTURESOUT for `ursprung run`: the command's stdout through a pipe that is copied, byte
for byte, to ursprung's own stdout, while its lines are offered to the rule engine.

The user sees the same output (the original redirected it away with ptrace). The command's
stdout is a pipe rather than the terminal while CAPTURESOUT rules are loaded, so programs
that check for a terminal may buffer or colour differently; only then is the pipe used.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

#: Lines longer than this are offered cut (the bytes still pass through whole).
MAX_LINE = 1 << 16


class StdoutTee:
    """``fd`` is the write end to give the command; :meth:`close` (after the command has
    ended) closes ours and waits for the copying to finish."""

    def __init__(self, on_line: Callable[[str, int], None], out_fd: int = 1) -> None:
        self._read, self.fd = os.pipe()
        self._out = out_fd
        self._on_line = on_line
        self._thread = threading.Thread(target=self._copy, name="ursprung-stdout",
                                        daemon=True)
        self._thread.start()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._out, view)
            except BrokenPipeError:
                return  # nobody reads our stdout any more: the lines are still captured
            view = view[n:]

    def _copy(self) -> None:
        rest = b""
        while True:
            data = os.read(self._read, 1 << 16)
            if not data:
                break
            self._write(data)
            lines = (rest + data).split(b"\n")
            rest = lines.pop()[-MAX_LINE:]
            now = time.time_ns()
            for line in lines:
                self._on_line(line[:MAX_LINE].decode("utf-8", errors="replace"), now)
        if rest:
            self._on_line(rest.decode("utf-8", errors="replace"), time.time_ns())
        os.close(self._read)

    def close(self, timeout: float = 10.0) -> None:
        os.close(self.fd)
        self._thread.join(timeout)
