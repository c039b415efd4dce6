"""Bybit v2 USDT perpetuals (``realtime_public``): ``orderBookL2_25`` and ``trade``.

Sans-I/O. ``on_http`` takes ``/v2/public/symbols`` (price and size units),
``on_frame`` the WebSocket frames. The book is id-keyed (feedhandler.venues.idbook):
a ``snapshot`` lists the top 25 levels a side as rows ``{id, price, side, size}``,
then each ``delta`` deletes, updates and inserts rows by id, keeping 25 levels a
side. There is no checksum, and ``cross_seq`` rises but not by 1, so the feed's
own consistency is all a client can check, and this parser checks all of it:
a delete or update of an id the book does not hold, an insert of one it holds,
a side no longer holding 25 levels (when the snapshot had 25) or a ``cross_seq``
that does not rise marks the book stale (counted as a gap and by kind in
``extra_stats``); the runner resubscribes, and Bybit answers with a snapshot.

Prices are decimal strings (``price_scale`` decimals). Sizes are JSON numbers
printed from 32-bit floats (``6684.9995`` is the float nearest 6685.0): each is read
from its exact text and taken as the multiple of the symbol's ``qty_step``
decimals it stands for, and refused if it is farther from that grid than a few
float32 rounding steps (``FLOAT32_BITS``), so a size really off the grid is never
rounded onto it.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from feedhandler.frames import (
    INT64_MAX,
    MalformedFrame,
    as_dict,
    as_list,
    as_str,
    count,
    field,
    millis_time,
    units,
)
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from feedhandler.venues.exact import decimal_parts, decimals_of, exact_json, number, string
from feedhandler.venues.idbook import IdBook, Row
from hub.decimals import Unit
from hub.events import BUY, SELL, Event, Trade
from hub.symbology import SymbologyError, perp

VENUE = "BYBIT"
DEPTH = 25
BOOK = "orderBookL2_25"
MAX_DECIMALS = 18
FLOAT32_BITS = 21
"""Sizes are 32-bit floats (whose unit in the last place is at most value * 2**-23) printed
to 8 digits: the text may sit about one unit in the last place from the lot-grid size it
stands for (``8266.101`` for 8266.1, ``16.150002`` for 16.15; the 2021 capture's worst is
value * 2**-22.9). Up to value * 2**-21 is accepted, far less than any lot the sizes have."""
HEARTBEAT_S = 20.0
"""Bybit: send ``{"op":"ping"}`` every 20 s (the connection is cut when idle)."""


class BybitParser(ParserBase):
    """Frames and REST bodies of one Bybit v2 ``realtime_public`` connection in, events out."""

    venue = VENUE
    chained = False  # nothing reveals a lost frame of another symbol: a bad one stales all
    heartbeat_s = HEARTBEAT_S

    def __init__(self) -> None:
        super().__init__()
        self.units: dict[str, tuple[Unit, Unit]] = {}
        self._reads: dict[str, tuple[Unit, int]] = {}  # symbol -> (tick, size decimals)
        self.instruments: dict[str, dict[str, str]] = {}
        """Per symbol: base, quote, tick_size, qty_step (as sent), for order entry."""
        self.ids: dict[str, IdBook] = {}
        self.cross_seq: dict[str, int] = {}
        self.full: dict[str, bool] = {}
        """Whether the last snapshot held 25 levels a side (the 25-level rule then holds)."""
        self.checks: dict[str, dict[str, int]] = {}

    # --- the runner's interface --------------------------------------------------------

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        return self.units[symbol]

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        return dict(self._checks(symbol))

    def instrument_urls(self, rest: str) -> list[str]:
        return [f"{rest}/v2/public/symbols"]

    def subscribe(self, symbols: list[str]) -> list[str]:
        return [
            _op("subscribe", [f"trade.{s}" for s in symbols]),
            _op("subscribe", [f"{BOOK}.{s}" for s in symbols]),
        ]

    def recover(self, symbols: list[str]) -> list[str]:
        """A (re)subscription starts with a snapshot."""
        topics = [f"{BOOK}.{s}" for s in symbols]
        return [_op("unsubscribe", topics), _op("subscribe", topics)]

    def heartbeat(self) -> list[str]:
        return ['{"op":"ping"}']

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        if not url.split("?")[0].endswith("/v2/public/symbols"):
            return []
        data = exact_json(body)
        if field(data, "ret_code") != "0":
            raise MalformedFrame("venue", f"symbols answer: {str(data.get('ret_msg'))[:80]}")
        found = []
        for s in as_list(field(data, "result"), "result"):
            lots = as_dict(field(s, "lot_size_filter"), "lot_size_filter")
            step = str(as_str(field(lots, "qty_step"), "qty_step"))
            found.append(
                (
                    as_str(field(s, "name"), "name"),
                    _precision(number(field(s, "price_scale"), "price_scale"), "price_scale"),
                    _precision(decimals_of(step, "qty_step"), "qty_step"),
                    {
                        "base": as_str(field(s, "base_currency"), "base_currency"),
                        "quote": as_str(field(s, "quote_currency"), "quote_currency"),
                        "tick_size": str(
                            as_str(field(field(s, "price_filter"), "tick_size"), "tick_size")
                        ),
                        "qty_step": step,
                    },
                )
            )
        for name, price_decimals, size_decimals, record in found:
            self.units[name] = (decimals_unit(price_decimals), decimals_unit(size_decimals))
            self._reads[name] = (self.units[name][0], size_decimals)
            self.instruments[name] = record
            with contextlib.suppress(SymbologyError):  # USDT perpetuals: 1 base per contract
                self.listings[name] = perp(
                    VENUE, name, record["base"], record["quote"], settle=record["quote"]
                )
        return []

    # --- frames ------------------------------------------------------------------------

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        msg = exact_json(text)
        if not isinstance(msg, dict):
            raise MalformedFrame("shape", f"a frame must be an object, got {text[:40]!r}")
        topic = msg.get("topic")
        if topic is None:
            if msg.get("success") is False:
                raise MalformedFrame("venue", f"request refused: {str(msg.get('ret_msg'))[:80]}")
            if "success" in msg or "op" in msg or "ret_msg" in msg:
                return []  # subscribe answers, pongs
            raise MalformedFrame("shape", "an object with no 'topic' or 'success'")
        return self._topic_message(string(topic, "topic"), msg, ts_recv)

    def _topic_message(self, topic: str, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        channel, _, symbol = topic.partition(".")
        if channel == "trade":
            try:
                return self._trades(msg, ts_recv)
            except MalformedFrame as exc:
                raise exc.on() from None
        if channel != BOOK:
            raise MalformedFrame("shape", f"unknown topic {channel[:30]!r}")
        if symbol not in self._reads:
            # Perhaps a known symbol's message with its name damaged: no book can be trusted.
            raise MalformedFrame("symbol", f"book for {symbol[:20]!r} before its instrument data")
        try:
            return self._book_message(symbol, msg, ts_recv)
        except MalformedFrame as exc:
            raise exc.on(symbol) from None

    def _book(self, symbol: str) -> BookSync:
        self._touch(symbol)
        sync = self.books.get(symbol)
        if sync is None:
            sync = self.books[symbol] = BookSync(VENUE, symbol)
            sync.sink = self._emitted
        return sync

    def _checks(self, symbol: str) -> dict[str, int]:
        return self.checks.setdefault(
            symbol, {"id_errors": 0, "depth_violations": 0, "cross_seq_regressions": 0}
        )

    def _fail(self, symbol: str, kind: str, reason: str, ts_recv: int) -> list[Event]:
        """The message contradicts the book: this feed's gap (counted as one), so stale."""
        self._checks(symbol)[kind] += 1
        sync = self._book(symbol)
        if sync.live:
            sync.stats.gaps += 1
        return sync.invalidate(reason, ts_recv)

    def _book_message(self, symbol: str, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        units_ = self._reads[symbol]
        kind = string(field(msg, "type"), "type")
        cross_seq = count(field(msg, "cross_seq"), "cross_seq", digits=True)
        ts = count(field(msg, "timestamp_e6"), "timestamp_e6", digits=True) * 1000
        data = field(msg, "data")
        if kind == "snapshot":
            rows_ = data if isinstance(data, list) else field(data, "order_book")
            rows = _rows(symbol, units_, as_list(rows_, "order_book"), True)
            ids = IdBook()
            levels = ids.load(rows)
            if isinstance(levels, str):
                raise MalformedFrame("inconsistent", levels)
            out = self._book(symbol).snapshot(Snapshot(levels, cross_seq, ts), ts_recv)
            self.ids[symbol] = ids
            self.cross_seq[symbol] = cross_seq
            book = self.books[symbol].book
            self.full[symbol] = book.level_count(0) == book.level_count(1) == DEPTH
            return out
        if kind != "delta":
            raise MalformedFrame("shape", f"book message type {kind[:20]!r}")
        parts = [
            _rows(symbol, units_, as_list(field(data, key), key), key != "delete")
            for key in ("delete", "update", "insert")
        ]
        sync = self._book(symbol)
        if not sync.live:
            return []  # stale: the next snapshot replaces the book
        if cross_seq <= self.cross_seq[symbol]:
            why = f"cross_seq {cross_seq} after {self.cross_seq[symbol]}"
            return self._fail(symbol, "cross_seq_regressions", why, ts_recv)
        levels = self.ids[symbol].apply(*parts)
        if isinstance(levels, str):
            return self._fail(symbol, "id_errors", levels, ts_recv)
        self.cross_seq[symbol] = cross_seq
        out = sync.delta(Delta(levels, ts_event=ts), ts_recv)
        book = sync.book
        if sync.live and self.full[symbol]:
            bids, asks = book.level_count(0), book.level_count(1)
            if bids != DEPTH or asks != DEPTH:
                why = f"{bids} bid and {asks} ask levels, not {DEPTH}"
                out += self._fail(symbol, "depth_violations", why, ts_recv)
        return out

    def _trades(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        parsed = []
        for t in as_list(field(msg, "data"), "data"):
            symbol = string(field(t, "symbol"), "symbol")
            found = self._reads.get(symbol)
            if found is None:
                raise MalformedFrame(
                    "symbol", f"trade for {symbol[:20]!r} before v2 instrument data"
                )
            tick, lot = found
            parsed.append(
                (
                    symbol,
                    string(field(t, "trade_id"), "trade_id"),
                    units(tick, string(field(t, "price"), "price"), "price", positive=True),
                    _size(lot, field(t, "size"), "size"),
                    side(field(t, "side")),
                    millis_time(count(field(t, "trade_time_ms"), "trade_time_ms", True), "ms"),
                )
            )
        out: list[Event] = []
        for symbol, trade_id, price, size, taker, ts in parsed:
            seq = self._trade_seq(symbol)
            out.append(Trade(VENUE, symbol, seq, trade_id, price, size, taker, ts, ts_recv))
        return out


def _op(op: str, args: list[str]) -> str:
    return json.dumps({"op": op, "args": args})


def _rows(symbol: str, units_: tuple[Unit, int], items: list[Any], sized: bool) -> list[Row]:
    tick, lot = units_
    rows: list[Row] = []
    for item in items:
        if string(field(item, "symbol"), "row symbol") != symbol:
            raise MalformedFrame("inconsistent", f"a {symbol} book row for another symbol")
        rows.append(
            (
                string(field(item, "id"), "id"),
                side(field(item, "side")),
                units(tick, string(field(item, "price"), "price"), "price", positive=True),
                _size(lot, field(item, "size"), "size") if sized else 0,
            )
        )
    return rows


def _size(decimals: int, value: Any, what: str) -> int:
    """A float32-printed JSON number as a positive number of
    lots of ``10**-decimals`` (see the module docstring)."""
    mant, exp = decimal_parts(number(value, what), what)
    n: int
    if exp <= decimals:
        n = mant * 10 ** (decimals - exp)
    else:
        unit = 10 ** (exp - decimals)
        n, rest = divmod(mant, unit)
        if 2 * rest >= unit:
            n += 1
        if abs(mant - n * unit) << FLOAT32_BITS > mant:
            raise MalformedFrame("number", f"{what} {value[:30]!r} is off the lot grid")
    if not 0 < n <= INT64_MAX:
        raise MalformedFrame("range", f"{what} {value[:30]!r} must be positive and fit int64")
    return n


def _precision(value: Any, what: str) -> int:
    decimals = count(value, what, digits=True)
    if decimals > MAX_DECIMALS:
        raise MalformedFrame("range", f"{what} {decimals} is more than {MAX_DECIMALS} decimals")
    return decimals


def side(value: Any) -> int:
    """Bybit's ``Buy``/``Sell`` (the taker's side, on trades)."""
    if value == "Buy":
        return BUY
    if value == "Sell":
        return SELL
    raise MalformedFrame("shape", f"side must be 'Buy' or 'Sell', got {value!r:.20}")
