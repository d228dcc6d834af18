"""AuditdSource.chunks: a binary file (read in blocks) and its lines give the same chunks."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ursprung_graph.collectors.auditd import records
from ursprung_graph.collectors.auditd.source import AuditdSource

DATA = Path(__file__).resolve().parents[1] / "data"


def chunks(lines: object, min_events: int) -> list[tuple]:
    source = AuditdSource("h")
    return [(c.offset, c.records, c.events, c.dead)
            for c in source.chunks(lines, 7, "w", min_events=min_events)]  # type: ignore[arg-type]


@pytest.mark.parametrize("cut", [False, True])
@pytest.mark.parametrize("block", [64, 1 << 16])
def test_file_and_lines_give_the_same_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int, cut: bool
) -> None:
    monkeypatch.setattr(records, "BLOCK", block)
    data = (DATA / "pipeline.audit.log").read_bytes()[:600_000]
    data = data[: data.rindex(b"\n") + 1]
    if cut:  # a last line cut off while being written, and junk with a NUL
        data += b"garbage\x00\n" + data[:150]
    f = tmp_path / "audit.log"
    f.write_bytes(data)
    lines = data.splitlines(keepends=True)
    expected = chunks(lines, 20)
    assert len(expected) >= 4
    assert expected[-1][0] == 7 + len(data)
    assert sum(c[1] for c in expected) == sum(1 for ln in lines if ln.startswith(b"type="))
    with open(f, "rb") as fh:
        assert chunks(fh, 20) == expected
    assert chunks(io.BytesIO(data), 20) == expected
