"""The in-process bus of the embedded hub and the snapshot stores.

The embedded hub runs feed and fanout in one event loop: the feed publishes
events to an ``InProcessBus`` and stores snapshots in a ``MemorySnapshots``;
the distributed hub uses Kafka and ``RedisSnapshots`` (bus.redis_store)
behind the same interfaces, so the fanout node's code is the same for both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from hub.events import BookSnapshot, Event, Instrument

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where a feed sends its sequenced events."""

    async def publish(self, events: Sequence[Event]) -> None: ...


class SnapshotStore(Protocol):
    """Holds the latest snapshot of each book, stamped with its seq."""

    async def put(self, snapshot: BookSnapshot) -> None: ...

    async def get(self, venue: str, symbol: str) -> BookSnapshot | None: ...

    async def instruments(self) -> list[Instrument]: ...

    async def put_instrument(self, instrument: Instrument) -> None: ...


class InProcessBus:
    """Fan events out to in-process subscribers through bounded queues.

    A subscriber that falls ``maxsize`` events behind loses the overflow;
    it sees the resulting seq gap and resyncs from a snapshot, exactly as a
    Kafka consumer would.

    With ``high_water`` set, ``publish`` first waits while a subscriber holds more than
    that many events: a source that sets its own pace (the simulator, a file replay) then
    runs at the speed its consumers take rather than filling their queues with data
    seconds old (a demo asked for more than the machine can do stays live, just slower).
    A subscriber that takes nothing for ``STALL_S`` is passed over (it loses the overflow
    as above), so one stuck consumer cannot stop the source. Live venues cannot be slowed
    down: their bus has no ``high_water``.
    """

    STALL_S = 5.0

    def __init__(self, maxsize: int = 100_000, high_water: int = 0) -> None:
        self._queues: list[asyncio.Queue[Event]] = []
        self._maxsize = maxsize
        self._high_water = high_water
        self.dropped = 0
        self.waited_s = 0.0
        """Seconds ``publish`` spent waiting for its subscribers (``high_water``)."""

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._maxsize)
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._queues.remove(queue)

    async def publish(self, events: Sequence[Event]) -> None:
        if self._high_water:
            await self._wait_for_room()
        for queue in self._queues:
            for event in events:
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    self.dropped += 1

    async def _wait_for_room(self) -> None:
        # A stuck subscriber loses the overflow.
        waited, _stalled = await wait_for_room(
            lambda: [q.qsize() for q in self._queues], self._high_water, self.STALL_S
        )
        self.waited_s += waited


async def wait_for_room(
    held: Callable[[], list[int]], high_water: int, stall_s: float
) -> tuple[float, bool]:
    """Wait while any of the consumers holds more than ``high_water`` (``held``: what each
    holds now), or until none has taken anything for ``stall_s``; the seconds waited, and
    whether it ended on a stall."""
    started = last = time.monotonic()
    total = sum(held())
    while max(held(), default=0) > high_water:
        await asyncio.sleep(0.002)
        now, before = time.monotonic(), total
        total = sum(held())
        if total < before:
            last = now
        elif now - last > stall_s:
            return now - started, True
    return time.monotonic() - started, False


class MemorySnapshots:
    """Snapshot store of the embedded hub."""

    def __init__(self) -> None:
        self._books: dict[tuple[str, str], BookSnapshot] = {}
        self._instruments: dict[tuple[str, str], Instrument] = {}

    async def put(self, snapshot: BookSnapshot) -> None:
        self._books[snapshot.venue, snapshot.symbol] = snapshot

    async def get(self, venue: str, symbol: str) -> BookSnapshot | None:
        return self._books.get((venue, symbol))

    async def instruments(self) -> list[Instrument]:
        return list(self._instruments.values())

    async def put_instrument(self, instrument: Instrument) -> None:
        self._instruments[instrument.venue, instrument.symbol] = instrument

    def held(self) -> tuple[list[Instrument], list[BookSnapshot]]:
        """Every instrument and latest snapshot, now (no await: nothing changes meanwhile)."""
        return list(self._instruments.values()), list(self._books.values())
