"""BitMEX realtime WebSocket: ``orderBookL2`` (full depth), ``trade`` and ``quote``.

Sans-I/O. ``on_http`` takes ``/api/v1/instrument/active`` (units and the
instrument record), ``on_frame`` the WebSocket frames. Every table message is
``{"table", "action", "data": [rows]}``; the book is id-keyed
(feedhandler.venues.idbook): a ``partial`` lists a symbol's levels as rows
``{symbol, id, side, size, price}``, then each message ``insert``s rows (with
their price), ``update``s sizes or ``delete``s rows by id (these two carry no
price in the 2021 feed: the id says which level). There are no sequence
numbers and no checksum; BitMEX's ``id`` encodes symbol and price, but its
documentation says not to derive prices from it, so the price sent with each
insert and partial is what the book keeps. A delete or update of an id the
book does not hold, an insert of one it holds, or a row naming another side
or price than its id has, is this feed's gap: counted (``gaps``, and
``id_errors`` in ``extra_stats``) and the book goes stale; the runner
resubscribes and BitMEX answers with a new ``partial``.

Prices are JSON numbers (``7.899e-05``): read from their exact text, never
through float, in units of the decimals of the instrument's ``tickSize``
(``1e-08``: 8); sizes are whole contracts (``lotSize`` decimals). ``quote`` rows'
bid and ask prices are compared with the book's best when they arrive
(``quote_agrees`` / ``quote_disagrees``; ``quote_sizes_agree``: sizes equal too):
the channels are not mutually ordered, so they disagree at times and that is
no error. ``trade`` partials (the trades before the
subscription) are history, not new trades, and are not published.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from feedhandler.frames import MalformedFrame, as_list, count, field, iso_time
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from feedhandler.venues.exact import decimals_of, exact_json, number_units, string
from feedhandler.venues.idbook import IdBook, Row
from hub.decimals import Unit
from hub.events import BUY, SELL, Event, Trade
from hub.symbology import Listing, SymbologyError, future, perp, strike_text
from orderbook_core import bitmex_book

VENUE = "BITMEX"
BOOKS = ("orderBookL2", "orderBookL2_25")
ACTIONS = ("partial", "insert", "update", "delete")
MAX_DECIMALS = 18
HEARTBEAT_S = 5.0
"""BitMEX: send ``ping`` when the feed is quiet for 5 s; it answers ``pong``."""
INSTRUMENT_FIELDS = (
    "tickSize",
    "lotSize",
    "multiplier",
    "isInverse",
    "typ",
    "underlying",
    "quoteCurrency",
    "settlCurrency",
)


class BitmexParser(ParserBase):
    """Frames and REST bodies of one BitMEX realtime connection in, normalized events out."""

    venue = VENUE
    chained = False  # nothing reveals a lost frame of another symbol: a bad one stales all
    heartbeat_s = HEARTBEAT_S

    def __init__(self) -> None:
        super().__init__()
        self.units: dict[str, tuple[int, int]] = {}
        """Per symbol: (price decimals, size decimals)."""
        self.instruments: dict[str, dict[str, str]] = {}
        """Per symbol: ``INSTRUMENT_FIELDS`` as sent (contract size, inverse, currencies)."""
        self.ids: dict[str, IdBook] = {}
        self.id_errors: dict[str, int] = {}
        self.quote_checks: dict[str, list[int]] = {}
        """Per symbol: quotes whose bid and ask prices equal the book's best, those that do
        not, and those whose sizes agree too."""

    # --- the runner's interface --------------------------------------------------------

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        price, size = self.units[symbol]
        return decimals_unit(price), decimals_unit(size)

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        agree, disagree, exact = self.quote_checks.get(symbol, [0, 0, 0])
        return {
            "id_errors": self.id_errors.get(symbol, 0),
            "quote_agrees": agree,
            "quote_disagrees": disagree,
            "quote_sizes_agree": exact,
        }

    def instrument_urls(self, rest: str) -> list[str]:
        return [f"{rest}/api/v1/instrument/active"]

    def subscribe(self, symbols: list[str]) -> list[str]:
        return [
            _op("subscribe", [f"{t}:{s}" for t in (BOOKS[0], "quote", "trade") for s in symbols])
        ]

    def recover(self, symbols: list[str]) -> list[str]:
        """A (re)subscription starts with a ``partial``."""
        topics = [f"{BOOKS[0]}:{s}" for s in symbols]
        return [_op("unsubscribe", topics), _op("subscribe", topics)]

    def heartbeat(self) -> list[str]:
        return ["ping"]

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        if "/instrument" not in url.split("?")[0]:
            return []
        found = []
        for item in as_list(exact_json(body), "instruments"):
            symbol = string(field(item, "symbol"), "symbol")
            found.append(
                (
                    symbol,
                    _precision(decimals_of(field(item, "tickSize"), "tickSize"), "tickSize"),
                    _precision(decimals_of(field(item, "lotSize"), "lotSize"), "lotSize"),
                    {k: _as_text(item[k]) for k in INSTRUMENT_FIELDS if k in item},
                )
            )
        for symbol, price, size, record in found:
            self.units[symbol] = (price, size)
            self.instruments[symbol] = record
        for item in as_list(exact_json(body), "instruments"):
            listing = _listing(item)
            if listing is not None:
                self.listings[listing.native] = listing
        return []

    # --- frames ------------------------------------------------------------------------

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        scan = bitmex_book(text, self.units)  # nearly every frame: book rows
        if scan is not None:
            action, parsed = scan
            return self._book_rows(action, parsed, ts_recv)
        if text == "pong":
            return []
        msg = exact_json(text)
        if not isinstance(msg, dict):
            raise MalformedFrame("shape", f"a frame must be an object, got {text[:40]!r}")
        if "table" not in msg:
            if "error" in msg:
                raise MalformedFrame("venue", f"BitMEX error: {str(msg['error'])[:80]}")
            if "info" in msg or "success" in msg or "request" in msg:
                return []  # welcome, subscribe answers
            raise MalformedFrame("shape", "an object with no 'table', 'info' or 'success'")
        table = string(msg["table"], "table")
        action = string(field(msg, "action"), "action")
        if action not in ACTIONS:
            raise MalformedFrame("shape", f"action {action[:20]!r}")
        rows = as_list(field(msg, "data"), "data")
        if table in BOOKS:
            return self._book_message(msg, action, rows, ts_recv)
        if table not in ("trade", "quote"):
            raise MalformedFrame("shape", f"unknown table {table[:30]!r}")
        try:
            if table == "trade":
                return self._trades(rows, ts_recv) if action == "insert" else []
            self._quotes(rows)
        except MalformedFrame as exc:
            raise exc.on() from None
        return []

    def _book(self, symbol: str) -> BookSync:
        self._touch(symbol)
        sync = self.books.get(symbol)
        if sync is None:
            sync = self.books[symbol] = BookSync(VENUE, symbol)
            sync.sink = self._emitted
        return sync

    def _book_message(
        self, msg: dict[str, Any], action: str, items: list[Any], ts_recv: int
    ) -> list[Event]:
        named = [string(field(item, "symbol"), "symbol") for item in items]
        flt = msg.get("filter")
        if action == "partial" and isinstance(flt, dict) and "symbol" in flt:
            named.append(string(flt["symbol"], "filter symbol"))
        symbols = list(dict.fromkeys(named))
        unknown = [s for s in symbols if s not in self.units]
        if unknown:
            # Perhaps a known symbol's rows with its name damaged: no book can be trusted.
            raise MalformedFrame("symbol", f"book for {unknown[0][:20]!r} before instrument data")
        try:
            parsed = {s: self._rows(s, items, action) for s in symbols}
        except MalformedFrame as exc:
            raise exc.on(*symbols) from None
        return self._book_rows(action, parsed, ts_recv)

    def _book_rows(
        self, action: str, parsed: dict[str, tuple[list[Row], int]], ts_recv: int
    ) -> list[Event]:
        """One book message's rows, per symbol with their latest timestamp, applied."""
        out: list[Event] = []
        if action == "partial":
            books = {}
            for symbol, (rows, ts) in parsed.items():
                ids = IdBook()
                levels = ids.load(rows)
                if isinstance(levels, str):
                    raise MalformedFrame("inconsistent", levels, (symbol,))
                books[symbol] = (ids, levels, ts)
            for symbol, (ids, levels, ts) in books.items():
                out += self._book(symbol).snapshot(Snapshot(levels, ts_event=ts), ts_recv)
                self.ids[symbol] = ids
            return out
        for symbol, (rows, ts) in parsed.items():
            sync = self._book(symbol)
            if not sync.live:
                continue  # before its partial, or stale: the next partial replaces the book
            parts: tuple[list[Row], list[Row], list[Row]] = ([], [], [])
            parts[("delete", "update", "insert").index(action)].extend(rows)
            levels = self.ids[symbol].apply(*parts)
            if isinstance(levels, str):
                self.id_errors[symbol] = self.id_errors.get(symbol, 0) + 1
                sync.stats.gaps += 1
                out += sync.invalidate(levels, ts_recv)
                continue
            out += sync.delta(Delta(levels, ts_event=ts), ts_recv)
        return out

    def _rows(self, symbol: str, items: list[Any], action: str) -> tuple[list[Row], int]:
        """The rows of ``symbol`` (in order) and their latest ``timestamp`` (0 if none)."""
        pd, sd = self.units[symbol]
        rows: list[Row] = []
        ts = 0
        for item in items:
            if item["symbol"] != symbol:
                continue
            priced = action in ("partial", "insert") or "price" in item
            size = 0 if action == "delete" else number_units(sd, field(item, "size"), "size", True)
            rows.append(
                (
                    count(field(item, "id"), "id", digits=True),
                    _side(field(item, "side")),
                    number_units(pd, field(item, "price"), "price", True) if priced else 0,
                    size,
                )
            )
            if "timestamp" in item:
                ts = max(ts, iso_time(item["timestamp"], "timestamp"))
        return rows, ts

    def _trades(self, items: list[Any], ts_recv: int) -> list[Event]:
        parsed = []
        for t in items:
            symbol = string(field(t, "symbol"), "symbol")
            if symbol not in self.units:
                raise MalformedFrame("symbol", f"trade for {symbol[:20]!r} before instrument data")
            pd, sd = self.units[symbol]
            parsed.append(
                (
                    symbol,
                    string(field(t, "trdMatchID"), "trdMatchID"),
                    number_units(pd, field(t, "price"), "price", True),
                    number_units(sd, field(t, "size"), "size", True),
                    _side(field(t, "side")),
                    iso_time(field(t, "timestamp"), "timestamp"),
                )
            )
        out: list[Event] = []
        for symbol, trade_id, price, size, side, ts in parsed:
            seq = self._trade_seq(symbol)
            out.append(Trade(VENUE, symbol, seq, trade_id, price, size, side, ts, ts_recv))
        return out

    def _quotes(self, items: list[Any]) -> None:
        """Compare each quote row with the book's best bid and ask as it stands."""
        quotes = []
        for q in items:
            symbol = string(field(q, "symbol"), "symbol")
            if symbol not in self.units:
                raise MalformedFrame("symbol", f"quote for {symbol[:20]!r} before instrument data")
            pd, sd = self.units[symbol]
            quotes.append(
                (
                    symbol,
                    (
                        _optional(pd, q.get("bidPrice"), "bidPrice"),
                        _optional(sd, q.get("bidSize"), "bidSize"),
                        _optional(pd, q.get("askPrice"), "askPrice"),
                        _optional(sd, q.get("askSize"), "askSize"),
                    ),
                )
            )
        for symbol, quote in quotes:
            sync = self.books.get(symbol)
            if sync is None or not sync.live:
                continue
            top = sync.book.top()
            checks = self.quote_checks.setdefault(symbol, [0, 0, 0])
            checks[(quote[0], quote[2]) != (top[0], top[2])] += 1
            checks[2] += quote == top


def _op(op: str, args: list[str]) -> str:
    return json.dumps({"op": op, "args": args})


def _listing(item: Any) -> Listing | None:
    """``XBTUSD`` (typ ``FFWCSX``) is ``BTC-USD-PERP``, ``XBTU21`` (``FFCCSX``)
    ``BTC-USD-20210924``. Inverse contracts are 1 ``quoteCurrency`` each; linear ones
    ``1 / underlyingToPositionMultiplier`` base coins; quanto ones (``ETHUSD``, sized in
    satoshis per USD point) have no size in base or quote units: ``contract_size`` "".
    None for other types (indices, spot, options) and codes the symbology cannot name."""
    try:
        typ = _as_text(item.get("typ"))
        if typ not in ("FFWCSX", "FFCCSX"):
            return None
        native, base = _as_text(item["symbol"]), _as_text(item["underlying"])
        quote, settle = _as_text(item["quoteCurrency"]), _as_text(item["settlCurrency"])
        inverse = item.get("isInverse") is True
        to_position = _as_text(item.get("underlyingToPositionMultiplier"))
        if inverse:
            size = "1"
        elif item.get("isQuanto") is True:
            size = ""
        else:
            size = strike_text(str(1 / Decimal(to_position))) if to_position != "null" else "1"
        if typ == "FFWCSX":
            return perp(
                VENUE, native, base, quote, settle=settle, contract_size=size, inverse=inverse
            )
        day = dt.date.fromisoformat(_as_text(item["expiry"])[:10])
        return future(
            VENUE, native, base, quote, day, settle=settle, contract_size=size, inverse=inverse
        )
    except (KeyError, ValueError, ArithmeticError, SymbologyError):
        return None


def _as_text(value: Any) -> str:
    """A JSON value as its text (numbers as sent, ``true``, ``null``)."""
    return str(value) if isinstance(value, str) else json.dumps(value)


def _optional(decimals: int, value: Any, what: str) -> int:
    """A quote's price or size; null (an empty side) is 0."""
    return 0 if value is None else number_units(decimals, value, what)


def _precision(decimals: int, what: str) -> int:
    if decimals > MAX_DECIMALS:
        raise MalformedFrame("range", f"{what} has more than {MAX_DECIMALS} decimals")
    return decimals


def _side(value: Any) -> int:
    if value == "Buy":
        return BUY
    if value == "Sell":
        return SELL
    raise MalformedFrame("shape", f"side must be 'Buy' or 'Sell', got {value!r:.20}")
