"""Gemini market data v2 (``l2``: ``l2_updates``, ``trade``, ``heartbeat``) and symbol details.

Sans-I/O: ``GeminiParser.on_frame(text, ts_recv)`` and ``on_http(url, body, ts_recv)``
return normalized events. Symbols are Gemini's (``BTCUSD``); units come from
``/v1/symbols/details/<symbol>``: prices the decimals of ``quote_increment``, quantities
those of ``tick_size`` (Gemini's name for the amount step), both JSON numbers read from
their exact text (``1E-8``); ``base_currency``/``quote_currency`` give the listing.

One subscription (``{"type":"subscribe","subscriptions":[{"name":"l2","symbols":[...]}]}``)
streams every symbol's book and trades. A symbol's first ``l2_updates`` after
subscribing is its full book; it is the one that also carries ``trades`` (recent
history, not published) and ``auction_events``. Every later ``l2_updates`` holds
``[side, price, quantity]`` changes of absolute quantities (``"0"`` deletes). There are
no sequence numbers and no checksum: a crossed book marks the symbol stale, and
``recover`` unsubscribes and subscribes its ``l2`` again, which brings a new full book;
updates in between are dropped. ``trade`` events carry ``event_id``, ``price``,
``quantity``, the taker's ``side`` and ``timestamp`` (ms). Gemini sends ``heartbeat``
every 5 s by itself; the runner's WebSocket pings do the rest.

Symbol details come one REST request per symbol. The runner fetches them for symbols
without units (``snapshot_urls``) while the first frames already arrive: frames of such
a subscribed symbol wait in the parser (up to ``PENDING_FRAMES`` per symbol) and are
replayed in order once its details are in, so the full book a subscription starts with
is not lost. A frame of any other symbol without details, or of an unknown type, may
be a damaged frame of a book we keep: every book resyncs.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import urlparse

from feedhandler.frames import (
    MalformedFrame,
    as_dict,
    as_list,
    as_str,
    count,
    field,
    sided_levels,
    units,
)
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from feedhandler.venues.exact import decimal_parts, decimals_of, exact_json, number, string
from hub.decimals import Unit
from hub.events import BUY, SELL, Event, Trade
from hub.symbology import SymbologyError, spot

VENUE = "GEMINI"
DETAILS = "/v1/symbols/details/"
MAX_DECIMALS = 18
PENDING_FRAMES = 10_000
"""Frames kept per symbol until its details arrive (the oldest go first)."""
PENDING_SYMBOLS = 64
"""Symbols whose frames may wait for details at once (more are refused as unknown)."""


class GeminiParser(ParserBase):
    """Frames and REST bodies of one Gemini v2 market data connection in, events out."""

    venue = VENUE
    chained = False
    """Nothing reveals a lost update: a frame that cannot be pinned resyncs every book."""

    def __init__(self) -> None:
        super().__init__()
        self.units: dict[str, tuple[Unit, Unit]] = {}
        self.pending: dict[str, list[tuple[str, int]]] = {}
        """Frames (text, ts_recv) of symbols whose details have not arrived yet."""
        self.subscribed: set[str] = set()
        """Symbols asked for: only their frames may wait for details (any other symbol's
        frame may be a damaged one of a book we keep, so every book resyncs)."""

    # --- the runner's interface --------------------------------------------------------

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        return self.units[symbol]

    def subscribe(self, symbols: list[str]) -> list[str]:
        self.subscribed.update(symbols)
        return [_request("subscribe", symbols)]

    def recover(self, symbols: list[str]) -> list[str]:
        """A new ``l2`` subscription starts with the symbol's full book."""
        return [_request("unsubscribe", symbols), _request("subscribe", symbols)]

    def snapshot_urls(self, rest: str, symbols: list[str]) -> list[str]:
        """Details of symbols without units (books come over the WebSocket)."""
        return [f"{rest}{DETAILS}{s.lower()}" for s in symbols if s not in self.units]

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        if not urlparse(url).path.startswith(DETAILS):
            return []  # the symbols list: details name the units
        data = as_dict(exact_json(body), "symbol details")
        symbol = string(field(data, "symbol"), "symbol").upper()
        price = _decimals(field(data, "quote_increment"), f"{symbol} quote_increment")
        quantity = _decimals(field(data, "tick_size"), f"{symbol} tick_size")
        base = string(field(data, "base_currency"), "base_currency")
        quote = string(field(data, "quote_currency"), "quote_currency")
        tick, lot = decimals_unit(price), decimals_unit(quantity)
        out: list[Event] = []
        out += self._new_units(self.units, symbol, (tick, lot), ts_recv)
        with contextlib.suppress(SymbologyError):
            self.listings[symbol] = spot(VENUE, symbol, base, quote)
        for text, ts in self.pending.pop(symbol, []):
            out += self.on_frame(text, ts)
        return out

    # --- WebSocket ---------------------------------------------------------------------

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        msg = as_dict(self._json(text), "frame")
        kind = as_str(field(msg, "type"), "type")
        if kind == "heartbeat":
            return []
        if kind == "error":
            raise MalformedFrame("venue", f"error: {str(msg.get('reason'))[:80]}", ())
        if kind.startswith(("auction", "candles")):
            return []  # nothing the hub keeps
        if kind not in ("l2_updates", "trade"):
            raise MalformedFrame("shape", f"message type {kind[:30]!r}")
        symbol = as_str(field(msg, "symbol"), "symbol")
        if symbol not in self.units:
            if symbol not in self.subscribed:
                raise MalformedFrame("symbol", f"{symbol[:20]!r}: not subscribed, no details")
            self._hold(symbol, text, ts_recv)
            return []
        if kind == "trade":
            try:
                return self._trade(symbol, msg, ts_recv)
            except MalformedFrame as exc:
                raise exc.on() from None
        try:
            return self._l2(symbol, msg, ts_recv)
        except MalformedFrame as exc:
            raise exc.on(symbol) from None

    def _hold(self, symbol: str, text: str, ts_recv: int) -> None:
        held = self.pending.get(symbol)
        if held is None:
            if len(self.pending) >= PENDING_SYMBOLS:
                raise MalformedFrame("symbol", f"{symbol[:20]!r}: no details for it")
            held = self.pending[symbol] = []
        held.append((text, ts_recv))
        if len(held) > PENDING_FRAMES:
            del held[0]

    def _book(self, symbol: str) -> BookSync:
        self._touch(symbol)
        sync = self.books.get(symbol)
        if sync is None:
            sync = self.books[symbol] = BookSync(VENUE, symbol)
            sync.sink = self._emitted
        return sync

    def _l2(self, symbol: str, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        tick, lot = self.units[symbol]
        changes = as_list(field(msg, "changes"), "changes")
        levels = sided_levels(tick, lot, changes, SIDES, "change", "quantity")
        if "trades" in msg:  # the full book a subscription starts with
            as_list(msg["trades"], "trades")
            return self._book(symbol).snapshot(Snapshot(levels), ts_recv)
        return self._book(symbol).delta(Delta(levels), ts_recv)

    def _trade(self, symbol: str, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        tick, lot = self.units[symbol]
        trade_id = count(field(msg, "event_id"), "event_id", digits=True)
        price = units(tick, field(msg, "price"), "price", positive=True)
        size = units(lot, field(msg, "quantity"), "quantity", positive=True)
        side = _side(field(msg, "side"))
        ms = count(field(msg, "timestamp"), "timestamp")
        if ms > (1 << 63) // 1_000_000:
            raise MalformedFrame("time", "timestamp is out of range")
        seq = self._trade_seq(symbol)
        ts = ms * 1_000_000
        return [Trade(VENUE, symbol, seq, str(trade_id), price, size, side, ts, ts_recv)]


def _request(kind: str, symbols: list[str]) -> str:
    return json.dumps({"type": kind, "subscriptions": [{"name": "l2", "symbols": symbols}]})


def _decimals(value: Any, what: str) -> int:
    """The decimals of a positive increment sent as a JSON number (``0.01``, ``1E-8``)."""
    if decimal_parts(number(value, what), what)[0] <= 0:
        raise MalformedFrame("range", f"{what} must be positive")
    decimals = decimals_of(value, what)
    if decimals > MAX_DECIMALS:
        raise MalformedFrame("range", f"{what} has more than {MAX_DECIMALS} decimals")
    return decimals


SIDES = {"buy": BUY, "sell": SELL}


def _side(value: Any) -> int:
    side = SIDES.get(value) if isinstance(value, str) else None
    if side is not None:
        return side
    raise MalformedFrame("shape", f"side must be 'buy' or 'sell', got {value!r:.20}")
