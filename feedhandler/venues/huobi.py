"""Huobi (HTX) spot (``/ws``) and coin-margined swaps (``/swap-ws``): ``depth.step0``, trades.

Sans-I/O, one base for both feeds: every frame is gzip-compressed binary JSON; a
``{"ping": n}`` is answered with ``{"pong": n}`` through ``answers()`` (the venue closes
a connection that leaves pings unanswered). ``market.<symbol>.depth.step0`` pushes the
full book (up to 150 levels a side, prices and sizes JSON numbers, read exactly) every
time; there are no seqNum/prevSeqNum on this channel, so each push is a ``Snapshot``
and its order key decides whether it is applied: spot ``tick.version`` must strictly
increase, swap ``tick.mrid`` (the last match id) must not decrease (the swap's
``version`` is only the second). A push out of order is dropped (``snapshots_stale``).
A stale book comes back with the next push by itself (``recover`` resubscribes anyway).

``trade.detail`` carries ``data`` rows of ``price``, ``amount``, ``direction`` (the
taker's side), ``ts`` (ms) and an id (spot ``tradeId``, swap ``id``). Units: spot from
``/v1/common/symbols`` (``price-precision``, ``amount-precision``), swaps from
``/swap-api/v1/swap_contract_info`` (``price_tick``; sizes in whole contracts, each worth
``contract_size`` USD, inverse, settled in the coin).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import zlib
from typing import Any

from feedhandler.frames import (
    MalformedFrame,
    as_dict,
    as_list,
    as_str,
    field,
    millis_time,
    rounded,
    row,
)
from feedhandler.sync import BookSync, Snapshot
from feedhandler.venues.base import ParserBase, decimals_unit
from feedhandler.venues.exact import (
    decimals_of,
    exact_json,
    integer,
    number,
    number_levels,
    number_units,
    string,
    unit_decimals,
)
from hub.decimals import Unit
from hub.events import BUY, SELL, Event, LevelChange, Trade
from hub.symbology import SymbologyError, perp, spot, strike_text
from orderbook_core import huobi_depth

MAX_DECIMALS = 18
SPOT_SIZE_DECIMALS = 8
"""Decimals of spot sizes (``value-precision``; at least the symbol's ``amount-precision``)."""
MAX_FRAME = 16 << 20
"""Largest decompressed frame accepted (a gzip bomb is refused, not inflated)."""


class HuobiBase(ParserBase):
    """What Huobi's spot and swap feeds share: gzip frames, pings, snapshot pushes."""

    chained = False
    """No sequence numbers on ``depth.step0``: an unattributable frame resyncs every book."""
    order_key = ""
    strictly = True
    contracts_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.units: dict[str, tuple[Unit, Unit]] = {}
        self.last_key: dict[str, int] = {}
        self.stale_pushes: dict[str, int] = {}
        self.repeats: dict[str, int] = {}
        self._id = 0

    # --- the runner's interface --------------------------------------------------------

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        return self.units[symbol]

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        return {
            "snapshots_stale": self.stale_pushes.get(symbol, 0),
            f"{self.order_key}_repeats": self.repeats.get(symbol, 0),
        }

    def instrument_urls(self, rest: str) -> list[str]:
        return [rest + self.contracts_url]

    def subscribe(self, symbols: list[str]) -> list[str]:
        out = []
        for symbol in symbols:
            for channel in ("depth.step0", "trade.detail"):
                self._id += 1
                out.append(json.dumps({"sub": f"market.{symbol}.{channel}", "id": str(self._id)}))
        return out

    def recover(self, symbols: list[str]) -> list[str]:
        out = []
        for symbol in symbols:
            topic = f"market.{symbol}.depth.step0"
            self._id += 1
            out.append(json.dumps({"unsub": topic, "id": str(self._id)}))
            self._id += 1
            out.append(json.dumps({"sub": topic, "id": str(self._id)}))
        return out

    # --- WebSocket ---------------------------------------------------------------------

    def on_frame(self, frame: str | bytes, ts_recv: int) -> list[Event]:
        if isinstance(frame, bytes) and frame[:2] == b"\x1f\x8b":
            try:
                text = _gunzip(frame)
            except MalformedFrame as exc:
                self._touched.clear()
                self._emitted.clear()
                return self.malformed_input(frame.hex()[:120], exc, ts_recv)
            return super().on_frame(text, ts_recv)
        return super().on_frame(frame, ts_recv)

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        scan = huobi_depth(text, self.units, self.order_key, self.rounding)  # most frames
        if scan is not None:
            symbol, key, ts, levels = scan
            try:
                return self._push(symbol, key, ts, levels, ts_recv)
            except MalformedFrame as exc:
                raise exc.on(symbol) from None
        msg = as_dict(exact_json(text), "frame")
        if "ping" in msg:
            self._answers.append(json.dumps({"pong": integer(msg["ping"], "ping")}))
            return []
        if "ch" not in msg:
            status = msg.get("status")
            if status == "ok" or "subbed" in msg or "unsubbed" in msg:
                return []
            if status == "error":  # an answer to a request: no book changed
                raise MalformedFrame("venue", f"error: {str(msg.get('err-msg'))[:80]}", ())
            raise MalformedFrame("shape", "a frame with no ch")  # could have been any book's
        parts = as_str(field(msg, "ch"), "ch").split(".")
        if len(parts) < 4 or parts[0] != "market":
            raise MalformedFrame("shape", f"channel {'.'.join(parts)[:40]!r}")
        symbol, channel = parts[1], ".".join(parts[2:])
        if symbol not in self.units:
            raise MalformedFrame("symbol", f"{symbol[:20]!r}: no instrument data")
        tick = as_dict(field(msg, "tick"), "tick")
        if channel == "trade.detail":
            try:
                return self._trades(symbol, tick, ts_recv)
            except MalformedFrame as exc:
                raise exc.on() from None
        if channel != "depth.step0":
            raise MalformedFrame("shape", f"channel {channel[:30]!r}")
        try:
            return self._depth(symbol, tick, ts_recv)
        except MalformedFrame as exc:
            raise exc.on(symbol) from None

    def _book(self, symbol: str) -> BookSync:
        self._touch(symbol)
        sync = self.books.get(symbol)
        if sync is None:
            sync = self.books[symbol] = BookSync(self.venue, symbol)
            sync.sink = self._emitted
        return sync

    def _depth(self, symbol: str, tick: dict[str, Any], ts_recv: int) -> list[Event]:
        price_unit, lot = self.units[symbol]
        key = integer(field(tick, self.order_key), self.order_key)
        bids, asks = field(tick, "bids"), field(tick, "asks")
        plain = number_levels(bids, asks, price_unit.scale, lot.scale, self.rounding)
        levels: list[LevelChange] = [] if plain is None else plain
        for side, name in ((BUY, "bids"), (SELL, "asks")) if plain is None else ():
            for item in as_list(field(tick, name), name):
                price, size = row(item, 2, "level")[:2]
                levels.append(
                    (
                        side,
                        _units(price_unit, price, "price", positive=True),
                        self._size(lot, size, "size"),
                    )
                )
        ts = millis_time(integer(field(tick, "ts"), "ts"), "ts") if "ts" in tick else 0
        return self._push(symbol, key, ts, tuple(levels), ts_recv)

    def _push(
        self, symbol: str, key: int, ts: int, levels: tuple[LevelChange, ...], ts_recv: int
    ) -> list[Event]:
        """A book push read (by the scanner or field by field): applied as the book's
        snapshot if its order key says it is newer, else counted and dropped."""
        last = self.last_key.get(symbol)
        sync = self._book(symbol)
        if last is not None and (key < last or (self.strictly and key == last)):
            self.stale_pushes[symbol] = self.stale_pushes.get(symbol, 0) + 1
            sync.stats.dropped += 1
            return []
        if last is not None and key == last:
            self.repeats[symbol] = self.repeats.get(symbol, 0) + 1
        self.last_key[symbol] = key
        return sync.snapshot(Snapshot(levels, key, ts), ts_recv)

    def _trades(self, symbol: str, tick: dict[str, Any], ts_recv: int) -> list[Event]:
        price_unit, lot = self.units[symbol]
        rows = []
        for item in as_list(field(tick, "data"), "data"):
            data = as_dict(item, "trade")
            trade_id = integer(field(data, self.trade_id), self.trade_id)
            price = _units(price_unit, field(data, "price"), "price", positive=True)
            size = self._size(lot, field(data, "amount"), "amount")
            side = _side(field(data, "direction"))
            ms = integer(field(data, "ts"), "ts")
            if ms > (1 << 63) // 1_000_000:
                raise MalformedFrame("time", "ts is out of range")
            rows.append((str(trade_id), price, size, side, ms * 1_000_000))
        return [
            Trade(self.venue, symbol, self._trade_seq(symbol), i, p, s, side, ts, ts_recv)
            for i, p, s, side, ts in rows
        ]

    trade_id = "id"
    rounding = False
    """Depth sizes are rounded to the lot (``_size``), not read exactly."""

    def _size(self, lot: Unit, value: Any, what: str) -> int:
        return _units(lot, value, what, positive=True)

    # --- REST --------------------------------------------------------------------------

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        if not url.endswith(self.contracts_url):
            return []
        data = as_dict(exact_json(body), "instruments")
        out: list[Event] = []
        for item in as_list(field(data, "data"), "data"):
            symbol, tick, lot = self._instrument(as_dict(item, "instrument"))
            out += self._new_units(self.units, symbol, (tick, lot), ts_recv)
        return out

    def _instrument(self, item: dict[str, Any]) -> tuple[str, Unit, Unit]:
        raise NotImplementedError


class HuobiSpotParser(HuobiBase):
    """Huobi spot (``wss://api.huobi.pro/ws``): ``version`` strictly increases."""

    venue = "HUOBI"
    order_key = "version"
    contracts_url = "/v1/common/symbols"
    trade_id = "tradeId"
    rounding = True

    def _size(self, lot: Unit, value: Any, what: str) -> int:
        """Depth sizes are sums kept as binary floats (``3307.9982700421942``, past
        ``amount-precision``): rounded half up to ``SPOT_SIZE_DECIMALS``."""
        return rounded(number(value, what), decimals_of(lot.text, "lot"), what, positive=True)

    def _instrument(self, item: dict[str, Any]) -> tuple[str, Unit, Unit]:
        symbol = string(field(item, "symbol"), "symbol")
        price = _precision(field(item, "price-precision"), f"{symbol} price-precision")
        amount = _precision(field(item, "amount-precision"), f"{symbol} amount-precision")
        base = string(field(item, "base-currency"), "base-currency")
        quote = string(field(item, "quote-currency"), "quote-currency")
        with contextlib.suppress(SymbologyError):
            self.listings[symbol] = spot(self.venue, symbol, base, quote)
        lot = decimals_unit(max(amount, SPOT_SIZE_DECIMALS))
        return symbol, decimals_unit(price), lot


class HuobiCoinSwapParser(HuobiBase):
    """Huobi coin-margined swaps (``wss://api.hbdm.com/swap-ws``): ``mrid`` never decreases."""

    venue = "HUOBI_SWAP"
    order_key = "mrid"
    strictly = False
    contracts_url = "/swap-api/v1/swap_contract_info"

    def _instrument(self, item: dict[str, Any]) -> tuple[str, Unit, Unit]:
        code = string(field(item, "contract_code"), "contract_code")
        coin = string(field(item, "symbol"), "symbol")
        tick = unit_decimals(field(item, "price_tick"), f"{code} price_tick", MAX_DECIMALS)
        size = field(item, "contract_size")
        unit_decimals(size, f"{code} contract_size", MAX_DECIMALS)
        quote = code.rpartition("-")[2]
        with contextlib.suppress(SymbologyError):
            self.listings[code] = perp(
                self.venue,
                code,
                coin,
                quote,
                settle=coin,
                contract_size=strike_text(str(size)),
                inverse=True,
            )
        return code, decimals_unit(tick), Unit("1")


def _gunzip(frame: bytes) -> str:
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = inflater.decompress(frame, MAX_FRAME)
        if inflater.unconsumed_tail:
            raise MalformedFrame("json", f"gzip frame inflates past {MAX_FRAME} bytes")
        if not inflater.eof:
            raise MalformedFrame("json", "gzip frame ends early")
        return raw.decode()
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise MalformedFrame("json", f"not gzip ({exc})") from None
    except UnicodeDecodeError as exc:
        raise MalformedFrame("json", f"not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _units(unit: Unit, value: Any, what: str, positive: bool = False) -> int:
    return number_units(decimals_of(unit.text, "unit"), value, what, positive)


def _precision(value: Any, what: str) -> int:
    decimals = integer(value, what)
    if decimals > MAX_DECIMALS:
        raise MalformedFrame("range", f"{what} is more than {MAX_DECIMALS}")
    return decimals


def _side(value: Any) -> int:
    if value == "buy":
        return BUY
    if value == "sell":
        return SELL
    raise MalformedFrame("shape", f"direction must be 'buy' or 'sell', got {value!r:.20}")
