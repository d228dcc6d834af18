"""eBPF tests: the reason they cannot run here (if any), and a guard that ends every
bpftrace a test started (found by a token in its environment), even when the test fails."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ursprung_graph.collectors.ebpf.capture import EbpfUnavailable, check_ebpf


def ebpf_missing() -> str | None:
    try:
        check_ebpf()
    except EbpfUnavailable as exc:
        return str(exc)
    return None


REASON = ebpf_missing()
needs_ebpf = pytest.mark.skipif(REASON is not None, reason=f"eBPF cannot run here: {REASON}")


def _tagged(token: bytes) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_bytes().strip() != b"bpftrace":
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
    left = _tagged(token.encode())
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"bpftrace processes left running (killed now): {left}"
