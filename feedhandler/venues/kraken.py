"""Kraken WebSocket v1 (``book-N``, ``trade``) and v2 (``book``, ``trade``, ``instrument``).

Sans-I/O: ``KrakenParser.on_frame(text, ts_recv)`` returns normalized events.
Books are kept at the subscribed depth (levels past it are dropped, as
Kraken documents) and every update that carries a checksum is verified:
CRC32 of the top 10 asks (best first) then the top 10 bids, whatever the
depth, each level as price then quantity with the decimal point and leading
zeros removed. With prices and quantities held as integers of the
instrument's precision, that text is simply their decimal digits (scaled
when v1's text carries more decimals than the pair's precision).

The depth of each pair's book is what was subscribed: the subscription sent
(a capture's ``send`` line, through ``on_sent``), its acknowledgement (v1
``subscriptionStatus``, v2 ``subscribe`` result) or v1's channel name
(``book-1000``); ``depth`` (10) otherwise.

Precisions (units) come from REST ``AssetPairs`` (``pair_decimals``,
``lot_decimals``, by ``wsname``; v2 spells ``XBT`` as ``BTC``), the v2
``instrument`` channel, or, for v1, the decimals of the first book snapshot; a
pair's units stay fixed once a book or trade used them. v1 sends decimal
strings; v2 sends JSON numbers, rounded (never truncated) to the precision. A
trade for a pair whose precision is not known yet is refused (``symbol``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from typing import Any
from urllib.parse import urlparse

from feedhandler.frames import (
    MalformedFrame,
    as_dict,
    as_list,
    as_str,
    count,
    field,
    iso_time,
    rounded,
    row,
    seconds_time,
    units,
)
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from hub.decimals import Unit, parse_decimal
from hub.events import Event, LevelChange, Trade
from hub.symbology import SymbologyError, spot
from orderbook_core import L2Book, list_levels

VENUE = "KRAKEN"
CHECKSUM_LEVELS = 10
KNOWN_PRECISIONS = {"BTC/USD": (1, 8), "ETH/USD": (2, 8)}
"""(price, quantity) decimals for pairs whose instrument data a capture may lack."""
MAX_DECIMALS = 18
"""Most decimals a precision may have (10**18 units of one already fill int64)."""
DEFAULT_DEPTH = 10
"""Kraken's book depth when a subscription names none."""
V2_ASSETS = {"XBT": "BTC", "XDG": "DOGE"}
"""Asset codes of REST and v1 names that v2 spells otherwise (``XBT/USD`` is ``BTC/USD``)."""


def checksum(book: L2Book, shift: tuple[int, int] = (0, 0)) -> int:
    """Kraken's book checksum from the integer book; ``shift``: the decimals the venue's
    text has beyond the units, for prices and quantities (the book core writes the digits
    and takes the CRC, no Python string per level)."""
    return book.digits_checksum(CHECKSUM_LEVELS, *shift)


class KrakenParser(ParserBase):
    """Frames from one Kraken connection in, normalized events out."""

    venue = VENUE

    def __init__(
        self, depth: int = DEFAULT_DEPTH, precisions: dict[str, tuple[int, int]] | None = None
    ):
        self.depth = depth
        """The depth this parser subscribes with, and a pair's when nothing says otherwise."""
        self.depths: dict[str, int] = {}
        """Each pair's subscribed depth, as the subscription or the venue says it."""
        self.precisions = dict(KNOWN_PRECISIONS, **(precisions or {}))
        self.shifts: dict[str, tuple[int, int]] = {}
        """Decimals a pair's v1 book text has beyond its units (its checksum is of the text)."""
        super().__init__()

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        pd, qd = self.precisions[symbol]
        return decimals_unit(pd), decimals_unit(qd)

    def instrument_urls(self, rest: str) -> list[str]:
        return [f"{rest}/0/public/AssetPairs"]

    def on_sent(self, message: str) -> None:
        """Book depths of a subscription sent: v1 ``subscription.depth`` per ``pair``, v2
        ``params.depth`` per ``symbol`` (Kraken's default 10 when absent)."""
        try:
            msg = json.loads(message)
        except (ValueError, RecursionError):
            return
        if not isinstance(msg, dict):
            return
        if msg.get("event") == "subscribe":
            params, pairs = msg.get("subscription"), msg.get("pair")
            channel = params.get("name") if isinstance(params, dict) else None
        elif msg.get("method") == "subscribe":
            params = msg.get("params")
            channel = params.get("channel") if isinstance(params, dict) else None
            pairs = params.get("symbol") if isinstance(params, dict) else None
        else:
            return
        depth = _depth(params.get("depth", DEFAULT_DEPTH)) if isinstance(params, dict) else None
        if channel == "book" and depth is not None and isinstance(pairs, list):
            for pair in pairs:
                if isinstance(pair, str):
                    self._set_depth(pair, depth)

    def _set_depth(self, symbol: str, depth: int) -> None:
        self.depths[symbol] = depth
        sync = self.books.get(symbol)
        if sync is not None:
            sync.depth = depth

    def _learn(self, symbol: str, price_decimals: int, qty_decimals: int) -> None:
        """A pair's precision, unless a book or trade already uses its units."""
        if symbol not in self.precisions or (
            symbol not in self.books and symbol not in self.trades
        ):
            self.precisions[symbol] = (price_decimals, qty_decimals)
        self._list(symbol)

    def _list(self, symbol: str) -> None:
        """The pair's canonical listing, from its name (``XBT/USD`` is ``BTC-USD``)."""
        base, slash, quote = symbol.partition("/")
        if slash and symbol not in self.listings:
            with contextlib.suppress(SymbologyError):  # no listing for a code it cannot name
                self.listings[symbol] = spot(VENUE, symbol, base, quote)

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        """REST ``AssetPairs``: every WebSocket pair's precision, read whole before any is kept."""
        if not urlparse(url).path.endswith("/AssetPairs"):
            return []
        data = as_dict(self._json(body), "AssetPairs answer")
        errors = as_list(data.get("error") or [], "error")
        if errors:
            raise MalformedFrame("venue", f"AssetPairs answered {errors[0]!r:.80}")
        found = []
        for key, pair in as_dict(field(data, "result"), "result").items():
            wsname = as_dict(pair, f"pair {key[:20]}").get("wsname")
            if wsname is None:
                continue  # not traded over WebSocket
            found.append(
                (
                    as_str(wsname, "wsname"),
                    _precision(field(pair, "pair_decimals"), "pair_decimals"),
                    _precision(field(pair, "lot_decimals"), "lot_decimals"),
                )
            )
        for wsname, pd, qd in found:
            v2 = "/".join(V2_ASSETS.get(a, a) for a in wsname.split("/"))
            for symbol in dict.fromkeys((wsname, v2)):
                self._learn(symbol, pd, qd)
        return []

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
        self._touch(symbol)
        sync = self.books.get(symbol)
        if sync is None:
            shifts = self.shifts

            def crc(book: L2Book) -> int:  # checksum() inline: one Python call a frame
                return book.digits_checksum(CHECKSUM_LEVELS, *shifts.get(symbol, (0, 0)))

            depth = self.depths.get(symbol, self.depth)
            sync = self.books[symbol] = BookSync(VENUE, symbol, depth, crc)
            sync.sink = self._emitted
            self._list(symbol)
        return sync

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        if _V2_BOOK_OR_TRADE.match(text):
            # Read once, with every number as its exact text (the general path below would
            # read the frame twice); a frame this prefix misjudges takes that path.
            exact = _exact_json(text)
            if isinstance(exact, dict) and exact.get("channel") in ("book", "trade"):
                return self._v2(exact["channel"], exact, ts_recv)
        try:
            msg = self._loads(text)
        except ValueError:
            # orjson refuses numbers no float holds (1e400); read as exact text, the frame
            # is refused for that number, and pinned on its symbol.
            msg = _exact_json(text)
        if isinstance(msg, list):
            return self._v1(msg, ts_recv)
        if not isinstance(msg, dict):
            raise MalformedFrame("shape", f"a frame must be an object or a list, got {msg!r:.40}")
        if "channel" not in msg:
            if "event" in msg or "method" in msg:
                self._acknowledged(msg)
                return []  # v1 events (heartbeat, systemStatus, ...), v2 method answers
            raise MalformedFrame("shape", "an object with no 'channel', 'event' or 'method'")
        channel = as_str(msg["channel"], "channel")
        if channel in ("book", "trade"):
            msg = _exact_json(text)  # v2 prices are JSON numbers: their exact text, never floats
        return self._v2(channel, msg, ts_recv)

    def _acknowledged(self, msg: dict[str, Any]) -> None:
        """The depth of a book subscription the venue confirms (v1 ``subscriptionStatus``,
        v2 ``subscribe`` result); other events and answers say nothing the parser keeps."""
        if msg.get("event") == "subscriptionStatus" and msg.get("status") == "subscribed":
            sub, pair = msg.get("subscription"), msg.get("pair")
        elif msg.get("method") == "subscribe" and msg.get("success") is True:
            sub = msg.get("result")
            pair = sub.get("symbol") if isinstance(sub, dict) else None
        else:
            return
        if not isinstance(sub, dict) or not isinstance(pair, str):
            return
        if sub.get("name", sub.get("channel")) == "book":
            depth = _depth(sub.get("depth", DEFAULT_DEPTH))
            if depth is not None:
                self._set_depth(pair, depth)

    # --- v1 ----------------------------------------------------------------------------

    def _v1(self, msg: list[Any], ts_recv: int) -> list[Event]:
        if len(msg) < 4:
            raise MalformedFrame("shape", f"a v1 channel message has {len(msg)} items, needs 4")
        channel = as_str(msg[-2], "channel name")
        if channel == "trade":
            symbol = as_str(msg[-1], "pair")
            try:
                return self._v1_trades(symbol, as_list(msg[1], "trades"), ts_recv)
            except MalformedFrame as exc:
                raise exc.on() from None
        if not channel.startswith("book"):
            return []
        symbol = as_str(msg[-1], "pair")
        try:
            return self._v1_book(symbol, msg[1:-2], _channel_depth(channel), ts_recv)
        except MalformedFrame as exc:
            raise exc.on(symbol) from None

    def _v1_book(
        self, symbol: str, parts: list[Any], depth: int | None, ts_recv: int
    ) -> list[Event]:
        one = parts[0] if len(parts) == 1 and type(parts[0]) is dict else None
        if one is None or "as" in one or "bs" in one:
            parts = [as_dict(p, "book message part") for p in parts]
            if any("as" in p or "bs" in p for p in parts):
                return self._v1_snapshot(symbol, parts[0], depth, ts_recv)
        if symbol not in self.books:
            raise MalformedFrame("symbol", f"book update for {symbol} before its snapshot")
        if one is not None:  # the common update, one part: read without the comprehensions
            bids, asks = as_list(one.get("b", []), "b"), as_list(one.get("a", []), "a")
            crc = count(one["c"], "c", digits=True) if "c" in one else None
        else:
            bids = [lv for p in parts for lv in as_list(p.get("b", []), "b")]
            asks = [lv for p in parts for lv in as_list(p.get("a", []), "a")]
            crc = next((count(p["c"], "c", digits=True) for p in parts if "c" in p), None)
        levels, ts = _v1_levels(self.units_for(symbol), bids, asks)
        if depth is not None and self.depths.get(symbol) != depth:  # else already set
            self._set_depth(symbol, depth)
        return self._book(symbol).delta(Delta(levels, ts_event=ts, checksum=crc), ts_recv)

    def _v1_snapshot(
        self, symbol: str, first: dict[str, Any], depth: int | None, ts_recv: int
    ) -> list[Event]:
        """A book snapshot (``as`` and ``bs``): its text's decimals set the symbol's units
        where no instrument data did, and the shifts of its checksum digits."""
        asks, bids = as_list(field(first, "as"), "as"), as_list(field(first, "bs"), "bs")
        sample = row((asks or bids or [None])[0], 2, "snapshot level")
        text = (_decimals(sample[0], "price"), _decimals(sample[1], "volume"))
        pd, qd = self.precisions.get(symbol, text)
        levels, _ts = _v1_levels((decimals_unit(pd), decimals_unit(qd)), bids, asks)
        self.precisions[symbol] = (pd, qd)
        self.shifts[symbol] = (text[0] - pd, text[1] - qd)
        if depth is not None:
            self._set_depth(symbol, depth)
        return self._book(symbol).snapshot(Snapshot(levels), ts_recv)

    def _v1_trades(self, symbol: str, rows: list[Any], ts_recv: int) -> list[Event]:
        if symbol not in self.precisions:
            why = f"trade for {symbol} before its precision (AssetPairs or its book snapshot)"
            raise MalformedFrame("symbol", why)
        tick, lot = self.units_for(symbol)
        parsed = []
        for item in rows:
            r = row(item, 4, "trade")
            parsed.append(
                (
                    units(tick, r[0], "trade price", positive=True),
                    units(lot, r[1], "trade volume", positive=True),
                    seconds_time(r[2], "trade time"),
                    as_str(r[2], "trade time"),
                    _side(r[3], "b", "s"),
                )
            )
        out: list[Event] = []
        for price, size, ts, stamp, side in parsed:
            seq = self._trade_seq(symbol)
            out.append(Trade(VENUE, symbol, seq, f"{stamp}:{seq}", price, size, side, ts, ts_recv))
        return out

    # --- v2 ----------------------------------------------------------------------------

    def _v2(self, channel: str, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        if channel == "instrument":
            data = as_dict(msg.get("data") or {}, "data")
            pairs = []
            for pair in as_list(data.get("pairs", []), "pairs"):
                pairs.append(
                    (
                        as_str(field(pair, "symbol"), "symbol"),
                        _precision(field(pair, "price_precision"), "price_precision"),
                        _precision(field(pair, "qty_precision"), "qty_precision"),
                    )
                )
            for symbol, pd, qd in pairs:
                self._learn(symbol, pd, qd)
            return []
        if channel == "trade":
            try:
                trades = [self._v2_trade(t) for t in as_list(msg.get("data") or [], "data")]
            except MalformedFrame as exc:
                raise exc.on() from None
            out: list[Event] = []
            for symbol, trade_id, price, qty, side, ts in trades:
                seq = self._trade_seq(symbol)
                tid = trade_id or str(seq)
                out.append(Trade(VENUE, symbol, seq, tid, price, qty, side, ts, ts_recv))
            return out
        if channel != "book":
            return []
        items = as_list(field(msg, "data"), "data")
        symbols = tuple(as_str(field(item, "symbol"), "symbol") for item in items)
        try:
            kind = as_str(field(msg, "type"), "type")
            if kind not in ("snapshot", "update"):
                raise MalformedFrame("shape", f"book message type {kind!r:.20}")
            parsed = [self._v2_book(s, item) for s, item in zip(symbols, items, strict=True)]
        except MalformedFrame as exc:
            raise exc.on(*symbols) from None
        books: list[Event] = []
        for symbol, (levels, ts, crc) in zip(symbols, parsed, strict=True):
            if kind == "snapshot":
                snap = Snapshot(levels, ts_event=ts, checksum=crc)
                books += self._book(symbol).snapshot(snap, ts_recv)
            else:
                delta = Delta(levels, ts_event=ts, checksum=crc)
                books += self._book(symbol).delta(delta, ts_recv)
        return books

    def _v2_book(
        self, symbol: str, item: dict[str, Any]
    ) -> tuple[tuple[LevelChange, ...], int, int | None]:
        if symbol not in self.precisions:
            raise MalformedFrame("symbol", f"no precision known for {symbol}")
        pd, qd = self.precisions[symbol]
        levels = tuple(
            (
                side,
                rounded(field(lv, "price"), pd, "price", positive=True),
                rounded(field(lv, "qty"), qd, "qty"),
            )
            for side, key in ((0, "bids"), (1, "asks"))
            for lv in as_list(item.get(key, []), key)
        )
        ts = iso_time(item.get("timestamp"), "timestamp")
        crc = count(item["checksum"], "checksum", digits=True) if "checksum" in item else None
        return levels, ts, crc

    def _v2_trade(self, t: Any) -> tuple[str, str | None, int, int, int, int]:
        symbol = as_str(field(t, "symbol"), "symbol")
        if symbol not in self.precisions:
            raise MalformedFrame("symbol", f"trade for {symbol} before its precision is known")
        pd, qd = self.precisions[symbol]
        trade_id = t.get("trade_id")
        if trade_id is not None and not isinstance(trade_id, str):
            raise MalformedFrame("shape", "trade_id must be a number")
        return (
            symbol,
            trade_id,
            rounded(field(t, "price"), pd, "price", positive=True),
            rounded(field(t, "qty"), qd, "qty", positive=True),
            _side(field(t, "side"), "buy", "sell"),
            iso_time(t.get("timestamp"), "timestamp"),
        )


_V2_BOOK_OR_TRADE = re.compile(r'\s*\{\s*"channel"\s*:\s*"(?:book|trade)"')
"""How a v2 book or trade frame starts (Kraken sends ``channel`` first)."""


def _exact_json(text: str) -> Any:
    """The frame with every JSON number as its exact text."""
    try:
        return json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
    except (ValueError, RecursionError):
        raise MalformedFrame("json", "not JSON") from None


def _v1_levels(
    units_: tuple[Unit, Unit], bids: list[Any], asks: list[Any]
) -> tuple[tuple[LevelChange, ...], int]:
    """v1 levels ``[price, volume, timestamp(, "r")]`` and the latest timestamp. Rows of
    plain strings are read by the compiled reader; otherwise every row field by field."""
    tick, lot = units_
    plain = list_levels(bids, 0, tick.scale, lot.scale, timed=True)
    if plain is not None:
        plain_asks = list_levels(asks, 1, tick.scale, lot.scale, timed=True)
        if plain_asks is not None:
            return tuple(plain[0] + plain_asks[0]), max(plain[1], plain_asks[1])
    levels: list[LevelChange] = []
    ts = 0
    for side, rows in ((0, bids), (1, asks)):
        for item in rows:
            r = row(item, 3, "level")
            levels.append(
                (side, units(tick, r[0], "price", positive=True), units(lot, r[1], "volume"))
            )
            ts = max(ts, seconds_time(r[2], "level time"))
    return tuple(levels), ts


def _depth(value: Any) -> int | None:
    """A subscription's book depth, if it is one (a positive integer)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 1_000_000:
        return value
    return None


@functools.lru_cache(maxsize=64)
def _channel_depth(channel: str) -> int | None:
    """The depth a v1 book channel name says (``book-1000``: 1000)."""
    _, dash, digits = channel.partition("-")
    return _depth(int(digits)) if dash and digits.isdigit() and len(digits) < 8 else None


def _decimals(value: Any, what: str) -> int:
    text = as_str(value, what)
    try:
        decimals = parse_decimal(text)[1]
    except ValueError:
        raise MalformedFrame("number", f"{what} {text[:30]!r} is not a decimal") from None
    return _precision(decimals, what)


def _precision(value: Any, what: str) -> int:
    decimals = count(value, what)
    if decimals > MAX_DECIMALS:
        raise MalformedFrame("range", f"{what} {decimals} is more than {MAX_DECIMALS} decimals")
    return decimals


def _side(value: Any, buy: str, sell: str) -> int:
    if value == buy:
        return 0
    if value == sell:
        return 1
    raise MalformedFrame("shape", f"side must be {buy!r} or {sell!r}, got {value!r:.20}")
