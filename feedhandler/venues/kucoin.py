"""KuCoin spot WebSocket (``/market/level2``, ``/market/match``, ``/market/ticker``) with REST
level2 snapshots.

Sans-I/O: ``KucoinParser.on_frame(text, ts_recv)`` and ``on_http(url, body, ts_recv)``
return normalized events. Symbols are KuCoin's (``BTC-USDT``); units come from
``/api/v1/symbols``: prices have the decimals of ``priceIncrement``, sizes those of
``baseIncrement`` (a unit that fine holds every level the venue sends).

Book sync, as KuCoin documents it: subscribe to ``/market/level2:<symbols>`` and buffer
its ``trade.l2update`` messages; fetch the level2 snapshot (its ``sequence``); drop each
message whose ``sequenceEnd`` is at or before the snapshot's sequence, and in the others
skip each change whose own sequence (the third item of ``[price, size, sequence]``) is at
or before it; then each message must start at most one past the last one's
``sequenceEnd`` (no gap). Each message holds one change per sequence from
``sequenceStart`` to ``sequenceEnd`` (all 3,853 of the capture do): one that does not is
refused. A change with price ``"0"`` carries only a sequence (it moved
the sequence without changing the book) and is skipped. Size ``"0"`` deletes the level.
The parser holds the buffer (messages received while the book has no snapshot) because
changes inside a message are filtered by their own sequence; the shared engine
(feedhandler.sync, ``continuous``) then runs the gap rule on ``sequenceStart``/``sequenceEnd``.

``/market/ticker`` messages carry the ``sequence`` of the book they describe: each one
whose sequence is the ``sequenceEnd`` of an applied message is compared with the book's
best bid and ask (price and size) after that message (``ticker_matches``/
``ticker_mismatches``). Trades: ``trade.l3match`` (``tradeId``, ``side`` of the taker,
``time`` in ns). Keep-alive: ``{"type": "ping"}`` every ``heartbeat_s`` (the welcome's
``pingInterval`` is 18 s), answered by ``pong``. Each connection needs a token: the runner POSTs
``/api/v1/bullet-public`` (``token_url``) and connects to the answer's first instance
server's ``endpoint`` with ``?token=…&connectId=…`` (``connect_url``), pinging at its
``pingInterval``.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from feedhandler.frames import (
    MalformedFrame,
    as_dict,
    as_list,
    as_str,
    count,
    field,
    price_levels,
    row,
    units,
)
from feedhandler.sync import BUFFER_LIMIT, BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, Top, decimals_unit, keep_top
from hub.decimals import Unit
from hub.events import BUY, SELL, Event, Trade
from hub.symbology import SymbologyError, spot
from orderbook_core import kucoin_frame

VENUE = "KUCOIN"
SYMBOLS = "/api/v1/symbols"
LEVEL2 = "/api/v3/market/orderbook/level2"
BULLET = "/api/v1/bullet-public"
HEARTBEAT_S = 18.0
MAX_DECIMALS = 18
Change = tuple[int, int, int, int]
"""(side, price units, size units, sequence); price 0: a sequence-only change."""


class KucoinParser(ParserBase):
    """Frames and REST bodies of one KuCoin spot connection in, normalized events out."""

    venue = VENUE
    heartbeat_s = HEARTBEAT_S

    def __init__(self) -> None:
        super().__init__()
        self.units: dict[str, tuple[Unit, Unit]] = {}
        self.messages: dict[str, int] = {}
        """level2 messages received per symbol."""
        self.ticker_checks: dict[str, list[int]] = {}
        self._pending: dict[str, deque[tuple[int, int, tuple[Change, ...], int]]] = {}
        self._tops: dict[str, dict[int, Top]] = {}
        self._tickers: dict[str, dict[int, Top]] = {}
        self._pings = 0
        self._connects = 0

    # --- the runner's interface --------------------------------------------------------

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        return self.units[symbol]

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        sync = self.books.get(symbol)
        matches, mismatches = self.ticker_checks.get(symbol, [0, 0])
        received = self.messages.get(symbol, 0)
        applied = sync.stats.updates if sync is not None else 0
        return {
            "level2_messages": received,
            "level2_applied": applied,
            "level2_dropped": received - applied,
            "ticker_matches": matches,
            "ticker_mismatches": mismatches,
        }

    def instrument_urls(self, rest: str) -> list[str]:
        return [rest + SYMBOLS]

    def subscribe(self, symbols: list[str]) -> list[str]:
        joined = ",".join(symbols)
        return [
            _request(n, f"/market/{topic}:{joined}")
            for n, topic in enumerate(("level2", "match", "ticker"), 1)
        ]

    def token_url(self, rest: str) -> str:
        return rest + BULLET

    def connect_url(self, body: str) -> str:
        try:
            data = as_dict(field(as_dict(self._json(body), "answer"), "data"), "data")
            token = as_str(field(data, "token"), "token")
            servers = as_list(field(data, "instanceServers"), "instanceServers")
            if not servers or not token:
                raise MalformedFrame("shape", "no instance server or an empty token")
            server = as_dict(servers[0], "instance server")
            endpoint = as_str(field(server, "endpoint"), "endpoint")
            interval = count(field(server, "pingInterval"), "pingInterval")
        except MalformedFrame as exc:
            raise exc.on() from None
        if not endpoint.startswith(("wss://", "ws://")):
            raise MalformedFrame("shape", f"endpoint not a WebSocket address: {endpoint[:80]!r}")
        if interval > 0:
            self.heartbeat_s = interval / 1000
        self._connects += 1
        query = urlencode({"token": token, "connectId": f"mdhub-{self._connects}"})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def snapshot_urls(self, rest: str, symbols: list[str]) -> list[str]:
        if any(s not in self.units for s in symbols):
            return [rest + SYMBOLS]
        return [f"{rest}{LEVEL2}?symbol={s}" for s in symbols]

    def heartbeat(self) -> list[str]:
        self._pings += 1
        return [json.dumps({"id": str(self._pings), "type": "ping"})]

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        parsed = urlparse(url)
        if parsed.path.rstrip("/") == SYMBOLS:
            return self._symbols(body, ts_recv)
        if not parsed.path.startswith("/api/") or "/market/orderbook/level2" not in parsed.path:
            return []
        symbol = parse_qs(parsed.query).get("symbol", [""])[0]
        try:
            tick, lot = self._units(symbol, "level2 snapshot")
            data = as_dict(field(as_dict(self._json(body), "answer"), "data"), "data")
            seq = count(field(data, "sequence"), "sequence", digits=True)
            levels = price_levels(tick, lot, field(data, "bids"), field(data, "asks"), "size")
            ts = count(field(data, "time"), "time") * 1_000_000
        except MalformedFrame as exc:
            raise exc.on() from None  # a refused snapshot changes no book
        sync = self._book(symbol)
        out = sync.snapshot(Snapshot(levels, seq=seq, ts_event=ts), ts_recv)
        pending = self._pending.pop(symbol, deque())
        for first, last, changes, ts_event in pending:
            if last <= seq:
                sync.stats.dropped += 1
                continue
            out += self._apply(sync, first, last, changes, ts_event, ts_recv)
        return out

    def _symbols(self, body: str, ts_recv: int) -> list[Event]:
        found = []
        for item in as_list(field(as_dict(self._json(body), "answer"), "data"), "data"):
            symbol = as_str(field(item, "symbol"), "symbol")
            tick_dec = _decimals(field(item, "priceIncrement"), "priceIncrement")
            lot_dec = _decimals(field(item, "baseIncrement"), "baseIncrement")
            base = as_str(field(item, "baseCurrency"), "baseCurrency")
            quote = as_str(field(item, "quoteCurrency"), "quoteCurrency")
            found.append((symbol, base, quote, book_unit(tick_dec, 2), book_unit(lot_dec, 3)))
        out: list[Event] = []
        for symbol, base, quote, tick, lot in found:
            out += self._new_units(self.units, symbol, (tick, lot), ts_recv)
            with contextlib.suppress(SymbologyError):
                self.listings[symbol] = spot(VENUE, symbol, base, quote)
        return out

    # --- WebSocket ---------------------------------------------------------------------

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        scan = kucoin_frame(text, self.units)  # nearly every frame: level2 or a ticker
        if scan is not None:
            if scan[0] == "ticker":
                _kind, symbol, seq, ticker = scan
                self._ticked(symbol, seq, ticker)
                return []
            _kind, symbol, first, last, changes = scan
            try:
                return self._changes(symbol, first, last, changes, ts_recv)
            except MalformedFrame as exc:
                raise exc.on(symbol) from None
        msg = as_dict(self._json(text), "frame")
        kind = as_str(field(msg, "type"), "type")
        if kind in ("welcome", "ack", "pong"):
            return []
        if kind == "ping":
            self._answers.append(json.dumps({"id": str(msg.get("id", "")), "type": "pong"}))
            return []
        if kind == "error":
            raise MalformedFrame("venue", f"error: {str(msg.get('data'))[:80]}", ())
        if kind != "message":
            raise MalformedFrame("shape", f"message type {kind[:30]!r}")
        subject = as_str(field(msg, "subject"), "subject")
        data = as_dict(field(msg, "data"), "data")
        if subject == "trade.l2update":
            symbol = as_str(field(data, "symbol"), "symbol")
            if symbol not in self.units:
                raise MalformedFrame("symbol", f"level2 for {symbol[:20]!r}, an unknown symbol")
            try:
                return self._level2(symbol, data, ts_recv)
            except MalformedFrame as exc:
                raise exc.on(symbol) from None
        try:
            if subject == "trade.l3match":
                return self._trade(data, ts_recv)
            if subject == "trade.ticker":
                self._ticker(as_str(field(msg, "topic"), "topic"), data)
        except MalformedFrame as exc:
            raise exc.on() from None
        return []  # candles

    def _book(self, symbol: str) -> BookSync:
        self._touch(symbol)
        sync = self.books.get(symbol)
        if sync is None:
            sync = self.books[symbol] = BookSync(VENUE, symbol, continuous=True)
            sync.sink = self._emitted
        return sync

    def _level2(self, symbol: str, data: dict[str, Any], ts_recv: int) -> list[Event]:
        tick, lot = self.units[symbol]
        first = count(field(data, "sequenceStart"), "sequenceStart", digits=True)
        last = count(field(data, "sequenceEnd"), "sequenceEnd", digits=True)
        if first > last:
            raise MalformedFrame("inconsistent", f"sequenceStart {first} after sequenceEnd {last}")
        changes_in = as_dict(field(data, "changes"), "changes")
        changes: list[Change] = []
        for side, key in ((0, "bids"), (1, "asks")):
            for x in as_list(field(changes_in, key), key):
                r = row(x, 3, "change")
                seq = count(r[2], "change sequence", digits=True)
                if not first <= seq <= last:
                    raise MalformedFrame("inconsistent", f"change sequence {seq} outside message")
                price = units(tick, r[0], "price")
                changes.append((side, price, units(lot, r[1], "size") if price else 0, seq))
        if last - first + 1 != len(changes) or len({c[3] for c in changes}) != len(changes):
            # One change per sequence, none missing: a damaged message shows here.
            raise MalformedFrame("inconsistent", f"changes do not number {first}..{last}")
        return self._changes(symbol, first, last, tuple(changes), ts_recv)

    def _changes(
        self, symbol: str, first: int, last: int, changes: tuple[Change, ...], ts_recv: int
    ) -> list[Event]:
        """One level2 message's changes, one per sequence first..last: applied, or kept
        until the snapshot comes."""
        self.messages[symbol] = self.messages.get(symbol, 0) + 1
        sync = self.books.get(symbol) or self._book(symbol)
        self._touched.add(symbol)
        if not sync.live:
            buffered = self._pending.get(symbol)
            if buffered is None:
                buffered = self._pending[symbol] = deque(maxlen=BUFFER_LIMIT)
            buffered.append((first, last, changes, 0))
            return []
        return self._apply(sync, first, last, changes, 0, ts_recv)

    def _apply(
        self,
        sync: BookSync,
        first: int,
        last: int,
        changes: tuple[Change, ...],
        ts: int,
        ts_recv: int,
    ) -> list[Event]:
        after = sync.venue_id
        if first > after:  # most messages: no change the book holds already
            levels = tuple([(s, p, q) for s, p, q, _seq in changes if p])
        else:
            levels = tuple([(s, p, q) for s, p, q, seq in changes if p and seq > after])
        out = sync.delta(Delta(levels, first=first, last=last, ts_event=ts), ts_recv)
        if sync.live and sync.venue_id == last:
            symbol = sync.symbol
            top = sync.book.top()
            tops = self._tops.get(symbol)  # not setdefault: it builds a dict every call
            if tops is None:
                tops = self._tops[symbol] = {}
            keep_top(tops, last, top)
            tickers = self._tickers.get(symbol)
            pending = None if tickers is None else tickers.pop(last, None)
            if pending is not None:
                self._compare(symbol, pending, top)
        return out

    def _ticker(self, topic: str, data: dict[str, Any]) -> None:
        symbol = topic.rpartition(":")[2]
        tick, lot = self._units(symbol, "ticker")
        ticker = (
            units(tick, field(data, "bestBid"), "bestBid"),
            units(lot, field(data, "bestBidSize"), "bestBidSize"),
            units(tick, field(data, "bestAsk"), "bestAsk"),
            units(lot, field(data, "bestAskSize"), "bestAskSize"),
        )
        self._ticked(symbol, count(field(data, "sequence"), "sequence", digits=True), ticker)

    def _ticked(self, symbol: str, seq: int, ticker: Top) -> None:
        """A ticker at book sequence ``seq``: compared with the book's top there, or kept
        until the book gets there."""
        top = self._tops.get(symbol, {}).get(seq)
        if top is None:
            keep_top(self._tickers.setdefault(symbol, {}), seq, ticker)
        else:
            self._compare(symbol, ticker, top)

    def _compare(self, symbol: str, ticker: Top, top: Top) -> None:
        self.ticker_checks.setdefault(symbol, [0, 0])[ticker != top] += 1

    def _trade(self, data: dict[str, Any], ts_recv: int) -> list[Event]:
        symbol = as_str(field(data, "symbol"), "symbol")
        tick, lot = self._units(symbol, "trade")
        trade_id = as_str(field(data, "tradeId"), "tradeId")
        side = field(data, "side")
        if side not in ("buy", "sell"):
            raise MalformedFrame("shape", f"trade side must be buy or sell, got {side!r:.10}")
        price = units(tick, field(data, "price"), "price", positive=True)
        size = units(lot, field(data, "size"), "size", positive=True)
        ts = count(field(data, "time"), "time", digits=True)
        seq = self._trade_seq(symbol)
        taker = BUY if side == "buy" else SELL
        return [Trade(VENUE, symbol, seq, trade_id[:64], price, size, taker, ts, ts_recv)]

    def _units(self, symbol: str, what: str) -> tuple[Unit, Unit]:
        found = self.units.get(symbol)
        if found is None:
            raise MalformedFrame("symbol", f"{what} for {symbol[:20]!r}, an unknown symbol")
        return found


def _request(n: int, topic: str) -> str:
    msg = {"id": n, "type": "subscribe", "topic": topic}
    return json.dumps({**msg, "privateChannel": False, "response": True})


def _decimals(value: Any, what: str) -> int:
    """The decimals of an increment string ("0.0001" is 4)."""
    text = as_str(value, what)
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > MAX_DECIMALS:
        raise MalformedFrame("range", f"{what} {text[:30]!r}")
    return len(frac.rstrip("0")) if frac.strip("0") else 0


BOOK_DECIMALS = 10


def book_unit(decimals: int, extra: int) -> Unit:
    """The unit a book level is held in: books carry more decimals than the order-entry
    precision (KuCoin BCHSV-USDT sizes with 11 decimals at a 0.00000001 increment, Gate.io
    ZKS_ETH prices with 8 at precision 6), so 10 decimals, or the precision plus ``extra``
    where that is finer; sizes up to ~9e8 still fit int64."""
    return decimals_unit(min(max(BOOK_DECIMALS, decimals + extra), MAX_DECIMALS))
