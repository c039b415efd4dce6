"""Gate.io WebSocket v4 spot (``spot.order_book_update``, ``spot.trades``) with REST books.

Sans-I/O: ``GateioParser.on_frame(text, ts_recv)`` and ``on_http(url, body, ts_recv)``
return normalized events. Symbols are Gate.io's pair ids (``BTC_USDT``); units come from
``/api/v4/spot/currency_pairs``: prices ``precision`` decimals, amounts
``amount_precision``.

Book sync, as Gate.io documents it: subscribe to ``spot.order_book_update`` (absolute
amounts per price, ``"0"`` deletes; each update spans update ids ``U``..``u``), buffer
the updates, fetch ``/api/v4/spot/order_book?with_id=true`` (its ``id``), drop updates
with ``u`` < id + 1, the first applied has ``U`` <= id + 1 <= ``u``, then each ``U`` is
the previous ``u`` + 1; anything else is a gap and the pair is fetched again. The shared
engine (feedhandler.sync, ``continuous``) runs exactly that rule. No checksum.

Trades: ``spot.trades`` (``id``, ``side`` of the taker, ``create_time_ms``). Keep-alive:
the runner sends ``spot.ping`` every ``heartbeat_s``; the venue answers ``spot.pong``.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

from feedhandler.frames import (
    MalformedFrame,
    as_dict,
    as_list,
    as_str,
    count,
    field,
    price_levels,
    units,
)
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from hub.decimals import Unit
from hub.events import BUY, SELL, Event, LevelChange, Trade
from hub.symbology import SymbologyError, spot
from orderbook_core import gateio_update

VENUE = "GATEIO"
PAIRS = "/api/v4/spot/currency_pairs"
ORDER_BOOK = "/api/v4/spot/order_book"
BOOK = "spot.order_book_update"
TRADES = "spot.trades"
HEARTBEAT_S = 10.0
MAX_DECIMALS = 18


class GateioParser(ParserBase):
    """Frames and REST bodies of one Gate.io v4 spot connection in, normalized events out."""

    venue = VENUE
    heartbeat_s = HEARTBEAT_S

    def __init__(self) -> None:
        super().__init__()
        self.units: dict[str, tuple[Unit, Unit]] = {}
        self.updates: dict[str, int] = {}
        """Book updates received per pair (applied ones are the book's ``updates``)."""

    # --- the runner's interface --------------------------------------------------------

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        return self.units[symbol]

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        received = self.updates.get(symbol, 0)
        sync = self.books.get(symbol)
        applied = sync.stats.updates if sync is not None else 0
        return {
            "book_updates": received,
            "book_updates_applied": applied,
            "book_updates_dropped": received - applied,
        }

    def instrument_urls(self, rest: str) -> list[str]:
        return [rest + PAIRS]

    def subscribe(self, symbols: list[str]) -> list[str]:
        out = [_request(BOOK, [s, "100ms"]) for s in symbols]
        return [*out, _request(TRADES, list(symbols))]

    def snapshot_urls(self, rest: str, symbols: list[str]) -> list[str]:
        if any(s not in self.units for s in symbols):
            return [rest + PAIRS]
        return [f"{rest}{ORDER_BOOK}?currency_pair={s}&limit=100&with_id=true" for s in symbols]

    def heartbeat(self) -> list[str]:
        return [json.dumps({"time": int(time.time()), "channel": "spot.ping"})]

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        parsed = urlparse(url)
        if parsed.path.rstrip("/") == PAIRS:
            return self._pairs(body, ts_recv)
        if parsed.path.rstrip("/") != ORDER_BOOK:
            return []
        pair = parse_qs(parsed.query).get("currency_pair", [""])[0]
        try:
            tick, lot = self._units(pair, "order book")
            data = as_dict(self._json(body), "order book")
            seq = count(field(data, "id"), "id")
            levels = price_levels(tick, lot, field(data, "bids"), field(data, "asks"))
        except MalformedFrame as exc:
            raise exc.on() from None  # a refused snapshot changes no book
        return self._book(pair).snapshot(Snapshot(levels, seq=seq), ts_recv)

    def _pairs(self, body: str, ts_recv: int) -> list[Event]:
        found = []
        for item in as_list(self._json(body), "currency pairs"):
            pair = as_str(field(item, "id"), "id")
            price = _decimals(field(item, "precision"), "precision")
            amount = _decimals(field(item, "amount_precision"), "amount_precision")
            base = as_str(field(item, "base"), "base")
            quote = as_str(field(item, "quote"), "quote")
            found.append((pair, base, quote, book_unit(price, 2), book_unit(amount, 3)))
        out: list[Event] = []
        for pair, base, quote, tick, lot in found:
            out += self._new_units(self.units, pair, (tick, lot), ts_recv)
            with contextlib.suppress(SymbologyError):
                self.listings[pair] = spot(VENUE, pair, base, quote)
        return out

    # --- WebSocket ---------------------------------------------------------------------

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        scan = gateio_update(text, self.units)  # most frames: a book update
        if scan is not None:
            pair, first, last, ts, levels = scan
            return self._delta(pair, first, last, ts, levels, ts_recv)
        msg = as_dict(self._json(text), "frame")
        channel = as_str(field(msg, "channel"), "channel")
        event = msg.get("event")
        if channel in ("spot.pong", "spot.ping") or event in ("subscribe", "unsubscribe"):
            if isinstance(msg.get("error"), dict):
                raise MalformedFrame("venue", f"error: {str(msg['error'])[:80]}", ())
            return []
        if event != "update":
            raise MalformedFrame("shape", f"event {str(event)[:30]!r} on {channel[:30]!r}")
        result = as_dict(field(msg, "result"), "result")
        if channel == BOOK:
            pair = as_str(field(result, "s"), "s")
            if pair not in self.units:
                raise MalformedFrame("symbol", f"book update for {pair[:20]!r}, an unknown pair")
            try:
                return self._update(pair, result, ts_recv)
            except MalformedFrame as exc:
                raise exc.on(pair) from None
        if channel == TRADES:
            try:
                return self._trade(result, ts_recv)
            except MalformedFrame as exc:
                raise exc.on() from None
        return []  # tickers, candlesticks

    def _book(self, pair: str) -> BookSync:
        self._touch(pair)
        sync = self.books.get(pair)
        if sync is None:
            sync = self.books[pair] = BookSync(VENUE, pair, continuous=True)
            sync.sink = self._emitted
        return sync

    def _update(self, pair: str, data: dict[str, Any], ts_recv: int) -> list[Event]:
        tick, lot = self.units[pair]
        first, last = count(field(data, "U"), "U"), count(field(data, "u"), "u")
        if first > last:
            raise MalformedFrame("inconsistent", f"first update id {first} after last {last}")
        levels = price_levels(tick, lot, field(data, "b"), field(data, "a"))
        ts = count(field(data, "t"), "t") * 1_000_000
        return self._delta(pair, first, last, ts, levels, ts_recv)

    def _delta(
        self,
        pair: str,
        first: int,
        last: int,
        ts: int,
        levels: tuple[LevelChange, ...],
        ts_recv: int,
    ) -> list[Event]:
        """One book update, read by the compiled scanner or by ``_update``."""
        self.updates[pair] = self.updates.get(pair, 0) + 1
        delta = Delta(levels, first=first, last=last, ts_event=ts)
        try:
            return self._book(pair).delta(delta, ts_recv)
        except MalformedFrame as exc:
            raise exc.on(pair) from None

    def _trade(self, data: dict[str, Any], ts_recv: int) -> list[Event]:
        pair = as_str(field(data, "currency_pair"), "currency_pair")
        tick, lot = self._units(pair, "trade")
        trade_id = count(field(data, "id"), "id", digits=True)
        side = field(data, "side")
        if side not in ("buy", "sell"):
            raise MalformedFrame("shape", f"trade side must be buy or sell, got {side!r:.10}")
        price = units(tick, field(data, "price"), "price", positive=True)
        size = units(lot, field(data, "amount"), "amount", positive=True)
        ts = _millis_text(field(data, "create_time_ms"))
        seq = self._trade_seq(pair)
        taker = BUY if side == "buy" else SELL
        return [Trade(VENUE, pair, seq, str(trade_id), price, size, taker, ts, ts_recv)]

    def _units(self, pair: str, what: str) -> tuple[Unit, Unit]:
        found = self.units.get(pair)
        if found is None:
            raise MalformedFrame("symbol", f"{what} for {pair[:20]!r}, an unknown pair")
        return found


def _request(channel: str, payload: list[str]) -> str:
    msg = {"time": int(time.time()), "channel": channel, "event": "subscribe"}
    return json.dumps({**msg, "payload": payload})


def _millis_text(value: Any) -> int:
    """``create_time_ms`` ("1619093543708.2642": milliseconds with a fraction) in ns."""
    text = as_str(value, "create_time_ms")
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or len(whole) > 13 or (frac and not frac.isdigit()):
        raise MalformedFrame("time", f"create_time_ms {text[:30]!r}")
    return int(whole) * 1_000_000 + int((frac + "000000")[:6])


def _decimals(value: Any, what: str) -> int:
    decimals = count(value, what)
    if decimals > MAX_DECIMALS:
        raise MalformedFrame("range", f"{what} {decimals} is more than {MAX_DECIMALS}")
    return decimals


BOOK_DECIMALS = 10


def book_unit(decimals: int, extra: int) -> Unit:
    """The unit a book level is held in: books carry more decimals than the order-entry
    precision (KuCoin BCHSV-USDT sizes with 11 decimals at a 0.00000001 increment, Gate.io
    ZKS_ETH prices with 8 at precision 6), so 10 decimals, or the precision plus ``extra``
    where that is finer; sizes up to ~9e8 still fit int64."""
    return decimals_unit(min(max(BOOK_DECIMALS, decimals + extra), MAX_DECIMALS))
