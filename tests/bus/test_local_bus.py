"""The in-process bus: a self-paced source waits for its subscribers (``high_water``),
one that never reads is passed over, and without ``high_water`` the overflow is dropped."""

from __future__ import annotations

import asyncio

from bus.local import InProcessBus
from hub.events import Trade


def trades(first: int, n: int) -> list[Trade]:
    return [Trade("B", "X", s, str(s), 100, 1, 0, 1, 2) for s in range(first, first + n)]


def seq(event: object) -> int:
    assert isinstance(event, Trade)
    return event.seq


async def test_a_self_paced_source_waits_for_a_slow_reader_and_loses_nothing() -> None:
    bus = InProcessBus(maxsize=50, high_water=10)
    queue = bus.subscribe()
    got: list[int] = []

    async def reader() -> None:
        while len(got) < 200:
            got.append(seq(await queue.get()))
            await asyncio.sleep(0.0005)  # slower than the source

    task = asyncio.create_task(reader())
    for first in range(1, 201, 5):
        await bus.publish(trades(first, 5))
        assert queue.qsize() <= 10 + 5  # never more than high water plus one batch
    await asyncio.wait_for(task, 10)
    assert got == list(range(1, 201)) and bus.dropped == 0 and bus.waited_s > 0


async def test_a_reader_that_takes_nothing_is_passed_over() -> None:
    InProcessBus.STALL_S, saved = 0.05, InProcessBus.STALL_S
    try:
        bus = InProcessBus(maxsize=20, high_water=5)
        queue = bus.subscribe()
        for first in range(1, 41, 10):
            await asyncio.wait_for(bus.publish(trades(first, 10)), 5)
        assert queue.qsize() == 20 and bus.dropped == 20  # the overflow, as without waiting
    finally:
        InProcessBus.STALL_S = saved


async def test_without_high_water_the_overflow_is_dropped_at_once() -> None:
    bus = InProcessBus(maxsize=3)
    queue = bus.subscribe()
    await bus.publish(trades(1, 5))
    assert [seq(queue.get_nowait()) for _ in range(3)] == [1, 2, 3] and bus.dropped == 2
    assert bus.waited_s == 0
