"""Fanout node behaviour that needs no network: sync through a failing store."""

from __future__ import annotations

import asyncio

import pytest

from fanout import node as node_module
from fanout.node import FanoutNode
from hub.bus import MemorySnapshots
from hub.config import FanoutConfig
from hub.events import BookSnapshot, BookUpdate, Instrument


class FlakyStore(MemorySnapshots):
    """A snapshot store whose first reads fail, as Redis does while restarting."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def get(self, venue: str, symbol: str) -> BookSnapshot | None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("store restarting")
        return await super().get(venue, symbol)


async def test_sync_survives_store_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_module, "SYNC_RETRY", 0.01)
    store = FlakyStore(failures=3)
    await store.put_instrument(Instrument("SIM", "X", "0.01", "1"))
    await store.put(BookSnapshot("SIM", "X", 5, 0, ((100, 2),), ((101, 3),)))
    node = FanoutNode(FanoutConfig(), store)
    node.on_event(BookUpdate("SIM", "X", 6, 0, 0, ((0, 100, 7),)))
    stream = node.streams["SIM", "X"]
    for _ in range(200):
        if stream.synced:
            break
        await asyncio.sleep(0.01)
    assert stream.synced and store.failures == 0
    assert stream.seq == 6
    assert stream.book.depth(0) == [(100, 7)] and stream.book.depth(1) == [(101, 3)]
    await node.stop()
