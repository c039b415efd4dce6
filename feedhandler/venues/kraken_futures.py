"""Kraken Futures WebSocket v1 (``book``, ``trade``, ``ticker_lite``, ``heartbeat``) and the
instruments REST answer.

Sans-I/O. ``on_http`` takes ``/derivatives/api/v3/instruments`` (units, contract, listing),
``on_frame`` the WebSocket frames. Products are named as the feed names them, upper
case (``PI_XBTUSD``); the REST answer of 2021 spells them in lower case.

Book sync: subscribing to ``book`` brings a ``book_snapshot`` (all levels, with the
product's ``seq``), then one ``book`` message per changed level (``side``, ``price``,
absolute ``qty``, 0 deletes) whose ``seq`` rises by exactly 1 per product. That is the
sync engine's continuous rule with first = last = ``seq``: a skipped number is a gap,
the book goes stale and ``recover`` unsubscribes and subscribes ``book`` again, which
brings a fresh snapshot (deltas it covers are dropped, the later ones chained on).
There is no checksum on this feed. Prices and quantities are JSON numbers, read from
their exact text in units of the decimals of the instrument's ``tickSize`` and of its
``contractValueTradePrecision`` (whole contracts when absent, as in 2021).

``ticker_lite`` carries the best bid and ask prices; each is compared with the book's
best when it arrives (``ticker_matches``/``ticker_mismatches``): on this feed the
channels are ordered, so a mismatch is an error ``--check`` refuses.

Trades: ``trade`` messages and the ``trade_snapshot`` (the product's last 100 trades)
each subscription starts with. Trades carry a per-product ``seq``: each one is
published once, in ``seq`` order, so the snapshot a resubscribe or reconnect brings
adds only the trades missed meanwhile (``trade_gaps`` counts numbers never seen).
``side`` is the taker's, ``uid`` the trade id, ``time`` (ms) ``ts_event``.

Keep-alive: the ``heartbeat`` feed (``{"feed":"heartbeat","time":...}`` at timed
intervals) beside the WebSocket pings, which Kraken asks for at least every 60 s.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from feedhandler.frames import MalformedFrame, as_dict, as_list, field, iso_time, millis_time
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from feedhandler.venues.exact import (
    decimal_parts,
    exact_json,
    integer,
    number,
    number_units,
    string,
    unit_decimals,
)
from feedhandler.venues.okx import side_of
from hub.decimals import Unit
from hub.events import BUY, SELL, Event, LevelChange, Trade
from hub.symbology import Listing, SymbologyError, future, perp, strike_text
from orderbook_core import kraken_futures_book

VENUE = "KRAKEN_FUTURES"
FEEDS = ("book", "trade", "ticker_lite")
MAX_DECIMALS = 18
"""Most decimals a quantity may have (10**18 units of one already fill int64)."""
LINEAR = ("PF", "FF")
"""Prefixes of Kraken's multi-collateral ("flexible") contracts, margined and settled in USD;
``PI_``/``FI_`` are the inverse ones, settled in the base coin."""
QUOTES = ("USDT", "USDC", "USD", "EUR", "GBP")
"""Quote currencies a product name may end with (``XBTUSD``), longest first."""
ERRORS = ("error", "alert", "subscribed_failed", "unsubscribed_failed")


class KrakenFuturesParser(ParserBase):
    """Frames and REST bodies of one Kraken Futures connection in, normalized events out."""

    venue = VENUE
    chained = True
    """Every book's ``seq`` shows a lost message at its next one."""

    def __init__(self) -> None:
        super().__init__()
        self.units: dict[str, tuple[int, int]] = {}
        """Per product: (price decimals, quantity decimals)."""
        self.contracts: dict[str, dict[str, str]] = {}
        """Per product: ``type``, ``contractSize``, ``underlying``, ``lastTradingTime`` as sent."""
        self.ticker_checks: dict[str, list[int]] = {}
        """Per product: ``ticker_lite`` messages whose bid and ask equal the book's best, and
        those that do not."""
        self.trade_seqs: dict[str, int] = {}
        """Per product: the ``seq`` of the last trade published."""
        self.trade_gaps: dict[str, int] = {}

    # --- the runner's interface --------------------------------------------------------

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        price, qty = self.units[symbol]
        return decimals_unit(price), decimals_unit(qty)

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        matches, mismatches = self.ticker_checks.get(symbol, [0, 0])
        return {
            "ticker_matches": matches,
            "ticker_mismatches": mismatches,
            "trade_gaps": self.trade_gaps.get(symbol, 0),
        }

    def instrument_urls(self, rest: str) -> list[str]:
        return [f"{rest}/derivatives/api/v3/instruments"]

    def subscribe(self, symbols: list[str]) -> list[str]:
        return [_request("subscribe", f, symbols) for f in FEEDS] + [
            json.dumps({"event": "subscribe", "feed": "heartbeat"})
        ]

    def recover(self, symbols: list[str]) -> list[str]:
        """A (re)subscribed ``book`` starts with a ``book_snapshot``."""
        return [_request("unsubscribe", "book", symbols), _request("subscribe", "book", symbols)]

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        if not urlparse(url).path.endswith("/instruments"):
            return []
        msg = as_dict(exact_json(body), "instruments answer")
        if msg.get("result", "success") != "success":
            raise MalformedFrame("venue", f"instruments: {str(msg.get('error'))[:80]}")
        found = []
        for item in as_list(field(msg, "instruments"), "instruments"):
            product = string(field(item, "symbol"), "symbol").upper()
            if "tickSize" not in item:
                continue  # an index (in_, rr_): no book
            price = unit_decimals(field(item, "tickSize"), "tickSize")
            qty = _qty_decimals(item.get("contractValueTradePrecision"))
            record = {k: _text(item[k]) for k in CONTRACT_FIELDS if k in item}
            found.append((product, price, qty, record, _listing(product, item)))
        out: list[Event] = []
        for product, price, qty, record, listing in found:
            known = self.units.get(product)
            if known is not None and known != (price, qty) and product in self.books:
                out += self.resync(product, "instrument changed", ts_recv)  # other integers
            self.units[product] = (price, qty)
            self.contracts[product] = record
            if listing is not None:
                self.listings[product] = listing
        return out

    # --- frames ------------------------------------------------------------------------

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        scan = kraken_futures_book(text, self.units)  # nearly every frame: one level's qty
        if scan is not None:
            product, seq, ts, change = scan
            return self._level(product, seq, ts, change, ts_recv)
        msg = as_dict(exact_json(text), "frame")
        if "event" in msg:
            event = msg["event"]
            if event in ERRORS:
                why = str(msg.get("message", msg.get("feed", "")))[:80]
                raise MalformedFrame("venue", f"Kraken Futures {event}: {why}", ())
            return []  # info, subscribed, unsubscribed
        feed = string(field(msg, "feed"), "feed")
        if feed == "heartbeat":
            return []
        product = string(field(msg, "product_id"), "product_id")
        if feed in ("book", "book_snapshot"):
            try:
                return self._book_message(feed, product, msg, ts_recv)
            except MalformedFrame as exc:
                raise exc.on(product) from None
        try:
            if feed == "trade":
                return self._trades(product, [msg], ts_recv)
            if feed == "trade_snapshot":
                return self._trades(product, as_list(field(msg, "trades"), "trades"), ts_recv)
            if feed == "ticker_lite":
                self._ticker(product, msg)
        except MalformedFrame as exc:
            raise exc.on() from None
        return []  # other feeds carry nothing the hub keeps

    def _units(self, product: str, what: str) -> tuple[int, int]:
        found = self.units.get(product)
        if found is None:
            raise MalformedFrame("symbol", f"{what} for {product[:30]!r} before instrument data")
        return found

    def _sync(self, product: str) -> BookSync:
        self._touch(product)
        sync = self.books.get(product)
        if sync is None:
            sync = self.books[product] = BookSync(VENUE, product, continuous=True)
            sync.sink = self._emitted
        return sync

    def _book_message(
        self, feed: str, product: str, msg: dict[str, Any], ts_recv: int
    ) -> list[Event]:
        pd, qd = self._units(product, "book")
        seq = integer(field(msg, "seq"), "seq")
        ts = millis_time(integer(field(msg, "timestamp"), "timestamp"), "timestamp")
        if feed == "book_snapshot":
            levels = tuple(
                (
                    side,
                    number_units(pd, field(level, "price"), "price", True),
                    number_units(qd, field(level, "qty"), "qty"),
                )
                for side, key in ((BUY, "bids"), (SELL, "asks"))
                for level in as_list(field(msg, key), key)
            )
            return self._sync(product).snapshot(Snapshot(levels, seq=seq, ts_event=ts), ts_recv)
        change = (
            side_of(field(msg, "side")),
            number_units(pd, field(msg, "price"), "price", True),
            number_units(qd, field(msg, "qty"), "qty"),
        )
        return self._level(product, seq, ts, change, ts_recv)

    def _level(
        self, product: str, seq: int, ts: int, change: LevelChange, ts_recv: int
    ) -> list[Event]:
        """One ``book`` message: a level's absolute quantity, numbered ``seq``."""
        return self._sync(product).delta(
            Delta((change,), first=seq, last=seq, ts_event=ts), ts_recv
        )

    def _ticker(self, product: str, msg: dict[str, Any]) -> None:
        """Compare the ticker's bid and ask with the book's best as it stands."""
        pd, _qd = self._units(product, "ticker")
        quote = (_price(pd, msg.get("bid"), "bid"), _price(pd, msg.get("ask"), "ask"))
        sync = self.books.get(product)
        if sync is None or not sync.live:
            return
        bid, ask = sync.book.best_bid(), sync.book.best_ask()
        top = (bid[0] if bid else 0, ask[0] if ask else 0)
        self.ticker_checks.setdefault(product, [0, 0])[quote != top] += 1

    def _trades(self, product: str, rows: list[Any], ts_recv: int) -> list[Event]:
        pd, qd = self._units(product, "trade")
        parsed = sorted(
            (
                integer(field(t, "seq"), "trade seq"),
                string(field(t, "uid"), "uid"),
                number_units(pd, field(t, "price"), "price", True),
                number_units(qd, field(t, "qty"), "qty", True),
                side_of(field(t, "side")),
                millis_time(integer(field(t, "time"), "time"), "time"),
            )
            for t in rows
        )
        last = self.trade_seqs.get(product)
        out: list[Event] = []
        for seq, uid, price, qty, side, ts in parsed:
            if last is not None and seq <= last:
                continue  # published already (a snapshot repeats the trades before it)
            if last is not None and seq > last + 1:
                self.trade_gaps[product] = self.trade_gaps.get(product, 0) + 1
            last = seq
            n = self._trade_seq(product)
            out.append(Trade(VENUE, product, n, uid, price, qty, side, ts, ts_recv))
        if last is not None:
            self.trade_seqs[product] = last
        return out


CONTRACT_FIELDS = ("type", "contractSize", "underlying", "lastTradingTime", "base", "quote")


def _request(event: str, feed: str, products: list[str]) -> str:
    return json.dumps({"event": event, "feed": feed, "product_ids": products})


def _listing(product: str, item: dict[str, Any]) -> Listing | None:
    """The canonical listing of a product (None when its name or dates do not parse)."""
    prefix, _, rest = product.partition("_")
    pair, _, day = rest.partition("_")
    try:
        base, quote = _pair(pair, item)
        size = strike_text(_text(item.get("contractSize", "1")))
        linear = prefix in LINEAR or "flexible" in str(item.get("type", ""))
        settle = quote if linear else base
        expiry: str | int = day
        if isinstance(item.get("lastTradingTime"), str):
            expiry = iso_time(item["lastTradingTime"], "lastTradingTime") // 1_000_000
        terms: dict[str, Any] = {"settle": settle, "contract_size": size, "inverse": not linear}
        if expiry:
            return future(VENUE, product, base, quote, expiry, **terms)
        return perp(VENUE, product, base, quote, **terms)
    except (SymbologyError, MalformedFrame):
        return None


def _pair(pair: str, item: dict[str, Any]) -> tuple[str, str]:
    """(base, quote): the answer's ``base``/``quote`` or ``pair`` (``XBT:USD``) when it has
    them, else the product name's (``XBTUSD``)."""
    if isinstance(item.get("base"), str) and isinstance(item.get("quote"), str):
        return item["base"], item["quote"]
    if isinstance(item.get("pair"), str) and ":" in item["pair"]:
        base, _, quote = item["pair"].partition(":")
        return base, quote
    for quote in QUOTES:
        if pair.endswith(quote) and len(pair) > len(quote):
            return pair[: -len(quote)], quote
    raise SymbologyError(f"no quote currency in {pair!r}")


def _text(value: Any) -> str:
    """A JSON value as its text (numbers as sent)."""
    return str(value) if isinstance(value, str) else json.dumps(value)


def _qty_decimals(value: Any) -> int:
    """``contractValueTradePrecision``: decimals of a quantity (absent: whole contracts; a
    negative precision, sizes in tens or hundreds, is whole contracts too)."""
    if value is None:
        return 0
    mant, decimals = decimal_parts(number(value, "contractValueTradePrecision"), "precision")
    precision, rest = divmod(mant, 10**decimals)
    if rest or precision > MAX_DECIMALS:
        raise MalformedFrame("range", f"contractValueTradePrecision {value[:30]!r}")
    return max(int(precision), 0)


def _price(decimals: int, value: Any, what: str) -> int:
    """A ticker price; null or absent (an empty side) is 0."""
    return 0 if value is None else number_units(decimals, value, what)
