"""Bybit v5 public linear feed (``/v5/public/linear``): ``orderbook.{depth}.{symbol}`` and
``publicTrade.{symbol}``, from the venue's documentation (no capture of it yet).

Sans-I/O, like the v2 parser it extends (subscribe answers, pongs, the 20 s
``{"op":"ping"}`` heartbeat and the resubscribe recovery are the same); it
still reads v2 frames and REST answers the v2 way, so a capture whose header
names BYBIT replays with it whichever API it recorded. Units
come from ``/v5/market/instruments-info?category=linear`` (prices ``priceScale``
decimals, sizes the decimals of ``lotSizeFilter.qtyStep``). The book is a
price-level book, not id-keyed: a ``snapshot`` replaces it, each ``delta`` sets
absolute sizes (``"0"`` deletes), prices and sizes are decimal strings. The
sync rule is Bybit's: ``u``, the update id, rises by exactly 1 from message to
message (run by the sync engine as a chained stream: a skipped ``u`` is a gap,
the book goes stale and is resubscribed); a ``snapshot`` (also the one with
``u`` = 1 that follows a restart of Bybit's service) starts the chain again.
The book is kept at the subscribed depth. ``seq`` (the cross sequence) is
kept as the venue's event id but not chained.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from feedhandler.frames import (
    MalformedFrame,
    as_dict,
    as_list,
    count,
    field,
    millis_time,
    row,
    units,
)
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import decimals_unit
from feedhandler.venues.bybit import BybitParser, side
from feedhandler.venues.exact import decimals_of, exact_json, number, string
from hub.events import Event, LevelChange, Trade
from hub.symbology import SymbologyError, future, perp

VENUE = "BYBIT"
DEPTHS = (1, 50, 200, 500)
"""Linear order book depths Bybit v5 offers."""


class BybitV5Parser(BybitParser):
    """Frames and REST bodies of one Bybit v5 public linear connection in, events out."""

    def __init__(self, depth: int = 50) -> None:
        if depth not in DEPTHS:
            raise ValueError(f"Bybit v5 linear book depth must be one of {DEPTHS}, got {depth}")
        super().__init__()
        self.depth = depth

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        return super().extra_stats(symbol) if symbol in self.ids else {}

    def instrument_urls(self, rest: str) -> list[str]:
        return [f"{rest}/v5/market/instruments-info?category=linear&limit=1000"]

    def subscribe(self, symbols: list[str]) -> list[str]:
        return [
            _op("subscribe", [f"publicTrade.{s}" for s in symbols]),
            _op("subscribe", [self._topic(s) for s in symbols]),
        ]

    def recover(self, symbols: list[str]) -> list[str]:
        topics = [self._topic(s) for s in symbols]
        return [_op("unsubscribe", topics), _op("subscribe", topics)]

    def _topic(self, symbol: str) -> str:
        return f"orderbook.{self.depth}.{symbol}"

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        if "/v5/market/instruments-info" not in url:
            return super()._http(url, body, ts_recv)
        data = exact_json(body)
        if field(data, "retCode") != "0":
            raise MalformedFrame("venue", f"instruments answer: {str(data.get('retMsg'))[:80]}")
        found = []
        for s in as_list(field(as_dict(field(data, "result"), "result"), "list"), "list"):
            step = string(field(field(s, "lotSizeFilter"), "qtyStep"), "qtyStep")
            record = {
                "base": string(field(s, "baseCoin"), "baseCoin"),
                "quote": string(field(s, "quoteCoin"), "quoteCoin"),
                "tick_size": string(field(field(s, "priceFilter"), "tickSize"), "tickSize"),
                "qty_step": step,
            }
            scale = count(string(field(s, "priceScale"), "priceScale"), "priceScale", True)
            found.append((string(field(s, "symbol"), "symbol"), scale, step, record))
            self._list_v5(found[-1][0], s, record)
        parsed = [(n, p, decimals_of(step, "qtyStep"), r) for n, p, step, r in found]
        for name, price_decimals, size_decimals, _record in parsed:
            if max(price_decimals, size_decimals) > 18:
                raise MalformedFrame("range", f"{name}: more than 18 decimals")
        for name, price_decimals, size_decimals, record in parsed:
            self.units[name] = (decimals_unit(price_decimals), decimals_unit(size_decimals))
            self.instruments[name] = record
        return []

    def _list_v5(self, name: str, s: dict[str, Any], record: dict[str, str]) -> None:
        """Linear contracts are 1 base coin each: ``LinearPerpetual`` is ``BASE-QUOTE-PERP``,
        ``LinearFutures`` ``BASE-QUOTE-YYYYMMDD`` (``deliveryTime`` ms)."""
        coin = s.get("settleCoin")
        settle = coin if isinstance(coin, str) and coin else record["quote"]
        kind, delivery = str(s.get("contractType", "")), str(s.get("deliveryTime", "0"))
        with contextlib.suppress(SymbologyError, ValueError):
            if kind.endswith("Futures") and delivery.isdigit() and int(delivery):
                self.listings[name] = future(
                    VENUE, name, record["base"], record["quote"], int(delivery), settle=settle
                )
            elif kind in ("", "LinearPerpetual"):
                self.listings[name] = perp(
                    VENUE, name, record["base"], record["quote"], settle=settle
                )

    def _topic_message(self, topic: str, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        """v5 topics; v2's (a recording of the legacy API) go to the v2 parser's reading."""
        channel, _, symbol = topic.rpartition(".")
        if channel == "publicTrade":
            try:
                return self._v5_trades(msg, ts_recv)
            except MalformedFrame as exc:
                raise exc.on() from None
        if not channel.startswith("orderbook."):
            return super()._topic_message(topic, msg, ts_recv)
        if channel != f"orderbook.{self.depth}":
            raise MalformedFrame("shape", f"unknown topic {channel[:30]!r}")
        if symbol not in self.units:
            raise MalformedFrame("symbol", f"book for {symbol[:20]!r} before its instrument data")
        try:
            return self._v5_book(symbol, msg, ts_recv)
        except MalformedFrame as exc:
            raise exc.on(symbol) from None

    def _v5_sync(self, symbol: str) -> BookSync:
        self._touch(symbol)
        sync = self.books.get(symbol)
        if sync is None:
            sync = self.books[symbol] = BookSync(VENUE, symbol, self.depth, continuous=True)
            sync.sink = self._emitted
        return sync

    def _v5_book(self, symbol: str, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        kind = string(field(msg, "type"), "type")
        ts = millis_time(count(number(field(msg, "ts"), "ts"), "ts", True), "ts")
        data = as_dict(field(msg, "data"), "data")
        if string(field(data, "s"), "s") != symbol:
            raise MalformedFrame("inconsistent", f"a {symbol} book message for another symbol")
        update = count(number(field(data, "u"), "u"), "u", True)
        tick, lot = self.units[symbol]
        levels: list[LevelChange] = []
        for side_, key in ((0, "b"), (1, "a")):
            for level in as_list(field(data, key), key):
                price, size = row(level, 2, "level")[:2]
                levels.append(
                    (
                        side_,
                        units(tick, string(price, "price"), "price", positive=True),
                        units(lot, string(size, "size"), "size"),
                    )
                )
        if kind == "snapshot":
            snap = Snapshot(tuple(levels), update, ts)
            return self._v5_sync(symbol).snapshot(snap, ts_recv)
        if kind != "delta":
            raise MalformedFrame("shape", f"book message type {kind[:20]!r}")
        delta = Delta(tuple(levels), update, update, ts)
        return self._v5_sync(symbol).delta(delta, ts_recv)

    def _v5_trades(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        parsed = []
        for t in as_list(field(msg, "data"), "data"):
            symbol = string(field(t, "s"), "s")
            found = self.units.get(symbol)
            if found is None:
                raise MalformedFrame("symbol", f"trade for {symbol[:20]!r} before instrument data")
            tick, lot = found
            parsed.append(
                (
                    symbol,
                    string(field(t, "i"), "i"),
                    units(tick, string(field(t, "p"), "p"), "price", positive=True),
                    units(lot, string(field(t, "v"), "v"), "size", positive=True),
                    side(field(t, "S")),
                    millis_time(count(number(field(t, "T"), "T"), "T", True), "T"),
                )
            )
        out: list[Event] = []
        for symbol, trade_id, price, size, side_, ts in parsed:
            seq = self._trade_seq(symbol)
            out.append(Trade(VENUE, symbol, seq, trade_id, price, size, side_, ts, ts_recv))
        return out


def _op(op: str, args: list[str]) -> str:
    return json.dumps({"op": op, "args": args})
