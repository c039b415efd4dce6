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
from collections.abc import Sequence
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
        started = last = time.monotonic()
        held = sum(q.qsize() for q in self._queues)
        while max((q.qsize() for q in self._queues), default=0) > self._high_water:
            await asyncio.sleep(0.002)
            now, before = time.monotonic(), held
            held = sum(q.qsize() for q in self._queues)
            if held < before:
                last = now
            elif now - last > self.STALL_S:
                break  # nobody took anything: the stuck one loses the overflow
        self.waited_s += time.monotonic() - started


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
