"""The simulated feed without traders: what a stop leaves in the snapshot store."""

from __future__ import annotations

import asyncio

from bus.local import InProcessBus, MemorySnapshots
from hub.config import FeedConfig
from hub.events import BookUpdate
from trading.feed import Feed


def test_a_stopped_feed_stores_the_books_it_last_published() -> None:
    """Snapshots are stored every interval; one stop later the store must hold the book at
    the last published seq, not at the last interval (which a fanout client had passed)."""

    async def scenario() -> tuple[int, int]:
        bus, store = InProcessBus(), MemorySnapshots()
        queue = bus.subscribe()
        cfg = FeedConfig(symbols=("BTC-USD",), seed=3, rate=5000, snapshot_interval_ms=3_600_000)
        task = asyncio.create_task(Feed(cfg, bus, store).run())
        last = 0
        while last < 500:
            e = await queue.get()
            if isinstance(e, BookUpdate):
                last = e.seq
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        while not queue.empty():
            e = queue.get_nowait()
            if isinstance(e, BookUpdate):
                last = e.seq
        snap = await store.get("SIM", "BTC-USD")
        assert snap is not None
        return snap.seq, last

    stored, published = asyncio.run(scenario())
    assert stored == published
