"""InFlight, the collector's ordered delivery: nothing is delivered after a failed delivery,
so a checkpoint never moves past a chunk that did not arrive."""

from __future__ import annotations

import threading

import pytest

from ursprung_graph.pipeline.sinks import InFlight


class BrokerDown(RuntimeError):
    pass


def test_no_delivery_after_a_failed_one() -> None:
    """A brief broker error on chunk 1, then chunk 2 would succeed and move the checkpoint
    past chunk 1: it must not run, and the error reaches the caller."""
    delivered: list[int] = []
    checkpoint: list[int] = []
    gate = threading.Event()  # chunk 1 fails only once chunk 2 is queued behind it

    def chunk(n: int, fail: bool = False):  # type: ignore[no-untyped-def]
        def deliver() -> None:
            if fail:
                assert gate.wait(10)
                raise BrokerDown(f"chunk {n}: broker unavailable")
            delivered.append(n)
            checkpoint.append(n)  # what follows a delivery: the checkpoint moves
        return deliver

    inflight = InFlight(depth=4)
    inflight.submit(chunk(0))
    inflight.submit(chunk(1, fail=True))
    inflight.submit(chunk(2))
    gate.set()
    with pytest.raises(BrokerDown, match="chunk 1"):
        inflight.wait()
    assert delivered == [0] and checkpoint == [0]


def test_deliveries_run_in_order() -> None:
    delivered: list[int] = []
    inflight = InFlight(depth=2)
    for n in range(20):
        inflight.submit(lambda n=n: delivered.append(n))
    inflight.wait()
    assert delivered == list(range(20))
