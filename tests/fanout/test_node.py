"""Fanout node behaviour that needs no network: sync through a failing store."""

from __future__ import annotations

import asyncio

import pytest

from fanout import node as node_module
from fanout.client import connect, messages, request
from fanout.node import FanoutNode
from hub.bus import MemorySnapshots
from hub.config import FanoutConfig
from hub.events import BookSnapshot, BookUpdate, Instrument, Status
from hub.ops import bound_port


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


async def test_venue_status_reaches_subscribers_over_websocket() -> None:
    """A feed's stale/resynced events are forwarded to the book's subscribers, in order."""
    store = MemorySnapshots()
    await store.put_instrument(Instrument("SIM", "X", "0.01", "1"))
    await store.put(BookSnapshot("SIM", "X", 1, 0, ((100, 2),), ((101, 3),)))
    node = FanoutNode(FanoutConfig(port=0), store)
    server = await node.start()
    node.on_event(Instrument("SIM", "X", "0.01", "1"))
    node.on_event(BookUpdate("SIM", "X", 2, 0, 0, ((0, 100, 5),)))
    try:
        for _ in range(200):
            if node.streams["SIM", "X"].synced:
                break
            await asyncio.sleep(0.01)
        async with connect(f"ws://127.0.0.1:{bound_port(server)}/ws") as ws:
            await request(
                ws,
                {"op": "subscribe", "id": 1, "channels": [{"channel": "book", "symbol": "X"}]},
            )
            stream = messages(ws)
            first = await asyncio.wait_for(anext(stream), 5)
            assert first["type"] == "subscribed"
            node.on_event(Status("SIM", "X", "stale", "checksum", 0, 1))
            node.on_event(BookUpdate("SIM", "X", 3, 0, 0, ((0, 100, 9),), 3))
            node.on_event(Status("SIM", "X", "resynced", "snapshot", 0, 2))
            seen: list[tuple[str, object]] = []

            async def read() -> None:
                async for msg in stream:
                    seen.append((msg["type"], msg.get("state") or msg.get("seq")))
                    if len(seen) == 4:
                        return

            await asyncio.wait_for(read(), 5)
            assert seen == [
                ("snapshot", 2),
                ("status", "stale"),
                ("book", 3),
                ("status", "resynced"),
            ]
            assert node.stream_list()[0]["venue_status"] == "resynced"
    finally:
        await node.stop()
