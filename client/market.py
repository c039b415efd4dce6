"""An asyncio client of the hub's public WebSocket protocol that keeps exact books.

``BookMirror`` applies snapshot and book messages of one book subscription,
checks seq ranges and checksums, and holds prices and sizes as integer ticks
and lots (parsed exactly from the decimal strings with the stream's units).
Seqs count within an epoch: a delta of another epoch than the mirror's snapshot
is not applied (a fresh snapshot of the new epoch follows it). On a full book the
checksum is the source's (the feed's own book after the update), so the mirror
verifies the book the source had, not merely the node's copy.

``HubClient`` connects (API key, token or anonymous), subscribes, keeps a
mirror per book, pings, and on a lost connection reconnects and resumes each
book and trades subscription from the last (epoch, seq) it applied
(``resume_from``, ``epoch``): the node replays what it missed or sends a fresh
snapshot (trades: what it still holds, ``gap`` when that is not all), and the
client is told which happened. Trades are delivered once each: a trade whose
(epoch, seq) was delivered before is dropped. Iterate ``client.messages()`` for
every message after it has been applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from hub.decimals import Unit
from hub.errors import BadInput
from orderbook_core.types import CHECKSUM_LEVELS
from orderbook_core.types import checksum as book_checksum

TRADE_EPOCHS_KEPT = 16
"""Epochs per stream whose last delivered trade seq the client remembers (for dedupe)."""


class SequenceGap(BadInput):
    """A book message did not follow the last applied seq."""


class ChecksumMismatch(BadInput):
    """The mirror's top levels do not hash to the checksum the node sent."""


class BookMirror:
    """An exact copy of one L2 book (or its top ``depth`` levels) built from the protocol."""

    def __init__(self, tick_size: str, lot_size: str, depth: int = 0) -> None:
        self.tick = Unit(tick_size)
        self.lot = Unit(lot_size)
        self.top_n = depth
        """Levels per side the subscription holds (0: the full book)."""
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.seq: int | None = None
        self.epoch = 0
        """The epoch of ``seq`` (the last snapshot's)."""
        self.snapshots = 0
        self.updates = 0
        self.other_epoch = 0
        """Deltas not applied: of another epoch than the mirror's."""
        self.checksums = 0
        """Checksums verified."""
        self._tops: list[list[tuple[int, int]] | None] = [None, None]
        """Per side, its best CHECKSUM_LEVELS levels while no change touched them."""

    def _set(self, side: int, level: list[str]) -> None:
        price, size = self.tick.to_units(level[0]), self.lot.to_units(level[1])
        top = self._tops[side]
        if top is not None and (
            len(top) < CHECKSUM_LEVELS
            or (price >= top[-1][0] if side == 0 else price <= top[-1][0])
        ):
            self._tops[side] = None  # the change may be within the cached top levels
        levels = self.bids if side == 0 else self.asks
        if size == 0:
            levels.pop(price, None)
        else:
            levels[price] = size

    def apply(self, msg: dict[str, Any]) -> bool:
        """Apply one snapshot or book message (False if it was already applied); raise
        SequenceGap on a missing range and ChecksumMismatch on a wrong book."""
        if msg["type"] == "snapshot":
            self.bids.clear()
            self.asks.clear()
            self._tops = [None, None]
            self.snapshots += 1
            self.epoch = msg.get("epoch", 0)
        else:
            if msg.get("epoch", 0) != self.epoch:
                self.other_epoch += 1
                return False
            if self.seq is None or msg["seq"] <= self.seq:
                return False
            first = msg.get("first", msg["seq"])
            if first > self.seq + 1:
                raise SequenceGap(f"expected a message from seq {self.seq + 1}, got {first}")
            self.updates += 1
        for level in msg["bids"]:
            self._set(0, level)
        for level in msg["asks"]:
            self._set(1, level)
        self.seq = msg["seq"]
        if "checksum" in msg:
            n = min(self.top_n or CHECKSUM_LEVELS, CHECKSUM_LEVELS)
            mine = book_checksum(self.top(0, n), self.top(1, n))
            if mine != msg["checksum"]:
                raise ChecksumMismatch(
                    f"{msg.get('symbol')} seq {self.seq}: checksum {mine} != {msg['checksum']}"
                )
            self.checksums += 1
        return True

    def depth(self, side: int) -> list[tuple[int, int]]:
        levels = self.bids if side == 0 else self.asks
        return sorted(levels.items(), reverse=(side == 0))

    def top(self, side: int, n: int) -> list[tuple[int, int]]:
        """The best ``n`` levels of a side, best first, without sorting the whole side (a
        full book of tens of thousands of levels is checksummed on every message, most of
        whose changes are below its top levels)."""
        levels = self.bids if side == 0 else self.asks
        pick = heapq.nlargest if side == 0 else heapq.nsmallest
        if n > CHECKSUM_LEVELS:
            return pick(n, levels.items())
        top = self._tops[side]
        if top is None:
            top = self._tops[side] = pick(CHECKSUM_LEVELS, levels.items())
        return top[:n]

    def crossed(self) -> bool:
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))

    def best(self, side: int) -> tuple[str, str] | None:
        levels = self.depth(side)
        if not levels:
            return None
        return self.tick.to_str(levels[0][0]), self.lot.to_str(levels[0][1])


class OrderBookMismatch(BadInput):
    """An order-level change does not fit the mirror (an unknown order, a size that grows
    in place): the mirror no longer equals the hub's book."""


class OrderMirror:
    """An exact copy of one order-level (L3) book built from ``l3_snapshot`` and ``l3``
    messages: every resting order with its size, each price level in queue order."""

    def __init__(self, tick_size: str, lot_size: str) -> None:
        self.tick = Unit(tick_size)
        self.lot = Unit(lot_size)
        self.orders: dict[str, tuple[int, int, int]] = {}
        """order id -> (side, price ticks, size lots)."""
        self.queues: tuple[dict[int, dict[str, None]], dict[int, dict[str, None]]] = ({}, {})
        """Per side: price -> the level's order ids in queue order."""
        self.seq: int | None = None
        self.epoch = 0
        self.snapshots = 0
        self.updates = 0

    def _clear(self) -> None:
        self.orders.clear()
        self.queues[0].clear()
        self.queues[1].clear()

    def _add(self, side: int, price: int, size: int, oid: str) -> None:
        if oid in self.orders or size <= 0:
            raise OrderBookMismatch(f"seq {self.seq}: add of order {oid} ({size} lots)")
        self.orders[oid] = (side, price, size)
        self.queues[side].setdefault(price, {})[oid] = None

    def _remove(self, oid: str) -> None:
        side, price, _size = self._order(oid)
        del self.orders[oid]
        queue = self.queues[side][price]
        del queue[oid]
        if not queue:
            del self.queues[side][price]

    def _order(self, oid: str) -> tuple[int, int, int]:
        order = self.orders.get(oid)
        if order is None:
            raise OrderBookMismatch(f"seq {self.seq}: order {oid} is not in the book")
        return order

    def apply(self, msg: dict[str, Any]) -> bool:
        """Apply one l3_snapshot or l3 message (False if it was already applied); raise
        SequenceGap on a missing range and OrderBookMismatch on a change that cannot be."""
        if msg["type"] == "l3_snapshot":
            self._clear()
            for side, key in ((0, "bids"), (1, "asks")):
                for price, size, oid in msg[key]:
                    self._add(side, self.tick.to_units(price), self.lot.to_units(size), oid)
            self.seq = msg["seq"]
            self.epoch = msg.get("epoch", 0)
            self.snapshots += 1
            return True
        if self.seq is None or msg["seq"] <= self.seq or msg.get("epoch", 0) != self.epoch:
            return False
        if msg["first"] > self.seq + 1:
            raise SequenceGap(f"expected an l3 message from seq {self.seq + 1}, got {msg['first']}")
        for change in msg["orders"]:
            action = change[0]
            if action == "clear":
                self._clear()
                continue
            side = 0 if change[1] == "bid" else 1
            price, size = self.tick.to_units(change[2]), self.lot.to_units(change[3])
            oid = change[4]
            if action == "add":
                self._add(side, price, size, oid)
            elif action == "delete":
                self._remove(oid)
            else:
                old = self._order(oid)
                if (old[0], old[1]) != (side, price) or not 0 < size < old[2]:
                    raise OrderBookMismatch(f"seq {self.seq}: update of {oid} to {size} lots")
                self.orders[oid] = (side, price, size)
        self.seq = msg["seq"]
        self.updates += 1
        return True

    def resting(self) -> list[tuple[int, int, int, str]]:
        """Every order as (side, price ticks, size lots, id): bids best first, then asks,
        each level in queue order (the order of ``BookSnapshot.orders``)."""
        return [
            (side, price, self.orders[oid][2], oid)
            for side in (0, 1)
            for price in sorted(self.queues[side], reverse=(side == 0))
            for oid in self.queues[side][price]
        ]

    def queue(self, side: int, price: int) -> list[tuple[str, int]]:
        """One level's orders in queue order, as (order id, size lots)."""
        return [(oid, self.orders[oid][2]) for oid in self.queues[side].get(price, {})]

    def depth(self, side: int) -> list[tuple[int, int]]:
        """The L2 book these orders add up to, best price first."""
        prices = sorted(self.queues[side], reverse=(side == 0))
        return [(p, sum(self.orders[oid][2] for oid in self.queues[side][p])) for p in prices]


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


def _ws_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path if parts.path not in ("", "/") else "/ws"))


def _key(msg: dict[str, Any]) -> tuple[str, str]:
    return msg["venue"], msg["symbol"]


class HubClient:
    """A resuming client: ``async with HubClient(url) as c: await c.subscribe([...])``."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        deflate: bool = False,
        ping_s: float = 15.0,
        reconnect: bool = True,
        others: list[str] | None = None,
    ) -> None:
        self.urls = [_ws_url(u) for u in [url, *(others or [])]]
        """Nodes to try in turn when the connection is lost."""
        self.url = self.urls[0]
        self.token = token
        self.deflate = deflate
        self.ping_s = ping_s
        self.reconnect = reconnect
        self.ws: ClientConnection | None = None
        self.streams: dict[tuple[str, str], dict[str, Any]] = {}
        self.books: dict[tuple[str, str], BookMirror] = {}
        self.order_books: dict[tuple[str, str], OrderMirror] = {}
        self.trades: dict[tuple[str, str], dict[int, int]] = {}
        """Per stream, the last trade seq delivered in each epoch."""
        self.duplicates = 0
        """Trades dropped as delivered before (a resume or fail-over sent them again)."""
        self.channels: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] = {}
        self.reconnects = 0
        self._ids = 0
        self._pinger: asyncio.Task[None] | None = None
        self._backlog: list[dict[str, Any]] = []

    async def __aenter__(self) -> HubClient:
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        url = self.url
        if self.deflate:
            url += ("&" if "?" in url else "?") + "deflate=1"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        self.ws = await connect(
            url,
            additional_headers=headers,
            compression="deflate" if self.deflate else None,
            max_size=None,
            max_queue=None,
        )
        self.welcome = await self._expect("welcome")
        await self.list_streams()
        if self._pinger is None or self._pinger.done():
            self._pinger = asyncio.create_task(self._ping())

    async def list_streams(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The node's streams now (``streams``, by (venue, symbol))."""
        for s in (await self.request({"op": "list"}, "streams"))["streams"]:
            self.streams[s["venue"], s["symbol"]] = s
        return self.streams

    async def close(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
        if self.ws is not None:
            await self.ws.close()

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self.ping_s)
            with contextlib.suppress(ConnectionClosed, AttributeError):
                assert self.ws is not None
                await self.ws.send(orjson.dumps({"op": "ping"}).decode())

    async def _expect(self, kind: str, ident: Any = None) -> dict[str, Any]:
        """Read until a message of ``kind`` (with ``id``) arrives; keep the others."""
        assert self.ws is not None
        found: dict[str, Any] | None = None
        while found is None:
            for msg in orjson.loads(await self.ws.recv()):
                if found is None and msg["type"] == kind and msg.get("id") == ident:
                    found = msg
                else:
                    self._backlog.append(msg)
        return found

    async def request(self, message: dict[str, Any], answer: str) -> dict[str, Any]:
        assert self.ws is not None
        self._ids += 1
        message = {**message, "id": self._ids}
        await self.ws.send(orjson.dumps(message).decode())
        return await self._expect(answer, self._ids)

    async def subscribe(self, channels: list[dict[str, Any]]) -> dict[str, Any]:
        """Subscribe; books (L2 and L3) get a mirror each. Returns the node's answer."""
        answer = await self.request({"op": "subscribe", "channels": channels}, "subscribed")
        for item in answer["accepted"]:
            key = item["venue"], item["symbol"]
            if key not in self.streams:  # a stream new since the list at connect
                await self.list_streams()
            s = self.streams[key]
            if item["channel"] == "book":
                self.books[key] = BookMirror(s["tick_size"], s["lot_size"], item.get("depth", 0))
            elif item["channel"] == "l3":
                self.order_books[key] = OrderMirror(s["tick_size"], s["lot_size"])
            wanted = {k: v for k, v in item.items() if k not in ("resume", "replayed", "epoch")}
            if wanted not in self.channels:
                self.channels.append(wanted)
        return answer

    async def _resume(self) -> dict[str, Any]:
        """Reconnect (to the next node in ``urls``) and subscribe again, each book and
        trades subscription from the last (epoch, seq) it applied."""
        self.reconnects += 1
        self.url = self.urls[self.reconnects % len(self.urls)]
        await self.connect()
        channels = []
        for item in self.channels:
            key = item["venue"], item["symbol"]
            seq, epoch = None, 0
            if item["channel"] == "book" and key in self.books:
                seq, epoch = self.books[key].seq, self.books[key].epoch
            elif item["channel"] == "l3" and key in self.order_books:
                seq, epoch = self.order_books[key].seq, self.order_books[key].epoch
            elif item["channel"] == "trades" and self.trades.get(key):
                epoch = next(reversed(self.trades[key]))  # the epoch delivered last
                seq = self.trades[key][epoch]
            if seq is not None:
                channels.append({**item, "resume_from": seq, "epoch": epoch})
            else:
                channels.append(item)
        return await self.request({"op": "subscribe", "channels": channels}, "subscribed")

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        """Every message, after its book (if any) has been applied. After a reconnect the
        resubscription's answer comes as ``{"type": "resumed", ...}``."""
        while True:
            while self._backlog:
                msg = self._apply(self._backlog.pop(0))
                if msg is not None:
                    yield msg
            try:
                assert self.ws is not None
                frame = await self.ws.recv()
            except ConnectionClosed:
                if not self.reconnect:
                    return
                while True:
                    try:
                        answer = await self._resume()
                        break
                    except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                        await asyncio.sleep(0.2)
                yield {**answer, "type": "resumed", "at": time.time_ns()}
                continue
            # Through the backlog: a caller that stops iterating mid-frame (a timeout, a
            # break) leaves the frame's other messages for its next messages().
            self._backlog.extend(orjson.loads(frame))

    def _apply(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        """Apply a message to its mirror; None for a trade delivered before."""
        if msg["type"] == "trade":
            seen = self.trades.setdefault(_key(msg), {})
            epoch, seq = msg.get("epoch", 0), msg["seq"]
            if seq <= seen.get(epoch, 0):
                self.duplicates += 1
                return None
            seen.pop(epoch, None)
            seen[epoch] = seq  # the epoch delivered last is the last key
            if len(seen) > TRADE_EPOCHS_KEPT:
                del seen[next(iter(seen))]
        elif msg["type"] in ("snapshot", "book"):
            book = self.books.get(_key(msg))
            if book is not None:
                book.apply(msg)
        elif msg["type"] in ("l3_snapshot", "l3"):
            orders = self.order_books.get(_key(msg))
            if orders is not None:
                orders.apply(msg)
        return msg


__all__ = [
    "BookMirror",
    "ChecksumMismatch",
    "HubClient",
    "OrderBookMismatch",
    "OrderMirror",
    "SequenceGap",
    "connect",
    "messages",
    "mirror_for",
    "request",
]
