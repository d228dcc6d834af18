"""With the eBPF tracer too, the run and its early versions are in the store while the
command runs: the loader hands over records below its wake-up threshold, and the reader
releases a quiet stream's last calls (both held them until the end before)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runs.test_live_versions import check_live_versions
from ursprung_graph.collectors.ebpf.capture import BACKEND_ENV, Backend


def test_versions_are_stored_while_the_command_runs(tmp_path: Path, store, backend: Backend,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV, backend.kind)
    check_live_versions(store, tmp_path, "ebpf")
