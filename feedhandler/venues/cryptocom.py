"""Crypto.com Exchange v2 market WebSocket (``book.{instrument}.{depth}``, ``trade``, ``ticker``).

Sans-I/O: ``CryptocomParser.on_frame(text, ts_recv)`` and ``on_http(url, body, ts_recv)``
return normalized events. Symbols are Crypto.com's instrument names (``BTC_USDT``);
units come from ``public/get-instruments``: prices ``price_decimals``, quantities
``quantity_decimals``. Prices and sizes arrive as JSON numbers (``45.320``) and are read
exactly from their text (feedhandler.venues.exact), never as floats.

Book sync: the v2 ``book`` channel pushes full top-``depth`` snapshots (``[price,
quantity, orders]`` rows) with the venue time ``t`` (ms), no sequence number and no
checksum. Each push replaces the book; a push whose ``t`` is older than the newest one
already applied is dropped (``snapshots_older``), one that repeats it too
(``snapshots_repeated``): the newest book wins. A book that went stale (a crossed
push, a malformed frame) takes no push until ``recover`` has resubscribed it (the lost
push may have been newer than the next ones); the resubscription's snapshot is then
taken whatever its ``t``.

Trades: ``trade`` rows (``d`` id, ``s`` taker side ``BUY``/``SELL``, ``p``, ``q``, ``t``
ms). ``ticker`` rows (``b`` best bid, ``k`` best ask) are counted; the venue's ticker
is not in step with the book pushes, so they are not compared. Keep-alive: the venue
sends ``public/heartbeat`` with an ``id``; ``answers`` returns the
``public/respond-heartbeat`` with the same ``id`` (unanswered, the venue disconnects).
"""

from __future__ import annotations

import contextlib
import functools
import json
from typing import Any
from urllib.parse import urlparse

from feedhandler.frames import MalformedFrame, as_dict, as_list, field, row
from feedhandler.sync import BookSync, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from feedhandler.venues.exact import exact_json, integer, number_levels, number_units, string
from hub.decimals import Unit
from hub.events import BUY, SELL, Event, LevelChange, Trade
from hub.symbology import SymbologyError, spot
from orderbook_core import UnitScale, cryptocom_book

VENUE = "CRYPTO.COM"
INSTRUMENTS = "/v2/public/get-instruments"
DEPTH = 150
MAX_DECIMALS = 18
MAX_MS = 2**63 // 1_000_000 - 1


class CryptocomParser(ParserBase):
    """Frames and REST bodies of one Crypto.com v2 market connection in, events out."""

    venue = VENUE
    chained = False
    """Nothing reveals a lost push: a frame that cannot be pinned resyncs every book."""

    def __init__(self) -> None:
        super().__init__()
        self.units: dict[str, tuple[Unit, Unit]] = {}
        self.decimals: dict[str, tuple[int, int]] = {}
        """Per instrument: (price_decimals, quantity_decimals)."""
        self.newest: dict[str, int] = {}
        """Per instrument: the venue time (ms) of the newest snapshot applied."""
        self.older: dict[str, int] = {}
        self.repeated: dict[str, int] = {}
        self.tickers: dict[str, int] = {}
        self.wanted: set[str] = set()
        """Instruments whose book channel was subscribed (sent or captured)."""
        self.resubscribed: set[str] = set()
        """Stale instruments resubscribed (``recover``, or a new connection): the next
        snapshot, whatever its ``t``, is the venue's answer. Until then a stale book
        takes no push, since the one that was lost may have been newer than the next."""

    # --- the runner's interface --------------------------------------------------------

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        return self.units[symbol]

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        return {
            "snapshots_older": self.older.get(symbol, 0),
            "snapshots_repeated": self.repeated.get(symbol, 0),
            "tickers": self.tickers.get(symbol, 0),
        }

    def instrument_urls(self, rest: str) -> list[str]:
        return [rest + INSTRUMENTS]

    def subscribe(self, symbols: list[str]) -> list[str]:
        self.wanted.update(symbols)
        self._resubscribed(symbols)
        channels = [f"{k}.{s}" for k in ("trade", "ticker") for s in symbols]
        return [_subscribe([f"book.{s}.{DEPTH}" for s in symbols] + channels)]

    def recover(self, symbols: list[str]) -> list[str]:
        """Resubscribing a book channel makes the venue push a fresh snapshot."""
        self._resubscribed(symbols)
        return [_subscribe([f"book.{s}.{DEPTH}" for s in symbols])] if symbols else []

    def _resubscribed(self, symbols: list[str]) -> None:
        for s in symbols:
            self.newest.pop(s, None)
            self.resubscribed.add(s)

    def on_sent(self, message: str) -> None:
        try:
            channels = json.loads(message)["params"]["channels"]
            self.wanted.update(c.split(".")[1] for c in channels if c.startswith("book."))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            pass  # not a subscription

    def malformed_input(
        self, text: str, exc: MalformedFrame, ts_recv: int, where: str = "frame"
    ) -> list[Event]:
        """A frame no instrument can be told from may have been a book's first push: every
        subscribed book still waiting for one becomes a stale book, recovered like the rest."""
        if exc.symbols is None:
            for name in sorted(self.wanted - self.books.keys()):
                if name in self.units:
                    self._book(name)
        return super().malformed_input(text, exc, ts_recv, where)

    def resync(self, symbol: str, reason: str, ts_recv: int) -> list[Event]:
        """A book that goes stale while its resubscription is pending waits for the next
        ``recover``: the push it would have taken may be one sent before the one lost."""
        self.resubscribed.discard(symbol)
        if symbol not in self.books and symbol in self.units:
            self._book(symbol)  # its first push was lost: an older one must not stand in
        return super().resync(symbol, reason, ts_recv)

    def snapshot_urls(self, rest: str, symbols: list[str]) -> list[str]:
        if any(s not in self.units for s in symbols):
            return [rest + INSTRUMENTS]
        return []

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        if urlparse(url).path.rstrip("/") != INSTRUMENTS:
            return []
        msg = as_dict(exact_json(body), "instruments")
        items = as_list(field(as_dict(field(msg, "result"), "result"), "instruments"), "list")
        found = []
        for item in items:
            name = string(field(item, "instrument_name"), "instrument_name")
            base = string(field(item, "base_currency"), "base_currency")
            quote = string(field(item, "quote_currency"), "quote_currency")
            price = _decimals(field(item, "price_decimals"), "price_decimals")
            size = _decimals(field(item, "quantity_decimals"), "quantity_decimals")
            found.append((name, base, quote, price, size))
        out: list[Event] = []
        for name, base, quote, price, size in found:
            tick, lot = decimals_unit(price), decimals_unit(size)
            out += self._new_units(self.units, name, (tick, lot), ts_recv)
            self.decimals[name] = (price, size)
            with contextlib.suppress(SymbologyError):
                self.listings[name] = spot(VENUE, name, base, quote)
        return out

    # --- WebSocket ---------------------------------------------------------------------

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        scan = cryptocom_book(text, self.decimals)  # most frames: a pair's 150-level book
        if scan is not None and scan[0] in self.units:
            name, books = scan
            try:
                return self._snapshots(name, books, ts_recv)
            except MalformedFrame as exc:
                raise exc.on(name) from None
        msg = as_dict(exact_json(text), "frame")
        try:
            return self._message(msg, ts_recv)
        except MalformedFrame as exc:
            named = _book_named(msg)
            if named in self.units:  # a damaged name could be any book's: all resync
                exc.on(named)
            raise

    def _message(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        method = string(field(msg, "method"), "method")
        if method == "public/heartbeat":
            beat = integer(field(msg, "id"), "id")
            self._answers.append(json.dumps({"id": beat, "method": "public/respond-heartbeat"}))
            return []
        if method != "subscribe":
            raise MalformedFrame("shape", f"method {method[:30]!r}")
        code = integer(field(msg, "code"), "code")
        if code != 0:
            raise MalformedFrame("venue", f"error code {code}: {str(msg.get('message'))[:60]}")
        if "result" not in msg:
            if "id" in msg:
                return []  # the subscription's acknowledgement (pushes carry no id)
            raise MalformedFrame("shape", "a push with no result")  # could be any book's
        result = as_dict(field(msg, "result"), "result")
        channel = string(field(result, "channel"), "channel")
        name = string(field(result, "instrument_name"), "instrument_name")
        if channel == "candlestick":
            return []
        if name not in self.units:
            raise MalformedFrame("symbol", f"{channel[:12]} for {name[:20]!r}, an unknown pair")
        rows = as_list(field(result, "data"), "data")
        if channel == "book":
            try:
                return self._books(name, rows, ts_recv)
            except MalformedFrame as exc:
                raise exc.on(name) from None
        try:
            if channel == "trade":
                return self._trades(name, rows, ts_recv)
            if channel == "ticker":
                for r in rows:
                    as_dict(r, "ticker")
                self.tickers[name] = self.tickers.get(name, 0) + len(rows)
                return []
        except MalformedFrame as exc:
            raise exc.on() from None
        raise MalformedFrame("shape", f"channel {channel[:30]!r}")

    def _book(self, name: str) -> BookSync:
        self._touch(name)
        sync = self.books.get(name)
        if sync is None:
            sync = self.books[name] = BookSync(VENUE, name)
            sync.sink = self._emitted
        return sync

    def _books(self, name: str, rows: list[Any], ts_recv: int) -> list[Event]:
        tick, lot = self.decimals[name]
        snaps = []
        for data in rows:
            data = as_dict(data, "book")
            ms = _millis(field(data, "t"), "t")
            levels = _levels(tick, lot, field(data, "bids"), field(data, "asks"))
            snaps.append((ms, levels))
        return self._snapshots(name, snaps, ts_recv)

    def _snapshots(
        self, name: str, snaps: list[tuple[int, tuple[LevelChange, ...]]], ts_recv: int
    ) -> list[Event]:
        """A push's books (each the pair's whole book, stamped ``t`` in ms), in order: one
        no newer than the newest taken is counted, not applied."""
        out: list[Event] = []
        for ms, levels in snaps:
            newest = self.newest.get(name, -1)
            sync = self.books.get(name)
            if sync is not None and not sync.live and name not in self.resubscribed:
                continue  # stale: waits for the resubscription's snapshot
            if ms <= newest:
                counts = self.older if ms < newest else self.repeated
                counts[name] = counts.get(name, 0) + 1
                continue
            self.newest[name] = ms
            self.resubscribed.discard(name)
            out += self._book(name).snapshot(Snapshot(levels, ts_event=ms * 1_000_000), ts_recv)
        return out

    def _trades(self, name: str, rows: list[Any], ts_recv: int) -> list[Event]:
        tick, lot = self.decimals[name]
        parsed = []
        for data in rows:
            data = as_dict(data, "trade")
            trade_id = integer(field(data, "d"), "d")
            side = {"BUY": BUY, "SELL": SELL}.get(string(field(data, "s"), "s"))
            if side is None:
                raise MalformedFrame("shape", f"trade side {str(data.get('s'))[:10]!r}")
            price = _units(tick, field(data, "p"), "p", positive=True)
            size = _units(lot, field(data, "q"), "q", positive=True)
            ts = _millis(field(data, "t"), "t") * 1_000_000
            parsed.append((trade_id, price, size, side, ts))
        # The venue lists the newest trade first.
        return [
            Trade(VENUE, name, self._trade_seq(name), str(i), p, q, s, ts, ts_recv)
            for i, p, q, s, ts in reversed(parsed)
        ]


def _book_named(msg: dict[str, Any]) -> str | None:
    """The pair a book push names, read leniently: a damaged envelope (no ``code``, a bad
    ``method``) around a book push still loses that book's newest snapshot."""
    result = msg.get("result")
    if isinstance(result, dict) and result.get("channel") == "book":
        name = result.get("instrument_name")
        if isinstance(name, str):
            return name
    return None


def _subscribe(channels: list[str]) -> str:
    return json.dumps({"method": "subscribe", "params": {"channels": channels}})


def _units(decimals: int, value: Any, what: str, positive: bool = False) -> int:
    return number_units(decimals, value, what, positive)


@functools.lru_cache(maxsize=64)
def _scale(decimals: int) -> UnitScale:
    return UnitScale(1, decimals)


def _levels(tick: int, lot: int, bids: Any, asks: Any) -> tuple[LevelChange, ...]:
    plain = number_levels(bids, asks, _scale(tick), _scale(lot))
    if plain is not None:
        return tuple(plain)
    return tuple(
        (
            side,
            _units(tick, (r := row(level, 3, "level"))[0], "price", positive=True),
            _units(lot, r[1], "quantity", positive=True),
        )
        for side, levels in ((0, as_list(bids, "bids")), (1, as_list(asks, "asks")))
        for level in levels
    )


def _millis(value: Any, what: str) -> int:
    ms = integer(value, what)
    if ms > MAX_MS:
        raise MalformedFrame("time", f"{what} is out of range")
    return ms


def _decimals(value: Any, what: str) -> int:
    decimals = integer(value, what)
    if decimals > MAX_DECIMALS:
        raise MalformedFrame("range", f"{what} {decimals} is more than {MAX_DECIMALS}")
    return decimals
