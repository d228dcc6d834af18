"""The eBPF tracer alone, as ``strace alone`` is strace alone: the compiled loader on the
subtree of CMD (behind the gate, so from its first instruction), its binary records written
to a file, no parsing. Used by bench_tracers.py (mode ``ebpf``).

    python bench/ebpf_alone.py OUT -- CMD [ARGS]...
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ursprung_graph.collectors.ebpf.binary import HEADER
from ursprung_graph.collectors.ebpf.capture import check_ebpf, loader_argv
from ursprung_graph.collectors.ebpf.program import Target
from ursprung_graph.collectors.ebpf.runner import start_gated


def main() -> int:
    out, sep, *argv = sys.argv[1:]
    assert sep == "--" and argv
    backend = check_ebpf("libbpf")
    child = start_gated(argv)
    with open(out, "wb") as fh:
        loader = subprocess.Popen(loader_argv(backend.path, Target(os.getpid(), child.pid)),
                                  stdout=fh)
        while os.path.getsize(out) < HEADER.size:  # the loader's READY record
            if loader.poll() is not None:
                child.kill()
                return 1
            time.sleep(0.002)
        os.kill(child.pid, signal.SIGCONT)
        code = child.wait()
        loader.send_signal(signal.SIGINT)
        loader.wait()
    return code


if __name__ == "__main__":
    sys.exit(main())
