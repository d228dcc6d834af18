"""The eBPF tracer alone, as ``strace alone`` is strace alone: the compiled loader on the
subtree of CMD (behind the gate, so from its first instruction), its binary records written
to a file, no parsing. Used by bench_tracers.py (mode ``ebpf``). Like ``ursprung run``, it
does not wait for the kernel to detach the probes (~0.5 s) once the records are written.
Imports nothing of ursprung_graph, so that its own start is Python's alone.

    python bench/ebpf_alone.py OUT -- CMD [ARGS]...
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

LOADER = (Path(__file__).resolve().parents[1] / "ursprung_graph" / "collectors" / "ebpf"
          / "build" / "ursprung-ebpf")
GATE = 'kill -STOP $$; exec "$@"'
HEADER = 96  # the loader's READY record
LOST = ord("L")


def main() -> int:
    out, sep, *argv = sys.argv[1:]
    assert sep == "--" and argv
    child = subprocess.Popen(["/bin/sh", "-c", GATE, "sh", *argv])
    os.waitpid(child.pid, os.WUNTRACED)
    read_end, write_end = os.pipe()
    with open(out, "wb") as fh:
        loader = subprocess.Popen([str(LOADER), "--ready", str(os.getpid()), "--root",
                                   str(child.pid)], stdout=fh, stderr=write_end)
        os.close(write_end)
        while os.path.getsize(out) < HEADER:
            if loader.poll() is not None:
                child.kill()
                print(os.read(read_end, 4096).decode(errors="replace"), file=sys.stderr)
                return 1
            time.sleep(0.002)
        os.kill(child.pid, signal.SIGCONT)
        code = child.wait()
        before = os.path.getsize(out)
        os.getpgid(0)  # a marker: once it is in the file, so is everything before it
        while os.path.getsize(out) == before and loader.poll() is None:
            time.sleep(0.002)
        loader.send_signal(signal.SIGINT)
    return code


if __name__ == "__main__":
    sys.exit(main())
