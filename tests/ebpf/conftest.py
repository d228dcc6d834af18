"""eBPF tests: the reason they cannot run here (if any), each back end as a fixture, and a
guard that ends every bpftrace or loader a test started (found by a token in its
environment), even when the test fails."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ursprung_graph.collectors.ebpf.capture import Backend, EbpfUnavailable, check_ebpf


def ebpf_missing(kind: str | None = None) -> str | None:
    try:
        check_ebpf(kind)
    except EbpfUnavailable as exc:
        return str(exc)
    return None


REASON = ebpf_missing()
needs_ebpf = pytest.mark.skipif(REASON is not None, reason=f"eBPF cannot run here: {REASON}")


@pytest.fixture(params=["libbpf", "bpftrace"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each eBPF back end in turn (skipped where it cannot run)."""
    why = ebpf_missing(request.param)
    if why is not None:
        pytest.skip(f"the {request.param} back end cannot run here: {why}")
    return check_ebpf(request.param)


def _tagged(token: bytes) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_bytes().strip() not in (b"bpftrace", b"ursprung-ebpf"):
                continue
            if token in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.fixture(autouse=True)
def no_bpftrace_left(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    token = f"URSPRUNG_TEST_TOKEN={uuid.uuid4().hex}"
    name, value = token.split("=")
    monkeypatch.setenv(name, value)
    yield
    deadline = time.monotonic() + 5  # a back end told to stop may take a moment to go
    while _tagged(token.encode()) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _tagged(token.encode())
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"eBPF back ends left running (killed now): {left}"
