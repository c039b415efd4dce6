"""Binance spot: combined streams (depthUpdate, trade/aggTrade, bookTicker) plus REST snapshots.

Sans-I/O. ``on_frame`` takes stream frames; ``on_http`` takes REST bodies
(``/api/v3/exchangeInfo`` for tick and step sizes, ``/api/v3/depth`` for
snapshots). Depth sync is exactly Binance's documented procedure, run by
the shared sync engine: buffer diffs, take the snapshot's lastUpdateId, drop
diffs with u <= lastUpdateId, the first applied diff must have
U <= lastUpdateId + 1 <= u, and every later one U == previous u + 1.

Each ``bookTicker`` carries the update id it reflects; the parser compares it
with the book's top at that same id (whichever arrives first) and counts
matches and mismatches.

``BinanceBase`` is what spot shares with the futures markets
(feedhandler/venues/binance_futures.py): the combined-stream frames, REST snapshots,
trades and the bookTicker comparison. A market supplies its REST prefix, its
exchangeInfo reading and its depth-update ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

from feedhandler.frames import (
    MalformedFrame,
    as_dict,
    as_list,
    as_str,
    count,
    field,
    millis_time,
    price_levels,
    units,
)
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, Top, decimals_unit, keep_top
from hub.decimals import Unit
from hub.events import Event, LevelChange, Trade
from orderbook_core import binance_frame

VENUE = "BINANCE"
MAX_DECIMALS = 18


@dataclass(slots=True)
class _Watch:
    """What one raw symbol's frames reach, looked up once (the tops and tickers dicts are
    the parser's own, so a dropped ``_Watch`` loses nothing)."""

    name: str
    tops: dict[int, Top]
    tickers: dict[int, Top]
    sync: BookSync | None = None


class BinanceBase(ParserBase):
    """One Binance market's combined streams and REST answers in, normalized events out."""

    api = ""
    """REST path prefix of the market (``/api/v3``, ``/fapi/v1``, ``/dapi/v1``)."""

    def __init__(self) -> None:
        super().__init__()
        self.units: dict[str, tuple[Unit, Unit]] = {}  # raw symbol -> (tick, step)
        self.names: dict[str, str] = {}  # raw symbol (NKNUSDT) -> hub symbol (NKN-USDT)
        self.filters: dict[str, tuple[str, str]] = {}  # raw symbol -> (tickSize, stepSize)
        self.ticker_checks: dict[str, list[int]] = {}  # symbol -> [matched, mismatched]
        self._tops: dict[str, dict[int, Top]] = {}
        self._tickers: dict[str, dict[int, Top]] = {}
        self._watched: dict[str, _Watch] = {}  # raw symbol -> its name, book, tops, tickers

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        raw = next((r for r, n in self.names.items() if n == symbol), symbol)
        return self.units[raw]

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        matched, mismatched = self.ticker_checks.get(symbol, [0, 0])
        return {"book_ticker_matches": matched, "book_ticker_mismatches": mismatched}

    def instrument_urls(self, rest: str) -> list[str]:
        return [f"{rest}{self.api}/exchangeInfo"]

    def snapshot_urls(self, rest: str, symbols: list[str]) -> list[str]:
        """REST URLs that bring ``symbols`` back: exchangeInfo first while units are unknown,
        then one depth snapshot each (symbols as the hub names them, e.g. NKN-USDT)."""
        raws = [next((r for r, n in self.names.items() if n == s), s) for s in symbols]
        if any(r not in self.units for r in raws):
            return self.instrument_urls(rest)
        return [f"{rest}{self.api}/depth?symbol={r}&limit=1000" for r in raws]

    @staticmethod
    def stream_url(symbols: list[str]) -> str:
        streams = [
            f"{s.lower()}@{k}" for s in symbols for k in ("depth@100ms", "aggTrade", "bookTicker")
        ]
        return "/stream?streams=" + "/".join(streams)

    def _watch(self, raw: str) -> _Watch:
        w = self._watched.get(raw)
        if w is None:
            name = self.names.get(raw, raw)
            tops, tickers = self._tops.setdefault(name, {}), self._tickers.setdefault(name, {})
            w = self._watched[raw] = _Watch(name, tops, tickers, self.books.get(name))
        return w

    def _book(self, w: _Watch) -> BookSync:
        self._touched.add(w.name)
        sync = w.sync
        if sync is None:
            sync = w.sync = self.books.get(w.name)
        if sync is None:
            sync = w.sync = self.books[w.name] = BookSync(self.venue, w.name, continuous=True)
            sync.sink = self._emitted
        return sync

    def _units(self, raw: str, what: str) -> tuple[Unit, Unit]:
        found = self.units.get(raw)
        if found is None:
            raise MalformedFrame("symbol", f"{what} for {raw[:20]} before exchangeInfo")
        return found

    def _levels(self, raw: str, bids: Any, asks: Any) -> tuple[LevelChange, ...]:
        tick, step = self._units(raw, "depth")
        return price_levels(tick, step, bids, asks, "quantity")

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        path = urlparse(url).path
        if path.endswith("/exchangeInfo"):
            self._exchange_info(self._json(body))
            self._watched.clear()  # looked up again: the answer may have named a symbol
            return []
        if not path.endswith("/depth"):
            return []
        raw = parse_qs(urlparse(url).query).get("symbol", [""])[0]
        try:
            data = self._json(body)
            levels = self._levels(raw, field(data, "bids"), field(data, "asks"))
            snap = Snapshot(levels, seq=count(field(data, "lastUpdateId"), "lastUpdateId"))
        except MalformedFrame as exc:
            raise exc.on() from None  # a refused snapshot changes no book
        return self._applied(raw, snap, ts_recv)

    def _exchange_info(self, data: Any) -> None:
        """Keep the answer's units and names (read whole before any is kept)."""
        raise NotImplementedError

    def _ids(self, d: dict[str, Any]) -> tuple[int, int, int | None]:
        """A depth update's first and last update ids, and the previous update's last id
        where the market chains updates by it (None: by first == previous last + 1)."""
        first, last = count(field(d, "U"), "U"), count(field(d, "u"), "u")
        return first, last, self._chained(first, last, self._prev(d))

    def _prev(self, d: dict[str, Any]) -> int | None:
        """The previous update's last id, where the market sends and chains by it."""
        return None

    def _chained(self, first: int, last: int, prev: int | None) -> int | None:
        """Refuse ids that cannot be one update's; the ``prev`` the sync engine chains by."""
        if first > last:
            raise MalformedFrame("inconsistent", f"first update id {first} after last {last}")
        return None

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        scan = binance_frame(text, self.units)
        if scan is not None:
            out = self._scanned(scan, ts_recv)
            if out is not None:
                return out
        msg = self._json(text)
        data = as_dict(msg.get("data", msg) if isinstance(msg, dict) else msg, "stream data")
        kind = data.get("e")
        if kind == "depthUpdate":
            try:
                return self._depth(data, ts_recv)
            except MalformedFrame as exc:
                raise exc.on(*self._named(msg, data)) from None
        if kind in ("aggTrade", "trade"):
            try:
                return self._trade(data, ts_recv)
            except MalformedFrame as exc:
                raise exc.on() from None
        # Spot's bookTicker has no event type; the futures markets' says "bookTicker".
        if kind == "bookTicker" or (kind is None and "u" in data and "b" in data and "a" in data):
            try:
                self._book_ticker(data)
            except MalformedFrame as exc:
                raise exc.on() from None
        elif kind is not None and not isinstance(kind, str):
            raise MalformedFrame("shape", "event type 'e' must be a string")
        return []

    def _scanned(self, scan: tuple[Any, ...], ts_recv: int) -> list[Event] | None:
        """A depth update or bookTicker the compiled scanner read (orderbook_core._scan);
        None if its ids are not an update's (the ordinary path then refuses the frame)."""
        if scan[0] == "ticker":
            _, raw, update, ticker = scan
            self._ticker(raw, update, ticker)
            return []
        _, raw, first, last, prev, ts_event, levels = scan
        try:
            chained = self._chained(first, last, None if prev < 0 else prev)
        except MalformedFrame:
            return None
        delta = Delta(levels, first=first, last=last, ts_event=ts_event, prev=chained)
        return self._applied(raw, delta, ts_recv)

    def _named(self, msg: Any, data: dict[str, Any]) -> tuple[str, ...]:
        """The symbol a bad depth update was for: its ``s``, else its stream's name."""
        raw = data.get("s")
        if not isinstance(raw, str) or raw not in self.units:
            stream = msg.get("stream") if isinstance(msg, dict) else None
            raw = stream.split("@")[0].upper() if isinstance(stream, str) else ""
        return (self.names.get(raw, raw),) if raw in self.units else ()

    def _depth(self, d: dict[str, Any], ts_recv: int) -> list[Event]:
        raw = as_str(field(d, "s"), "s")
        first, last, prev = self._ids(d)
        delta = Delta(
            self._levels(raw, field(d, "b"), field(d, "a")),
            first=first,
            last=last,
            ts_event=millis_time(field(d, "E"), "E"),
            prev=prev,
        )
        return self._applied(raw, delta, ts_recv)

    def _trade(self, d: dict[str, Any], ts_recv: int) -> list[Event]:
        raw = as_str(field(d, "s"), "s")
        tick, step = self._units(raw, "trade")
        trade_id = count(field(d, "a" if d["e"] == "aggTrade" else "t"), "trade id")
        maker = field(d, "m")
        if not isinstance(maker, bool):
            raise MalformedFrame("shape", "'m' must be true or false")
        price = units(tick, field(d, "p"), "price", positive=True)
        size = units(step, field(d, "q"), "quantity", positive=True)
        ts = millis_time(field(d, "T"), "T")
        name = self.names.get(raw, raw)
        seq = self._trade_seq(name)
        # m: the buyer is the maker, so the aggressor sold.
        return [Trade(self.venue, name, seq, str(trade_id), price, size, int(maker), ts, ts_recv)]

    def _applied(self, raw: str, change: Snapshot | Delta, ts_recv: int) -> list[Event]:
        """A snapshot or depth update applied to the symbol's book, and the book's top kept:
        a bookTicker waiting for this update id is compared with it."""
        w = self._watch(raw)
        sync = self._book(w)
        if isinstance(change, Snapshot):
            out = sync.snapshot(change, ts_recv)
        else:
            out = sync.delta(change, ts_recv)
        if sync.live:
            top = sync.book.top()
            keep_top(w.tops, sync.venue_id, top)
            pending = w.tickers.pop(sync.venue_id, None)
            if pending is not None:
                self._compare(w.name, pending, top)
        return out

    def _book_ticker(self, d: dict[str, Any]) -> None:
        raw = as_str(field(d, "s"), "s")
        tick, step = self._units(raw, "bookTicker")
        ticker = (
            units(tick, field(d, "b"), "b"),
            units(step, field(d, "B"), "B"),
            units(tick, field(d, "a"), "a"),
            units(step, field(d, "A"), "A"),
        )
        self._ticker(raw, count(field(d, "u"), "u"), ticker)

    def _ticker(self, raw: str, update: int, ticker: Top) -> None:
        """Compare a bookTicker with the book's top at its update id, or keep it until the
        book reaches that id."""
        w = self._watch(raw)
        top = w.tops.get(update)
        if top is None:
            keep_top(w.tickers, update, ticker)
        else:
            self._compare(w.name, ticker, top)

    def _compare(self, symbol: str, ticker: Top, top: Top) -> None:
        counts = self.ticker_checks.setdefault(symbol, [0, 0])
        counts[0 if ticker == top else 1] += 1


class BinanceParser(BinanceBase):
    """Binance spot."""

    venue = VENUE
    api = "/api/v3"

    def _exchange_info(self, data: Any) -> None:
        """Book units: the quote and base assets' precisions, not the order-entry filters.

        Real books break the filters: NKNUSDT (2021-10-12) has a resting level of
        11979.3 with LOT_SIZE step 1, and one at price 0.25974 with tick 0.0001
        (orders placed before a tick-size change stay on the book). The
        filters stay order-entry metadata in ``filters``. The whole answer is
        read before any of it is kept.
        """
        found = []
        for s in as_list(field(data, "symbols"), "symbols"):
            found.append(
                (
                    as_str(field(s, "symbol"), "symbol"),
                    decimals_unit(precision(field(s, "quoteAssetPrecision"))),
                    decimals_unit(precision(field(s, "baseAssetPrecision"))),
                    *order_filters(s),
                    as_str(field(s, "baseAsset"), "baseAsset"),
                    as_str(field(s, "quoteAsset"), "quoteAsset"),
                )
            )
        for raw, tick, step, tick_size, step_size, base, quote in found:
            name = f"{base}-{quote}"
            self.units[raw] = (tick, step)
            self.filters[raw] = (tick_size, step_size)
            self.names[raw] = name
            self._list_spot(self.venue, name, base, quote)  # keyed by the hub symbol


def precision(value: Any, what: str = "asset precision") -> int:
    """A precision field (decimals), at most ``MAX_DECIMALS``."""
    decimals = count(value, what)
    if decimals > MAX_DECIMALS:
        raise MalformedFrame("range", f"{what} {decimals} > {MAX_DECIMALS}")
    return decimals


def order_filters(symbol: Any) -> tuple[str, str]:
    """An exchangeInfo symbol's order-entry ``tickSize`` and ``stepSize`` (PRICE_FILTER and
    LOT_SIZE filters)."""
    filters = {}
    for f in as_list(field(symbol, "filters"), "filters"):
        filters[as_str(field(f, "filterType"), "filterType")] = f
    return (
        as_str(field(field(filters, "PRICE_FILTER"), "tickSize"), "tickSize"),
        as_str(field(field(filters, "LOT_SIZE"), "stepSize"), "stepSize"),
    )
