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
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlparse

from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from hub.decimals import Unit
from hub.events import Event, LevelChange, Trade

VENUE = "BINANCE"
Top = tuple[int, int, int, int]  # bid price, bid size, ask price, ask size


class BinanceParser(ParserBase):
    """Frames and REST bodies in, normalized events out."""

    venue = VENUE

    def __init__(self) -> None:
        super().__init__()
        self.units: dict[str, tuple[Unit, Unit]] = {}  # raw symbol -> (tick, step)
        self.names: dict[str, str] = {}  # raw symbol (NKNUSDT) -> hub symbol (NKN-USDT)
        self.filters: dict[str, tuple[str, str]] = {}  # raw symbol -> (tickSize, stepSize)
        self.ticker_checks: dict[str, list[int]] = {}  # symbol -> [matched, mismatched]
        self._tops: dict[str, dict[int, Top]] = {}
        self._tickers: dict[str, dict[int, Top]] = {}

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        raw = next((r for r, n in self.names.items() if n == symbol), symbol)
        return self.units[raw]

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        matched, mismatched = self.ticker_checks.get(symbol, [0, 0])
        return {"book_ticker_matches": matched, "book_ticker_mismatches": mismatched}

    def instrument_urls(self, rest: str) -> list[str]:
        return [f"{rest}/api/v3/exchangeInfo"]

    def snapshot_urls(self, rest: str, symbols: list[str]) -> list[str]:
        """REST URLs that bring ``symbols`` back: exchangeInfo first while units are unknown,
        then one depth snapshot each (symbols as the hub names them, e.g. NKN-USDT)."""
        raws = [next((r for r, n in self.names.items() if n == s), s) for s in symbols]
        if any(r not in self.units for r in raws):
            return [f"{rest}/api/v3/exchangeInfo"]
        return [f"{rest}/api/v3/depth?symbol={r}&limit=1000" for r in raws]

    @staticmethod
    def stream_url(symbols: list[str]) -> str:
        streams = [
            f"{s.lower()}@{k}" for s in symbols for k in ("depth@100ms", "aggTrade", "bookTicker")
        ]
        return "/stream?streams=" + "/".join(streams)

    def _book(self, raw: str) -> BookSync:
        name = self.names.get(raw, raw)
        sync = self.books.get(name)
        if sync is None:
            sync = self.books[name] = BookSync(VENUE, name, continuous=True)
        return sync

    def _levels(self, raw: str, bids: list[Any], asks: list[Any]) -> tuple[LevelChange, ...]:
        tick, step = self.units[raw]
        return tuple(
            (side, tick.to_units(p), step.to_units(q))
            for side, levels in ((0, bids), (1, asks))
            for p, q in levels
        )

    def on_http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        try:
            data = self._loads(body)
            path = urlparse(url).path
            if path.endswith("/exchangeInfo"):
                self._exchange_info(data)
                return []
            if path.endswith("/depth"):
                raw = parse_qs(urlparse(url).query)["symbol"][0]
                if raw not in self.units:
                    return self._bad(body, f"depth snapshot for {raw} before exchangeInfo")
                snap = Snapshot(
                    self._levels(raw, data["bids"], data["asks"]), seq=int(data["lastUpdateId"])
                )
                out = self._book(raw).snapshot(snap, ts_recv)
                self._record_top(raw)
                return out
            return []
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            return self._bad(body, f"unexpected REST answer from {url} ({exc})")

    def _exchange_info(self, data: dict[str, Any]) -> None:
        """Book units: the quote and base assets' precisions, not the order-entry filters.

        Real books break the filters: NKNUSDT (2021-10-12) has a resting level of
        11979.3 with LOT_SIZE step 1, and one at price 0.25974 with tick 0.0001
        (orders placed before a tick-size change stay on the book). The
        filters stay order-entry metadata in ``filters``.
        """
        for s in data["symbols"]:
            filters = {f["filterType"]: f for f in s["filters"]}
            self.units[s["symbol"]] = (
                decimals_unit(int(s["quoteAssetPrecision"])),
                decimals_unit(int(s["baseAssetPrecision"])),
            )
            self.filters[s["symbol"]] = (
                filters["PRICE_FILTER"]["tickSize"],
                filters["LOT_SIZE"]["stepSize"],
            )
            self.names[s["symbol"]] = f"{s['baseAsset']}-{s['quoteAsset']}"

    def on_frame(self, text: str, ts_recv: int) -> list[Event]:
        try:
            msg = self._loads(text)
            data = msg.get("data", msg) if isinstance(msg, dict) else None
            if not isinstance(data, dict):
                return self._bad(text, "not a stream object")
            kind = data.get("e")
            if kind == "depthUpdate":
                return self._depth(data, ts_recv)
            if kind in ("aggTrade", "trade"):
                return self._trade(data, ts_recv)
            if "u" in data and "b" in data and "a" in data and "e" not in data:
                self._book_ticker(data)
            return []
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            return self._bad(text, f"unexpected frame ({type(exc).__name__}: {exc})")

    def _depth(self, d: dict[str, Any], ts_recv: int) -> list[Event]:
        raw = d["s"]
        if raw not in self.units:
            return self._bad(json.dumps(d), f"depth update for {raw} before exchangeInfo")
        delta = Delta(
            self._levels(raw, d["b"], d["a"]),
            first=int(d["U"]),
            last=int(d["u"]),
            ts_event=int(d["E"]) * 1_000_000,
        )
        out = self._book(raw).delta(delta, ts_recv)
        self._record_top(raw)
        return out

    def _trade(self, d: dict[str, Any], ts_recv: int) -> list[Event]:
        raw = d["s"]
        tick, step = self.units[raw]
        name = self.names.get(raw, raw)
        seq = self._trade_seq(name)
        trade_id = str(d["a"] if d["e"] == "aggTrade" else d["t"])
        # m: the buyer is the maker, so the aggressor sold.
        return [
            Trade(
                VENUE,
                name,
                seq,
                trade_id,
                tick.to_units(d["p"]),
                step.to_units(d["q"]),
                1 if d["m"] else 0,
                int(d["T"]) * 1_000_000,
                ts_recv,
            )
        ]

    def _top(self, raw: str) -> Top:
        book = self._book(raw).book
        bid, ask = book.best_bid() or (0, 0), book.best_ask() or (0, 0)
        return (bid[0], bid[1], ask[0], ask[1])

    def _record_top(self, raw: str) -> None:
        sync = self._book(raw)
        if not sync.live:
            return
        tops = self._tops.setdefault(sync.symbol, {})
        tops[sync.venue_id] = self._top(raw)
        pending = self._tickers.get(sync.symbol, {}).pop(sync.venue_id, None)
        if pending is not None:
            self._compare(sync.symbol, pending, tops[sync.venue_id])

    def _book_ticker(self, d: dict[str, Any]) -> None:
        raw = d["s"]
        tick, step = self.units[raw]
        name = self.names.get(raw, raw)
        ticker = (
            tick.to_units(d["b"]),
            step.to_units(d["B"]),
            tick.to_units(d["a"]),
            step.to_units(d["A"]),
        )
        top = self._tops.get(name, {}).get(int(d["u"]))
        if top is None:
            self._tickers.setdefault(name, {})[int(d["u"])] = ticker
        else:
            self._compare(name, ticker, top)

    def _compare(self, symbol: str, ticker: Top, top: Top) -> None:
        counts = self.ticker_checks.setdefault(symbol, [0, 0])
        counts[0 if ticker == top else 1] += 1
