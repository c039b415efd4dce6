"""The runner's ordered publishing: one publish in flight, the events parsed meanwhile
coalesced into the next, a bounded backlog, errors raised to the frame loop."""

from __future__ import annotations

import asyncio

import pytest

from feedhandler.venues.coalesce import Coalescer
from hub.events import Event, Status


def ev(n: int) -> Event:
    return Status("CO", "X", "live", str(n), n, n)


class Gate:
    """A publisher whose every publish waits for the test to open it."""

    def __init__(self, fail_at: int = 0) -> None:
        self.batches: list[list[int]] = []
        self.opened = asyncio.Semaphore(0)
        self.fail_at = fail_at

    async def publish(self, events: list[Event]) -> None:
        await self.opened.acquire()
        batch = [e.ts_event for e in events if isinstance(e, Status)]
        if self.fail_at and self.fail_at in batch:
            raise ConnectionError(f"publish of {batch} failed")
        self.batches.append(batch)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_events_parsed_during_a_publish_go_out_together_next_in_order() -> None:
    gate = Gate()
    out = Coalescer(gate.publish)
    await out.put([ev(1)])
    await settle()  # 1 is in flight, waiting for its ack
    for n in (2, 3, 4):
        await out.put([ev(n)])  # none of these waits
    assert gate.batches == [] and out.queued == 4
    gate.opened.release()
    await settle()
    gate.opened.release()
    await out.flush()
    assert gate.batches == [[1], [2, 3, 4]] and out.batches == 2 and out.sent == 4


async def test_a_backlog_over_the_limit_waits_for_the_publish_in_flight() -> None:
    gate = Gate()
    out = Coalescer(gate.publish, limit=2)
    await out.put([ev(1)])
    await settle()
    await out.put([ev(2), ev(3)])  # at the limit: no wait
    blocked = asyncio.create_task(out.put([ev(4)]))
    await settle()
    assert not blocked.done()  # 3 waiting > 2
    gate.opened.release()  # 1 lands, the backlog is taken into the next publish
    await settle()
    assert blocked.done() and gate.batches == [[1]]
    gate.opened.release()
    await out.flush()
    assert gate.batches == [[1], [2, 3, 4]]


async def test_a_failed_publish_is_raised_to_the_next_put_and_to_flush() -> None:
    gate = Gate(fail_at=2)
    out = Coalescer(gate.publish)
    await out.put([ev(1)])
    await settle()
    await out.put([ev(2)])
    gate.opened.release()
    gate.opened.release()
    await settle()
    with pytest.raises(ConnectionError, match=r"publish of \[2\] failed"):
        await out.put([ev(3)])
    with pytest.raises(ConnectionError):
        await out.flush()
    assert gate.batches == [[1]]


async def test_close_drops_the_backlog_and_ends_the_publisher() -> None:
    gate = Gate()
    out = Coalescer(gate.publish)
    await out.put([ev(1)])
    await settle()
    await out.put([ev(2)])
    await out.close()
    await out.flush()  # nothing left to wait for
    gate.opened.release()
    await settle()
    assert gate.batches == []
