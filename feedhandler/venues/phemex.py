"""Phemex WebSocket (``orderbook``, ``trade``) for contracts (``BTCUSD``) and spot (``sBTCUSDT``).

Sans-I/O: ``PhemexParser.on_frame(text, ts_recv)`` and ``on_http(url, body, ts_recv)``
return normalized events. Prices come as scaled integers (``priceEp``): a contract's
``priceScale`` from ``/exchange/public/cfg/v2/products`` (4 for the USD contracts), 8 for
spot; the hub keeps them as units of ``10**-scale`` exactly as sent. Contract quantities
are whole contracts (``lotSize``); spot quantities are scaled by 8 (``Ev``). Listings
come from the same products answer (``contractSize``, ``settleCurrency``).

Book sync: ``orderbook.subscribe`` sends a ``snapshot`` (top 30 per side) and then
``incremental`` updates with absolute quantities (0 deletes); the ``sequence`` is per
symbol and only increases, but is not contiguous, so a lost update cannot be seen. An
update whose sequence does not increase marks the book stale (``sequence``) and
``recover`` resubscribes, which sends a new snapshot. The venue re-sends snapshots
mid-stream; each is compared with the book rebuilt from the updates
(``snapshots_matching`` / ``snapshots_differing``) and then replaces it. Books keep 30
levels per side.

Trades: ``trade`` pushes ``[timestamp ns, side, priceEp, qty]`` rows, newest first; the
subscription's ``snapshot`` is history and not published. Keep-alive: the runner sends
``server.ping`` every ``heartbeat_s`` (Phemex closes a connection idle for 30 s).
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
    row,
)
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from feedhandler.venues.exact import decimal_parts, exact_json, integer, number, string
from hub.decimals import Unit
from hub.events import BUY, SELL, Event, LevelChange, Trade
from hub.symbology import SymbologyError, perp, spot
from orderbook_core import bad_level, int_trades

VENUE = "PHEMEX"
PRODUCTS = "/exchange/public/cfg/v2/products"
DEPTH = 30
SPOT_SCALE = 8
HEARTBEAT_S = 5.0
MAX_SCALE = 18
SIDES = {"Buy": BUY, "Sell": SELL}


class PhemexParser(ParserBase):
    """Frames and REST bodies of one Phemex connection in, normalized events out."""

    venue = VENUE
    chained = False
    heartbeat_s = HEARTBEAT_S

    def __init__(self) -> None:
        super().__init__()
        self.units: dict[str, tuple[Unit, Unit]] = {}
        self.sequence: dict[str, int] = {}
        self.matching: dict[str, int] = {}
        self.differing: dict[str, int] = {}
        self._id = 0

    # --- the runner's interface --------------------------------------------------------

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        return self.units[symbol]

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        return {
            "snapshots_matching": self.matching.get(symbol, 0),
            "snapshots_differing": self.differing.get(symbol, 0),
        }

    def instrument_urls(self, rest: str) -> list[str]:
        return [rest + PRODUCTS]

    def subscribe(self, symbols: list[str]) -> list[str]:
        return [self._request(f"{k}.subscribe", s) for k in ("orderbook", "trade") for s in symbols]

    def recover(self, symbols: list[str]) -> list[str]:
        return [self._request("orderbook.subscribe", s) for s in symbols]

    def snapshot_urls(self, rest: str, symbols: list[str]) -> list[str]:
        return [rest + PRODUCTS] if any(s not in self.units for s in symbols) else []

    def heartbeat(self) -> list[str]:
        return [self._request("server.ping")]

    def _request(self, method: str, *params: str) -> str:
        self._id += 1
        return json.dumps({"id": self._id, "method": method, "params": list(params)})

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        if urlparse(url).path.rstrip("/") != PRODUCTS:
            return []
        data = as_dict(field(as_dict(exact_json(body), "products"), "data"), "data")
        found = []
        for item in as_list(field(data, "products"), "products"):
            name = string(field(item, "symbol"), "symbol")
            kind = string(field(item, "type"), "type")
            quote = string(field(item, "quoteCurrency"), "quoteCurrency")
            if kind == "Spot":
                base = string(field(item, "baseCurrency"), "baseCurrency")
                found.append((name, kind, base, quote, SPOT_SCALE, SPOT_SCALE, "", ""))
            elif kind == "Perpetual":
                scale = integer(field(item, "priceScale"), "priceScale")
                if scale > MAX_SCALE:
                    raise MalformedFrame("range", f"priceScale {scale} is more than {MAX_SCALE}")
                base = string(field(item, "contractUnderlyingAssets"), "underlying")
                settle = string(field(item, "settleCurrency"), "settleCurrency")
                contract = _plain(number(field(item, "contractSize"), "contractSize"))
                if settle != quote and base == quote:
                    base = settle  # inverse (BTCUSD): the underlying field names the quote
                found.append((name, kind, base, quote, scale, 0, settle, contract))
        out: list[Event] = []
        for name, kind, base, quote, scale, lot, settle, size in found:
            units = (decimals_unit(scale), decimals_unit(lot))
            out += self._new_units(self.units, name, units, ts_recv)
            with contextlib.suppress(SymbologyError, ValueError, TypeError):
                if kind == "Spot":
                    self.listings[name] = spot(VENUE, name, base, quote)
                else:
                    self.listings[name] = perp(
                        VENUE,
                        name,
                        base,
                        quote,
                        settle=settle,
                        contract_size=size,
                        inverse=settle != quote,
                    )
        return out

    # --- WebSocket ---------------------------------------------------------------------

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        msg = as_dict(self._json(text), "frame")
        if "book" in msg:
            name = as_str(field(msg, "symbol"), "symbol")
            if name not in self.units:
                raise MalformedFrame("symbol", f"book for {name[:20]!r}, an unknown symbol")
            try:
                return self._book_frame(name, msg, ts_recv)
            except MalformedFrame as exc:
                raise exc.on(name) from None
        if "trades" in msg:
            try:
                return self._trades(msg, ts_recv)
            except MalformedFrame as exc:
                raise exc.on() from None
        if "result" in msg or "error" in msg:
            error = msg.get("error")
            if error is not None:
                raise MalformedFrame("venue", f"error: {str(error)[:80]}", ())
            return []
        raise MalformedFrame("shape", f"frame with keys {sorted(msg)[:5]}")

    def _sync(self, name: str) -> BookSync:
        self._touch(name)
        sync = self.books.get(name)
        if sync is None:
            sync = self.books[name] = BookSync(VENUE, name, depth=DEPTH)
            sync.sink = self._emitted
        return sync

    def _book_frame(self, name: str, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        kind = as_str(field(msg, "type"), "type")
        seq = count(field(msg, "sequence"), "sequence")
        ts = count(field(msg, "timestamp"), "timestamp")
        data = as_dict(field(msg, "book"), "book")
        levels = _levels(field(data, "bids"), field(data, "asks"))
        if kind == "snapshot":
            sync = self._sync(name)
            if sync.live:
                counts = self.matching if _top(levels) == sync.book.snapshot() else self.differing
                counts[name] = counts.get(name, 0) + 1
            self.sequence[name] = seq
            return sync.snapshot(Snapshot(levels, seq=seq, ts_event=ts), ts_recv)
        if kind != "incremental":
            raise MalformedFrame("shape", f"book type {kind[:20]!r}")
        sync = self._sync(name)
        last = self.sequence.get(name)
        if not sync.live or last is None:
            return []
        if seq <= last:
            return sync.invalidate("sequence", ts_recv)
        self.sequence[name] = seq
        return sync.delta(Delta(levels, ts_event=ts), ts_recv)

    def _trades(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        name = as_str(field(msg, "symbol"), "symbol")
        kind = as_str(field(msg, "type"), "type")
        rows = as_list(field(msg, "trades"), "trades")
        if name not in self.units:
            raise MalformedFrame("symbol", f"trade for {name[:20]!r}, an unknown symbol")
        parsed = _trade_rows(rows)
        if kind == "snapshot":
            return []  # history from before the subscription
        seq = count(field(msg, "sequence"), "sequence")
        out: list[Event] = []
        for n, (ts, side, price, qty) in enumerate(reversed(parsed)):
            trade_id = f"{seq}-{n}"
            out.append(
                Trade(VENUE, name, self._trade_seq(name), trade_id, price, qty, side, ts, ts_recv)
            )
        return out


def _plain(value: Any) -> str:
    """A JSON number's text in plain decimal form (``1.0E-4``: ``0.0001``, ``1.0``: ``1``)."""
    mant, decimals = decimal_parts(value, "contractSize")
    while decimals and mant % 10 == 0:
        mant //= 10
        decimals -= 1
    if not decimals:
        return str(mant)
    digits = str(mant).rjust(decimals + 1, "0")
    return f"{digits[:-decimals]}.{digits[-decimals:]}"


def _trade_rows(rows: list[Any]) -> list[tuple[int, int, int, int]]:
    """Trade rows ``[timestamp, side, priceEp, qty]`` as (ts, side, price, qty): read and
    checked by the compiled core when every row is plain (a snapshot of history has
    ~1,000), else each as ``_checked_trade`` reads it, which names the first that is wrong."""
    plain = int_trades(rows, SIDES)
    return plain if plain is not None else [_checked_trade(r) for r in rows]


def _checked_trade(r: Any) -> tuple[int, int, int, int]:
    items = row(r, 4, "trade")
    said = items[1]
    side = SIDES.get(said) if isinstance(said, str) else None
    if side is None:
        raise MalformedFrame("shape", f"trade side {str(said)[:10]!r}")
    ts = count(items[0], "timestamp")
    return (ts, side, _positive(items[2], "price"), _positive(items[3], "qty"))


def _positive(value: Any, what: str) -> int:
    units = count(value, what)
    if units == 0:
        raise MalformedFrame("range", f"{what} must be positive")
    return units


def _levels(bids: Any, asks: Any) -> tuple[LevelChange, ...]:
    """Book rows ``[priceEp, qty]`` as level changes: read whole and checked in one compiled
    pass (``bad_level``: int prices above 0, int sizes, both in int64), or, for anything
    that pass refuses, row by row, which names what is wrong."""
    b, a = as_list(bids, "bids"), as_list(asks, "asks")
    try:
        levels = tuple([(0, r[0], r[1]) for r in b] + [(1, r[0], r[1]) for r in a])
    except (TypeError, IndexError, KeyError):
        return _checked_levels(b, a)
    return levels if bad_level(levels) < 0 else _checked_levels(b, a)


def _checked_levels(bids: list[Any], asks: list[Any]) -> tuple[LevelChange, ...]:
    return tuple(
        (side, _positive((r := row(level, 2, "level"))[0], "price"), count(r[1], "qty"))
        for side, levels in ((0, as_list(bids, "bids")), (1, as_list(asks, "asks")))
        for level in levels
    )


def _top(levels: tuple[LevelChange, ...]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    bids = sorted(((p, q) for s, p, q in levels if s == 0 and q), reverse=True)[:DEPTH]
    asks = sorted((p, q) for s, p, q in levels if s == 1 and q)[:DEPTH]
    return bids, asks
