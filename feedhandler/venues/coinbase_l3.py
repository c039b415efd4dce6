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

import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.coinbase import VENUE, CoinbaseParser
from feedhandler.venues.coinbase_auth import CoinbaseCredentials
from hub.events import Event, LevelChange
from hub.times import iso_ns

log = logging.getLogger(__name__)

Order = tuple[int, int, int]  # side, price ticks, open size lots


@dataclass
class ProductL3:
    orders: dict[str, Order] = field(default_factory=dict)
    levels: dict[tuple[int, int], int] = field(default_factory=dict)
    sequence: int = -1
    synced: bool = False
    buffer: list[dict[str, Any]] = field(default_factory=list)

    def level_change(self, side: int, price: int, by: int) -> LevelChange:
        size = self.levels.get((side, price), 0) + by
        if size:
            self.levels[side, price] = size
        else:
            self.levels.pop((side, price), None)
        return (side, price, size)


class CoinbaseL3Parser(CoinbaseParser):
    """Frames of the Exchange ``full`` channel and level-3 REST snapshots in, events out."""

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
        state = self.l3.get(product)
        if state is None:
            state = self.l3[product] = ProductL3()
            self.books[product] = BookSync(VENUE, product, continuous=True)
        return state

    def on_http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        path = urlparse(url).path
        if not path.endswith("/book"):
            return super().on_http(url, body, ts_recv)
        product = path.split("/")[-2]
        try:
            data = self._loads(body)
            tick, lot = self.units_for(product)
            orders: dict[str, Order] = {}
            for side, rows in ((0, data["bids"]), (1, data["asks"])):
                for price, size, order_id in rows:
                    orders[str(order_id)] = (side, tick.to_units(price), lot.to_units(size))
            sequence = int(data["sequence"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return self._bad(body, f"unexpected level-3 snapshot from {url} ({exc})", product)
        state = self._product(product)
        state.orders = orders
        state.levels = {}
        for side, price, size in orders.values():
            state.level_change(side, price, size)
        state.sequence, state.synced = sequence, True
        levels = tuple((s, p, size) for (s, p), size in state.levels.items())
        sync = self.books[product]
        out = sync.snapshot(Snapshot(levels, seq=sequence), ts_recv)
        pending, state.buffer = state.buffer, []
        for msg in pending:
            if int(msg["sequence"]) > sequence:
                out += self._apply(product, state, msg, ts_recv)
        return out

    def on_frame(self, text: str, ts_recv: int) -> list[Event]:
        try:
            msg = self._loads(text)
            if not isinstance(msg, dict):
                return self._bad(text, "not an object")
            if msg.get("type") in ("subscriptions", "heartbeat", "error"):
                if msg.get("type") == "error":
                    return self._bad(text, "venue error")
                return []
            product = msg["product_id"]
            int(msg["sequence"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return self._bad(text, f"unexpected frame ({type(exc).__name__}: {exc})")
        state = self._product(product)
        if not state.synced:
            state.buffer.append(msg)
            return []
        try:
            return self._apply(product, state, msg, ts_recv)
        except (KeyError, TypeError, ValueError) as exc:
            return self._bad(text, f"unexpected {msg.get('type')} ({exc})", product)

    def _apply(
        self, product: str, state: ProductL3, msg: dict[str, Any], ts_recv: int
    ) -> list[Event]:
        sequence = int(msg["sequence"])
        sync = self.books[product]
        if sequence <= state.sequence:
            return []  # already in the snapshot
        if sequence != state.sequence + 1:
            sync.stats.gaps += 1
            state.synced, state.buffer = False, [msg]
            return sync.invalidate("gap", ts_recv)
        state.sequence = sequence
        kind = msg["type"]
        ts = iso_ns(msg.get("time"))
        changes: list[LevelChange] = []
        out: list[Event] = []
        if kind == "open":
            tick, lot = self.units_for(product)
            order = (
                0 if msg["side"] == "buy" else 1,
                tick.to_units(msg["price"]),
                lot.to_units(msg["remaining_size"]),
            )
            state.orders[msg["order_id"]] = order
            changes.append(state.level_change(*order))
        elif kind == "done":
            done = state.orders.pop(msg["order_id"], None)
            if done is not None:
                changes.append(state.level_change(done[0], done[1], -done[2]))
        elif kind == "match":
            _tick, lot = self.units_for(product)
            size = lot.to_units(msg["size"])
            maker = state.orders.get(msg["maker_order_id"])
            if maker is not None:
                state.orders[msg["maker_order_id"]] = (maker[0], maker[1], maker[2] - size)
                changes.append(state.level_change(maker[0], maker[1], -size))
            out.append(self._match(msg, ts_recv))
        elif kind == "change" and "new_size" in msg:
            resting = state.orders.get(msg["order_id"])
            if resting is not None:
                _tick, lot = self.units_for(product)
                new = lot.to_units(msg["new_size"])
                state.orders[msg["order_id"]] = (resting[0], resting[1], new)
                changes.append(state.level_change(resting[0], resting[1], new - resting[2]))
        if changes:
            out = sync.delta(Delta(tuple(changes), sequence, sequence, ts), ts_recv) + out
        else:
            sync.venue_id = sequence  # a message that moved no level still advances the chain
        return out
