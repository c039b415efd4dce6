"""Kraken WebSocket v1 (``book-N``, ``trade``) and v2 (``book``, ``trade``, ``instrument``).

Sans-I/O: ``KrakenParser.on_frame(text, ts_recv)`` returns normalized events.
Books are kept at the subscribed depth (levels past it are dropped, as
Kraken documents) and every update that carries a checksum is verified:
CRC32 of the top 10 asks (best first) then the top 10 bids, each level as
price then quantity with the decimal point and leading zeros removed. With
prices and quantities held as integers of the instrument's precision, that
text is simply their decimal digits.

v1 sends decimal strings, whose decimals give the precision; v2 sends JSON
numbers, rounded (never truncated) to the precision from the ``instrument``
channel or from configuration.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from hub.decimals import Unit, round_units
from hub.events import Event, LevelChange, Trade
from hub.times import iso_ns, seconds_ns
from orderbook_core import L2Book

VENUE = "KRAKEN"
CHECKSUM_LEVELS = 10
KNOWN_PRECISIONS = {"BTC/USD": (1, 8), "ETH/USD": (2, 8)}
"""(price, quantity) decimals for pairs whose instrument data a capture may lack."""


def checksum(book: L2Book) -> int:
    """Kraken's book checksum from the integer book."""
    parts = [f"{p}{q}" for p, q in book.depth(1, CHECKSUM_LEVELS)]
    parts += [f"{p}{q}" for p, q in book.depth(0, CHECKSUM_LEVELS)]
    return zlib.crc32("".join(parts).encode())


class KrakenParser(ParserBase):
    """Frames from one Kraken connection in, normalized events out."""

    venue = VENUE

    def __init__(self, depth: int = 10, precisions: dict[str, tuple[int, int]] | None = None):
        self.depth = depth
        self.precisions = dict(KNOWN_PRECISIONS, **(precisions or {}))
        super().__init__()

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        pd, qd = self.precisions[symbol]
        return decimals_unit(pd), decimals_unit(qd)

    def _request(self, method: str, channel: str, symbols: list[str]) -> str:
        params: dict[str, Any] = {"channel": channel, "symbol": symbols}
        if channel == "book":
            params["depth"] = self.depth
        return json.dumps({"method": method, "params": params})

    def subscribe(self, symbols: list[str]) -> list[str]:
        """WebSocket v2: instrument data first (precisions), then books and trades."""
        return [self._request("subscribe", c, symbols) for c in ("instrument", "book", "trade")]

    def recover(self, symbols: list[str]) -> list[str]:
        """Kraken sends a fresh book snapshot on (re)subscribing."""
        return [
            self._request("unsubscribe", "book", symbols),
            self._request("subscribe", "book", symbols),
        ]

    def _book(self, symbol: str) -> BookSync:
        sync = self.books.get(symbol)
        if sync is None:
            sync = self.books[symbol] = BookSync(VENUE, symbol, self.depth, checksum)
        return sync

    def on_frame(self, text: str, ts_recv: int) -> list[Event]:
        try:
            msg = self._loads(text)
            if isinstance(msg, dict) and msg.get("channel") in ("book", "trade"):
                # v2 sends prices as JSON numbers: re-read them as exact text, never floats.
                msg = json.loads(text, parse_float=str, parse_int=str)
        except json.JSONDecodeError:
            return self._bad(text, "not JSON")
        try:
            if isinstance(msg, list):
                return self._v1(msg, ts_recv)
            if isinstance(msg, dict) and "channel" in msg:
                return self._v2(msg, ts_recv)
            return []  # events: systemStatus, heartbeat, subscriptionStatus, pong
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return self._bad(text, f"unexpected frame ({type(exc).__name__}: {exc})")

    # --- v1 ----------------------------------------------------------------------------

    def _v1(self, msg: list[Any], ts_recv: int) -> list[Event]:
        channel, symbol = msg[-2], msg[-1]
        if channel == "trade":
            return self._v1_trades(symbol, msg[1], ts_recv)
        if not str(channel).startswith("book"):
            return []
        parts = [p for p in msg[1:-2] if isinstance(p, dict)]
        if any("as" in p or "bs" in p for p in parts):
            first = parts[0]
            sample = (first.get("as") or first["bs"])[0]
            self.precisions[symbol] = (len(sample[0].split(".")[1]), len(sample[1].split(".")[1]))
            levels = self._v1_levels(symbol, first.get("bs", []), first.get("as", []))
            return self._book(symbol).snapshot(Snapshot(levels), ts_recv)
        bids = [lv for p in parts for lv in p.get("b", [])]
        asks = [lv for p in parts for lv in p.get("a", [])]
        crc = next((int(p["c"]) for p in parts if "c" in p), None)
        ts = max((seconds_ns(lv[2]) for lv in bids + asks), default=0)
        delta = Delta(self._v1_levels(symbol, bids, asks), ts_event=ts, checksum=crc)
        return self._book(symbol).delta(delta, ts_recv)

    def _v1_levels(self, symbol: str, bids: list[Any], asks: list[Any]) -> tuple[LevelChange, ...]:
        tick, lot = self.units_for(symbol)
        return tuple(
            (side, tick.to_units(level[0]), lot.to_units(level[1]))
            for side, levels in ((0, bids), (1, asks))
            for level in levels
        )

    def _v1_trades(self, symbol: str, rows: list[Any], ts_recv: int) -> list[Event]:
        tick, lot = self.units_for(symbol)  # KeyError (a malformed frame) until the book arrives
        out: list[Event] = []
        for row in rows:
            seq = self._trade_seq(symbol)
            out.append(
                Trade(
                    VENUE,
                    symbol,
                    seq,
                    f"{row[2]}:{seq}",
                    tick.to_units(row[0]),
                    lot.to_units(row[1]),
                    0 if row[3] == "b" else 1,
                    seconds_ns(row[2]),
                    ts_recv,
                )
            )
        return out

    # --- v2 ----------------------------------------------------------------------------

    def _v2(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        channel, data = msg["channel"], msg.get("data") or {}
        if channel == "instrument":
            for pair in data.get("pairs", []):
                self.precisions[pair["symbol"]] = (
                    int(pair["price_precision"]),
                    int(pair["qty_precision"]),
                )
            return []
        if channel == "trade":
            return [self._v2_trade(t, ts_recv) for t in data]
        if channel != "book":
            return []
        out: list[Event] = []
        for item in data:
            symbol = item["symbol"]
            if symbol not in self.precisions:
                out += self._bad(json.dumps(item), f"no precision known for {symbol}")
                continue
            levels = self._v2_levels(symbol, item.get("bids", []), item.get("asks", []))
            ts = iso_ns(item.get("timestamp"))
            crc = int(item["checksum"]) if "checksum" in item else None
            if msg.get("type") == "snapshot":
                out += self._book(symbol).snapshot(
                    Snapshot(levels, ts_event=ts, checksum=crc), ts_recv
                )
            else:
                out += self._book(symbol).delta(Delta(levels, ts_event=ts, checksum=crc), ts_recv)
        return out

    def _v2_levels(self, symbol: str, bids: list[Any], asks: list[Any]) -> tuple[LevelChange, ...]:
        pd, qd = self.precisions[symbol]
        return tuple(
            (
                side,
                round_units(lv["price"], pd),
                round_units(lv["qty"], qd),
            )
            for side, levels in ((0, bids), (1, asks))
            for lv in levels
        )

    def _v2_trade(self, t: dict[str, Any], ts_recv: int) -> Trade:
        symbol = t["symbol"]
        pd, qd = self.precisions.get(symbol, (8, 8))
        seq = self._trade_seq(symbol)
        return Trade(
            VENUE,
            symbol,
            seq,
            str(t.get("trade_id", seq)),
            round_units(t["price"], pd),
            round_units(t["qty"], qd),
            0 if t["side"] == "buy" else 1,
            iso_ns(t.get("timestamp")),
            ts_recv,
        )
