"""A fanout node fed directly with a random book stream, for tests over real sockets."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

from bus.local import MemorySnapshots
from client.market import HubClient
from fanout.node import FanoutNode
from hub.config import FanoutConfig
from hub.events import BookSnapshot, BookUpdate, Instrument, Trade
from hub.ops import bound_port

INST = Instrument("SIM", "X", "0.01", "1")
OPEN = FanoutConfig(port=0, anonymous=True, flush_ms=2)


class Market:
    """A random book stream for one symbol, with the node fed as it goes."""

    def __init__(self, node: FanoutNode, seed: int = 1) -> None:
        self.node = node
        self.rng = random.Random(seed)
        self.seq = 1
        self.trade_seq = 0
        self.bids = {10_000 - i: 5 for i in range(1, 40)}
        self.asks = {10_000 + i: 5 for i in range(0, 40)}

    def snapshot(self) -> BookSnapshot:
        return BookSnapshot(
            "SIM",
            "X",
            self.seq,
            0,
            tuple(sorted(self.bids.items(), reverse=True)),
            tuple(sorted(self.asks.items())),
        )

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            side = self.rng.randrange(2)
            levels = self.bids if side == 0 else self.asks
            best_ask, best_bid = min(self.asks), max(self.bids)
            if side == 0:
                price = best_bid - self.rng.randrange(-1, 12)
                price = min(price, best_ask - 1)
            else:
                price = best_ask + self.rng.randrange(-1, 12)
                price = max(price, best_bid + 1)
            size = 0 if (self.rng.random() < 0.35 and price in levels) else self.rng.randrange(1, 9)
            if size == 0 and len(levels) <= 1:
                size = 1
            if size:
                levels[price] = size
            else:
                levels.pop(price, None)
            self.seq += 1
            now = 1_795_000_000_000_000_000 + self.seq * 1000
            self.node.on_event(BookUpdate("SIM", "X", self.seq, now, now, ((side, price, size),)))

    def trade(self, price: int, size: int, ts: int) -> Trade:
        self.trade_seq += 1
        t = Trade("SIM", "X", self.trade_seq, str(self.trade_seq), price, size, 0, ts, ts)
        self.node.on_event(t)
        return t


async def started(
    cfg: FanoutConfig = OPEN, bars_from_trades: bool = False
) -> tuple[FanoutNode, Market, str]:
    store = MemorySnapshots()
    node = FanoutNode(cfg, store, bars_from_trades)
    server = await node.start()
    market = Market(node)
    await store.put_instrument(INST)
    await store.put(market.snapshot())
    node.on_event(INST)
    market.step()
    for _ in range(300):
        if node.streams["SIM", "X"].synced:
            break
        await asyncio.sleep(0.01)
    assert node.streams["SIM", "X"].synced
    return node, market, f"ws://127.0.0.1:{bound_port(server)}/ws"


async def until(stream: AsyncIterator[dict[str, Any]], kind: str, wait: float = 5) -> Any:
    async def read() -> dict[str, Any]:
        async for msg in stream:
            if msg["type"] == kind:
                return msg
        raise AssertionError(f"closed before a {kind!r} message")

    return await asyncio.wait_for(read(), wait)


async def catch_up(client: HubClient, node: FanoutNode, wait: float = 10) -> None:
    """Read until every book mirror reached the node's seq."""
    target = node.streams["SIM", "X"].seq

    async def read() -> None:
        async for _msg in client.messages():
            if all(b.seq == target for b in client.books.values()):
                return

    await asyncio.wait_for(read(), wait)


def top(node: FanoutNode, side: int, n: int = 0) -> list[tuple[int, int]]:
    return node.streams["SIM", "X"].book.depth(side, n)


async def more_symbols(node: FanoutNode, n: int, levels: int = 40) -> list[str]:
    """Add ``n`` synced streams S0, S1, ... (``levels`` levels a side) to a started node."""
    store = node.snapshots
    names = [f"S{i}" for i in range(n)]
    for name in names:
        inst = Instrument("SIM", name, "0.01", "1")
        await store.put_instrument(inst)
        bids = tuple((10_000 - i, 5) for i in range(1, levels + 1))
        asks = tuple((10_000 + i, 5) for i in range(levels))
        await store.put(BookSnapshot("SIM", name, 1, 0, bids, asks))
        node.on_event(inst)
        node.on_event(BookUpdate("SIM", name, 2, 0, 0, ((0, 9_000, 1),)))
    for _ in range(500):
        if all(node.streams["SIM", name].synced for name in names):
            return names
        await asyncio.sleep(0.01)
    raise AssertionError("the extra streams did not sync")
