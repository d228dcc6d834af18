"""Where gaps come from: auditctl -s (real output), auditd's DAEMON_* records and cut-off
events (a real log with an auditd restart and kernel losses), the lost-counter sampler and
the restart marker of a collector."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ursprung_graph.collectors.auditd.daemon import daemon_lines, parse_daemon, record_time
from ursprung_graph.collectors.auditd.source import AuditdSource, normalize_file
from ursprung_graph.collectors.auditd.status import StatusError, parse_status
from ursprung_graph.collectors.source import Chunk
from ursprung_graph.pipeline.gap_watch import GapWatch, LostCounter, auditctl_status
from ursprung_graph.schema.event import Event, GapWindow, Kind

DATA = Path(__file__).resolve().parent.parent / "data"
LOG = DATA / "gaps.audit.log"
#: DAEMON_END and the DAEMON_START of the restarted auditd in gaps.audit.log (lines 521-522)
STOPPED, RESUMED = 1796127675_250_000_000, 1796127675_825_000_000


def test_auditctl_status_is_parsed_from_real_output() -> None:
    before = parse_status((DATA / "auditctl-s.before.txt").read_text())
    after = parse_status((DATA / "auditctl-s.after.txt").read_text())
    assert (before.lost, before.backlog_limit, before.enabled, before.pid) == (3, 8192, 0, 0)
    assert after.lost == 14697
    with pytest.raises(StatusError, match="lost"):
        parse_status("enabled 1\npid 4\n")
    with pytest.raises(StatusError, match="not a number"):
        parse_status("lost many\n")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("auditctl") is None,
                    reason="auditctl -s needs root and the auditd package")
def test_the_real_counter_is_read() -> None:
    status = parse_status(auditctl_status())
    assert status.lost >= 0 and status.backlog_limit > 0


def test_daemon_records_of_a_real_restart() -> None:
    data = LOG.read_bytes()
    records = list(daemon_lines(data, 0))
    assert [(r.rtype, r.kind) for r in records] == [
        ("DAEMON_START", "resume"), ("DAEMON_END", "stop"), ("DAEMON_START", "resume"),
        ("DAEMON_END", "stop")]
    assert (records[1].ts, records[2].ts) == (STOPPED, RESUMED)
    assert records[1].what == "auditd end (op=terminate, res=success)"
    lines = data.splitlines(keepends=True)
    assert records[1].end == sum(len(x) for x in lines[:521])  # just after line 521
    # auditd 2.4 (RHEL 7) wrote words instead of op=
    old = parse_daemon(b"type=DAEMON_END msg=audit(1481078697.892:7799): auditd normal halt, "
                       b"sending auid=? pid=? subj=? res=success")
    assert old is not None and old.kind == "stop" and old.ts == 1481078697_892_000_000
    rotate = parse_daemon(b"node=n1 type=DAEMON_ROTATE msg=audit(1.5:2): op=rotate-logs "
                          b"auid=0 res=success")
    assert rotate is not None and (rotate.kind, rotate.node) == ("note", "n1")
    assert parse_daemon(b"type=DAEMON_CONFIG msg=audit(1.5:2): op=reconfigure") is None
    assert parse_daemon(b"type=SYSCALL msg=audit(1.5:2): arch=c000003e") is None
    assert record_time(b"type=PATH msg=audit(1796127675.984:838459): item=0") == \
        1796127675_984_000_000
    assert record_time(b"\x00\x01 junk") is None


def _gaps(events: list) -> list[Event]:
    return [e for e in events if isinstance(e, Event) and e.kind is Kind.GAP]


def test_the_real_log_gives_daemon_and_truncation_gaps() -> None:
    gaps = _gaps(list(normalize_file(str(LOG), "h1")))
    daemon = [(g.ts, g.window) for g in gaps if g.window and g.window.source == "auditd-daemon"]
    assert daemon == [
        (1796127674_620_000_000, GapWindow(source="auditd-daemon", resumes=True)),
        (STOPPED, GapWindow(source="auditd-daemon")),
        (RESUMED, GapWindow(source="auditd-daemon", resumes=True)),
        (1796127679_124_000_000, GapWindow(source="auditd-daemon")),
    ]
    cut = [g for g in gaps if g.window and g.window.source == "truncated-event"]
    assert len(cut) == 286
    assert all(RESUMED < g.ts < 1796127677_700_000_000 and g.window.end == g.ts for g in cut)
    assert cut[0].gap == "truncated event serial 838459: 1 of 2 PATH records (execve)"


def test_daemon_records_keep_their_place_however_the_log_is_cut() -> None:
    """Fed in blocks of any size, the daemon gaps come out the same and in the chunk of
    the line after them (a checkpoint never passes a DAEMON_* line not yet delivered)."""
    data = LOG.read_bytes()
    whole = [(g.ts, g.window) for g in _gaps(list(normalize_file(str(LOG), "h1")))]
    for size in (1000, 4096, 65536):
        source, out = AuditdSource("h1"), Chunk()
        i = 0
        while i < len(data):  # blocks of whole lines, as the follower feeds them
            cut = data.rfind(b"\n", i, i + size) + 1 or data.find(b"\n", i) + 1
            for end, _ in source.feed_block(data[i:cut], i, "x", out):
                seen = [g for g in _gaps(out.events) if g.window.source == "auditd-daemon"]
                assert len(seen) == len(list(daemon_lines(data[:end], 0)))
            i = cut
        source.flush("x", out)
        assert [(g.ts, g.window) for g in _gaps(out.events)] == whole


class Readings:
    """auditctl -s as it read on this machine before and after the burst of the recording,
    in turn, the last one again after that (the kernel's counter cannot be made to grow in
    a test without losing other people's records)."""

    def __init__(self, *names: str) -> None:
        self.texts = [(DATA / n).read_text() for n in names]

    def __call__(self) -> str:
        return self.texts.pop(0) if len(self.texts) > 1 else self.texts[0]


def test_a_growing_lost_counter_is_a_gap_between_the_samples() -> None:
    times = iter([100, 200, 300])
    counter = LostCounter("h1", 10.0, read=Readings("auditctl-s.before.txt",
                                                    "auditctl-s.after.txt",
                                                    "auditctl-s.before.txt"),
                          clock=lambda: next(times), monotonic=lambda: 0.0)
    assert counter.sample(force=True) is None  # the baseline
    assert counter.sample() is None  # not due: the reading is not even taken
    gap = counter.sample(force=True)
    assert gap is not None and gap.kind is Kind.GAP and gap.host == "h1" and gap.ts == 100
    assert gap.window == GapWindow(source="auditd-lost-counter", end=200, count=14694)
    assert counter.sample(force=True) is None  # went down (reset): a new baseline


def test_an_unreadable_counter_stops_sampling_with_a_warning(caplog) -> None:
    def fail() -> str:
        raise subprocess.CalledProcessError(1, ["auditctl", "-s"], stderr="Operation not permitted")

    counter = LostCounter("h1", 0.0, read=fail)
    assert counter.sample(force=True) is None and not counter.working
    assert "cannot be read" in caplog.text
    assert counter.sample(force=True) is None


def test_gap_watch_marks_a_restart_and_samples_while_idle() -> None:
    counter = LostCounter("h1", 0.0, read=Readings("auditctl-s.before.txt",
                                                   "auditctl-s.after.txt"))
    watch = GapWatch(AuditdSource("h1"), "h1", restart=True, lost=counter)
    out = Chunk()
    data = LOG.read_bytes()[:100000]
    data = data[:data.rfind(b"\n") + 1]
    restarts = lambda: [e for e in out.events  # noqa: E731
                        if e.window and e.window.source == "collector-restart"]
    list(watch.feed_block(data, 0, "x", out))
    (restart,) = restarts()
    # at the earliest record read after the restart, so a second restart marks the same gap
    first = min(e.ts for e in out.events if e.kind is not Kind.GAP)
    assert restart.ts == first and restart.window == GapWindow(source="collector-restart",
                                                               since_last_seen=True)
    list(watch.feed_block(data, 0, "x", out))
    watch.flush("x", out)
    assert len(restarts()) == 1
    watch.idle("x", out, 0.0)
    (lost,) = [e for e in out.events if e.window and e.window.source == "auditd-lost-counter"]
    assert lost.window.count == 14694
    assert watch.records == watch.inner.records > 0 and watch.kind == "auditd"
    resumed = GapWatch(AuditdSource("h1"), "h1", restart=False)
    again = Chunk()
    list(resumed.feed_block(data, 0, "x", again))
    assert not [e for e in again.events if e.window and e.window.source == "collector-restart"]
