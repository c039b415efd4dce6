"""Coinbase Exchange ``full`` channel: every order's life (received, open, done, match,
change), synced with the REST level-3 snapshot, giving an exact L2 book.

Each product numbers its messages with ``sequence``. The documented sync:
buffer messages, GET ``/products/<id>/book?level=3`` (``sequence`` and every
resting order as ``[price, size, order_id]``), drop buffered messages at or
below the snapshot's sequence, apply the rest; any later message whose
sequence is not the previous one + 1 is a gap and the product is resynced.

Orders are kept by id with their side, price and open size; the L2 level
sizes follow from them exactly and go out through the shared sync engine as
level changes (so the published stream is the same as every other venue's).
``received`` and ``activate`` do not touch the book (an order rests only once
``open``); ``match`` reduces the maker and is a public trade whose aggressor
is the taker (the side given is the maker's); ``change`` resizes a resting
order; ``done`` removes it.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Any
from urllib.parse import urlparse

from feedhandler.frames import (
    INT64_MAX,
    MalformedFrame,
    as_dict,
    as_list,
    as_str,
    count,
    iso_time,
    row,
    units,
)
from feedhandler.frames import field as need
from feedhandler.sync import BUFFER_LIMIT, BookSync, Delta, Snapshot
from feedhandler.venues.coinbase import VENUE, CoinbaseParser
from feedhandler.venues.coinbase_auth import CoinbaseCredentials
from hub.events import Event, LevelChange

log = logging.getLogger(__name__)

Order = tuple[int, int, int]  # side, price ticks, open size lots
FULL_TYPES = frozenset({"received", "open", "done", "match", "change", "activate"})


@dataclass
class ProductL3:
    orders: dict[str, Order] = field(default_factory=dict)
    levels: dict[tuple[int, int], int] = field(default_factory=dict)
    sequence: int = -1
    synced: bool = False
    # messages while waiting for a snapshot: the oldest leave past BUFFER_LIMIT, and the
    # first one kept after the snapshot's sequence then shows the loss as a gap
    buffer: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=BUFFER_LIMIT))

    def level_change(self, side: int, price: int, by: int) -> LevelChange:
        """The level's new size; one below zero or past int64 is a contradiction."""
        size = self.levels.get((side, price), 0) + by
        if not 0 <= size <= INT64_MAX:
            raise MalformedFrame("inconsistent", f"level at {price} would hold {size}")
        if size:
            self.levels[side, price] = size
        else:
            self.levels.pop((side, price), None)
        return (side, price, size)


class CoinbaseL3Parser(CoinbaseParser):
    """Frames of the Exchange ``full`` channel and level-3 REST snapshots in, events out."""

    chained = True  # each product numbers its messages: a lost one is a gap

    def __init__(self, credentials: CoinbaseCredentials | None = None) -> None:
        super().__init__("exchange", credentials)
        self.l3: dict[str, ProductL3] = {}

    def subscribe(self, symbols: list[str]) -> list[str]:
        if self.credentials is None:
            log.warning(
                "Coinbase Exchange refuses unsigned full-channel subscriptions; set "
                "COINBASE_API_KEY, COINBASE_API_SECRET and COINBASE_API_PASSPHRASE",
                extra={"venue": self.venue},
            )
        return self._requests("subscribe", symbols, ("full", "heartbeat"))

    def recover(self, symbols: list[str]) -> list[str]:
        return []  # snapshots come over REST

    def snapshot_urls(self, rest: str, symbols: list[str]) -> list[str]:
        return [f"{rest}/products/{s}/book?level=3" for s in symbols]

    def _product(self, product: str) -> ProductL3:
        self._touch(product)
        state = self.l3.get(product)
        if state is None:
            state = self.l3[product] = ProductL3()
            self._list(product)
            self.books[product] = BookSync(VENUE, product, continuous=True)
            self.books[product].sink = self._emitted
        return state

    def resync(self, symbol: str, reason: str, ts_recv: int) -> list[Event]:
        """Forget the product's orders until a fresh level-3 snapshot."""
        state = self.l3.get(symbol)
        if state is not None:
            state.synced = False
            state.buffer.clear()
        return super().resync(symbol, reason, ts_recv)

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        path = urlparse(url).path
        if not path.endswith("/book"):
            return super()._http(url, body, ts_recv)
        product = path.split("/")[-2]
        try:
            data = self._json(body)
            tick, lot = self.units_for(product)
            orders: dict[str, Order] = {}
            for side, key in ((0, "bids"), (1, "asks")):
                for item in as_list(need(data, key), key):
                    price, size, order_id = row(item, 3, "order")[:3]
                    orders[as_str(order_id, "order id")] = (
                        side,
                        units(tick, price, "price", positive=True),
                        units(lot, size, "size", positive=True),
                    )
            sequence = count(need(data, "sequence"), "sequence")
            levels: dict[tuple[int, int], int] = {}
            for side, price, size in orders.values():
                levels[side, price] = levels.get((side, price), 0) + size
        except MalformedFrame as exc:
            raise exc.on() from None  # a refused snapshot changes no book
        state = self._product(product)
        state.orders, state.levels = orders, levels
        state.sequence, state.synced = sequence, True
        sync = self.books[product]
        snapshot = Snapshot(tuple((s, p, size) for (s, p), size in levels.items()), seq=sequence)
        try:
            out = sync.snapshot(snapshot, ts_recv)
        except MalformedFrame as exc:  # a level past int64: summed from orders that each fit
            state.synced = False
            raise exc.on(product) from None
        pending, state.buffer = state.buffer, deque(maxlen=BUFFER_LIMIT)
        for i, msg in enumerate(pending):
            if msg["sequence"] > sequence:
                try:
                    out += self._apply(product, state, msg, ts_recv)
                except MalformedFrame as exc:
                    return out + self.malformed_input(str(msg), exc.on(product), ts_recv)
                if not state.synced:  # a gap: the rest waits for the next snapshot
                    state.buffer.extend(islice(pending, i + 1, None))
                    break
        return out

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        msg = as_dict(self._json(text), "a frame")
        kind = msg.get("type")
        if kind in ("subscriptions", "heartbeat"):
            return []
        if kind == "error":
            raise MalformedFrame("venue", f"venue error: {str(msg.get('message'))[:80]}", ())
        product = as_str(need(msg, "product_id"), "product_id")
        msg["sequence"] = count(need(msg, "sequence"), "sequence")
        state = self._product(product)
        if not state.synced:
            state.buffer.append(msg)
            return []
        try:
            return self._apply(product, state, msg, ts_recv)
        except MalformedFrame as exc:
            raise exc.on(product) from None

    def _apply(
        self, product: str, state: ProductL3, msg: dict[str, Any], ts_recv: int
    ) -> list[Event]:
        """Apply one sequenced message. A ``MalformedFrame`` from here may leave the
        product's orders half changed: the caller resyncs the product."""
        sequence: int = msg["sequence"]
        sync = self.books[product]
        if sequence <= state.sequence:
            return []  # already in the snapshot
        if sequence != state.sequence + 1:
            sync.stats.gaps += 1
            state.synced = False
            state.buffer.clear()
            state.buffer.append(msg)
            return sync.invalidate("gap", ts_recv)
        state.sequence = sequence
        kind = msg.get("type")
        if not isinstance(kind, str) or kind not in FULL_TYPES:
            raise MalformedFrame("shape", f"unknown message type {kind!r:.20}")
        ts = iso_time(msg.get("time"), "time")
        changes: list[LevelChange] = []
        out: list[Event] = []
        tick, lot = self.units_for(product)
        if kind == "open":
            order_id = as_str(need(msg, "order_id"), "order_id")
            if order_id in state.orders:
                raise MalformedFrame("inconsistent", f"open of resting order {order_id[:40]}")
            order = (
                _side(need(msg, "side")),
                units(tick, need(msg, "price"), "price", positive=True),
                units(lot, need(msg, "remaining_size"), "remaining_size"),
            )
            state.orders[order_id] = order
            changes.append(state.level_change(*order))
        elif kind == "done":
            done = state.orders.pop(as_str(need(msg, "order_id"), "order_id"), None)
            if done is not None:
                changes.append(state.level_change(done[0], done[1], -done[2]))
        elif kind == "match":
            trade = self._match(msg)
            maker_id = as_str(need(msg, "maker_order_id"), "maker_order_id")
            maker = state.orders.get(maker_id)
            if maker is None or trade.size > maker[2]:
                # The maker of every match rests on the book we hold, with at least that size.
                raise MalformedFrame("inconsistent", f"fill of {maker_id[:40]} contradicts book")
            state.orders[maker_id] = (maker[0], maker[1], maker[2] - trade.size)
            changes.append(state.level_change(maker[0], maker[1], -trade.size))
            out.append(self._sequenced(trade, ts_recv))
        elif kind == "change":
            order_id = as_str(need(msg, "order_id"), "order_id")
            resting = state.orders.get(order_id)
            if resting is not None:  # (changes of orders not on the book carry new_funds)
                new = units(lot, need(msg, "new_size"), "new_size")
                state.orders[order_id] = (resting[0], resting[1], new)
                changes.append(state.level_change(resting[0], resting[1], new - resting[2]))
        if changes:
            out = sync.delta(Delta(tuple(changes), sequence, sequence, ts), ts_recv) + out
        else:
            sync.venue_id = sequence  # a message that moved no level still advances the chain
        return out


def _side(value: Any) -> int:
    if value == "buy":
        return 0
    if value == "sell":
        return 1
    raise MalformedFrame("shape", f"side {value!r:.20}")
