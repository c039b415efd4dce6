"""A client of the hub's public WebSocket protocol that keeps exact books.

``BookMirror`` applies snapshot and book messages for one stream, checks
that seqs are contiguous, and holds prices and sizes as integer ticks and
lots (parsed exactly from the decimal strings with the stream's units).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from hub.decimals import Unit


class SequenceGap(Exception):
    """A book message did not follow the last applied seq."""


class BookMirror:
    """An exact copy of one L2 book built from the public protocol."""

    def __init__(self, tick_size: str, lot_size: str) -> None:
        self.tick = Unit(tick_size)
        self.lot = Unit(lot_size)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.seq: int | None = None
        self.snapshots = 0
        self.updates = 0

    def _set(self, side: dict[int, int], level: list[str]) -> None:
        price, size = self.tick.to_units(level[0]), self.lot.to_units(level[1])
        if size == 0:
            side.pop(price, None)
        else:
            side[price] = size

    def apply(self, msg: dict[str, Any]) -> None:
        """Apply one snapshot or book message; raise SequenceGap on a missing seq."""
        if msg["type"] == "snapshot":
            self.bids.clear()
            self.asks.clear()
            for level in msg["bids"]:
                self._set(self.bids, level)
            for level in msg["asks"]:
                self._set(self.asks, level)
            self.seq = msg["seq"]
            self.snapshots += 1
            return
        if self.seq is None or msg["seq"] <= self.seq:
            return
        if msg["seq"] != self.seq + 1:
            raise SequenceGap(f"expected seq {self.seq + 1}, got {msg['seq']}")
        for level in msg["bids"]:
            self._set(self.bids, level)
        for level in msg["asks"]:
            self._set(self.asks, level)
        self.seq = msg["seq"]
        self.updates += 1

    def depth(self, side: int) -> list[tuple[int, int]]:
        levels = self.bids if side == 0 else self.asks
        return sorted(levels.items(), reverse=(side == 0))

    def crossed(self) -> bool:
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))


async def messages(ws: ClientConnection) -> AsyncIterator[dict[str, Any]]:
    """Yield every message of every frame the server sends."""
    async for frame in ws:
        for msg in orjson.loads(frame):
            yield msg


async def request(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(orjson.dumps(message).decode())


async def mirror_for(ws: ClientConnection, symbol: str) -> BookMirror | None:
    """Ask the node which streams it has; return an empty mirror for ``symbol`` if listed."""
    await request(ws, {"op": "list"})
    async for msg in messages(ws):
        if msg["type"] == "streams":
            for s in msg["streams"]:
                if s["symbol"] == symbol and s["tick_size"]:
                    return BookMirror(s["tick_size"], s["lot_size"])
            return None
    return None


__all__ = ["BookMirror", "SequenceGap", "connect", "messages", "mirror_for", "request"]
