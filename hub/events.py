"""The hub's event schema and its wire encoding (orjson, integer fields).

Every event carries the venue's event time and our receive time in int64
nanoseconds. Book updates and trades are sequenced per (venue, symbol)
stream, each with its own gap-free ``seq`` starting at 1.

Wire format (Kafka values, Redis snapshot values) is one JSON object per
event with a kind tag ``k``; ``decode`` validates it and names what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from hub.decimals import Unit
from hub.errors import BadMessage
from orderbook_core.types import F_LAST, Action

Level = tuple[int, int]  # (price ticks, size lots)
LevelChange = tuple[int, int, int]  # (side, price ticks, absolute size lots; 0 deletes)
OrderChange = tuple[int, int, int, int, int]
"""(action, side, price ticks, size lots, order id): one order-level (L3) change, with the
book core's actions: ADD puts the order at the back of its level's queue, UPDATE sets a
smaller size in place (priority kept), DELETE removes it (size 0), CLEAR empties the book
(side, price, size and id 0). A larger size or a new price is a DELETE then an ADD."""
RestingOrder = tuple[int, int, int, int]
"""(side, price ticks, size lots, order id) in an L3 snapshot, in priority order."""

BUY, SELL, NO_AGGRESSOR = 0, 1, 2
TRADE_SIDES = ("buy", "sell", "none")
"""A trade's aggressor side by number; ``none`` for auction and cross prints."""


@dataclass(frozen=True, slots=True)
class Instrument:
    """Static data of one instrument: tick and lot sizes as decimal strings."""

    venue: str
    symbol: str
    tick_size: str
    lot_size: str

    @property
    def tick(self) -> Unit:
        return _unit(self.tick_size)

    @property
    def lot(self) -> Unit:
        return _unit(self.lot_size)


_UNITS: dict[str, Unit] = {}


def _unit(text: str) -> Unit:
    unit = _UNITS.get(text)
    if unit is None:
        unit = _UNITS[text] = Unit(text)
    return unit


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """One atomic change of an L2 book: after it the book is consistent."""

    venue: str
    symbol: str
    seq: int
    ts_event: int
    ts_recv: int
    changes: tuple[LevelChange, ...]
    flags: int = F_LAST
    """F_LAST always (each update is one atomic change); F_SNAPSHOT too when the update is a
    (re)synchronisation: its changes turn the previous book into the venue's fresh snapshot."""
    orders: tuple[OrderChange, ...] | None = None
    """Sources with orders (the simulated venue, Databento MBO): the same event's changes of
    the order-level book, which aggregates to the L2 book at every seq. None for L2-only
    sources."""


@dataclass(frozen=True, slots=True)
class Trade:
    """One public trade; ``side`` is the aggressor's side (BUY, SELL or NO_AGGRESSOR)."""

    venue: str
    symbol: str
    seq: int
    trade_id: str
    price: int
    size: int
    side: int
    ts_event: int
    ts_recv: int


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """The whole L2 book as of book stream ``seq`` (the last update applied)."""

    venue: str
    symbol: str
    seq: int
    ts_event: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    orders: tuple[RestingOrder, ...] | None = None
    """The order-level book at the same seq (sources with orders): bids best first, then
    asks best first, each level's orders in queue order."""


@dataclass(frozen=True, slots=True)
class Status:
    """A change in a book stream's health, in order with its updates.

    ``state`` is one of STATES: ``stale`` (gap, checksum mismatch, crossed book or lost
    connection: the book is frozen at its last update until resynced), ``resynced`` (the
    update just before this event rebuilt it from a fresh snapshot), ``halted`` (the venue
    halted trading) and ``trading`` (it resumed)."""

    venue: str
    symbol: str
    state: str
    reason: str
    ts_event: int
    ts_recv: int


STATES = ("stale", "resynced", "halted", "trading")


@dataclass(frozen=True, slots=True)
class TopOfBook:
    """The best bid and ask after book update ``seq``, published when either changed.
    An empty side has price and size 0."""

    venue: str
    symbol: str
    seq: int
    ts_event: int
    ts_recv: int
    bid_price: int
    bid_size: int
    ask_price: int
    ask_size: int


BAR_INTERVALS = (1, 60, 300, 3600, 86400)
"""Bar lengths in seconds, shortest first: the recorder's ``bars`` and fanout's candles."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar of a stream's trades: ``interval_s`` seconds from ``start`` (ns).

    Prices in ticks, volume in lots, ``notional`` = sum(price ticks x size lots); the same
    numbers the recorder stores in the ``bars`` table. A bar is republished whenever a
    trade (late ones included) changes it: the newest copy of a bucket replaces older ones."""

    venue: str
    symbol: str
    interval_s: int
    start: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    notional: int
    trades: int


Event = BookUpdate | Trade | BookSnapshot | Instrument | Status | TopOfBook | Bar


def encode(event: Event) -> bytes:
    """Encode an event as one JSON object."""
    if isinstance(event, BookUpdate):
        update: dict[str, Any] = {
            "k": "book",
            "venue": event.venue,
            "symbol": event.symbol,
            "seq": event.seq,
            "ts_event": event.ts_event,
            "ts_recv": event.ts_recv,
            "changes": event.changes,
            "flags": event.flags,
        }
        if event.orders is not None:
            update["orders"] = event.orders
        return orjson.dumps(update)
    if isinstance(event, Trade):
        return orjson.dumps(
            {
                "k": "trade",
                "venue": event.venue,
                "symbol": event.symbol,
                "seq": event.seq,
                "trade_id": event.trade_id,
                "price": event.price,
                "size": event.size,
                "side": event.side,
                "ts_event": event.ts_event,
                "ts_recv": event.ts_recv,
            }
        )
    if isinstance(event, BookSnapshot):
        snapshot: dict[str, Any] = {
            "k": "snapshot",
            "venue": event.venue,
            "symbol": event.symbol,
            "seq": event.seq,
            "ts_event": event.ts_event,
            "bids": event.bids,
            "asks": event.asks,
        }
        if event.orders is not None:
            snapshot["orders"] = event.orders
        return orjson.dumps(snapshot)
    if isinstance(event, TopOfBook):
        return orjson.dumps(
            {
                "k": "bbo",
                "venue": event.venue,
                "symbol": event.symbol,
                "seq": event.seq,
                "ts_event": event.ts_event,
                "ts_recv": event.ts_recv,
                "bid": [event.bid_price, event.bid_size],
                "ask": [event.ask_price, event.ask_size],
            }
        )
    if isinstance(event, Status):
        return orjson.dumps(
            {
                "k": "status",
                "venue": event.venue,
                "symbol": event.symbol,
                "state": event.state,
                "reason": event.reason,
                "ts_event": event.ts_event,
                "ts_recv": event.ts_recv,
            }
        )
    if isinstance(event, Bar):
        return orjson.dumps(
            {
                "k": "bar",
                "venue": event.venue,
                "symbol": event.symbol,
                "interval_s": event.interval_s,
                "start": event.start,
                "ohlc": [event.open, event.high, event.low, event.close],
                "volume": event.volume,
                "notional": str(event.notional),  # may exceed 64 bits
                "trades": event.trades,
            }
        )
    return orjson.dumps(
        {
            "k": "instrument",
            "venue": event.venue,
            "symbol": event.symbol,
            "tick_size": event.tick_size,
            "lot_size": event.lot_size,
        }
    )


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if type(value) is not int:
        raise BadMessage(f"field {key!r} must be an integer, got {value!r}")
    return value


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise BadMessage(f"field {key!r} must be a non-empty string, got {value!r}")
    return value


def _levels(obj: dict[str, Any], key: str, width: int) -> tuple[Any, ...]:
    raw = obj.get(key)
    if not isinstance(raw, list):
        raise BadMessage(f"field {key!r} must be a list, got {type(raw).__name__}")
    out = []
    for item in raw:
        if (
            not isinstance(item, list)
            or len(item) != width
            or any(type(x) is not int for x in item)
        ):
            raise BadMessage(f"field {key!r}: bad entry {item!r}")
        out.append(tuple(item))
    return tuple(out)


ORDER_ACTIONS = tuple(int(a) for a in Action)


def _order_changes(obj: dict[str, Any]) -> tuple[OrderChange, ...]:
    changes: tuple[OrderChange, ...] = _levels(obj, "orders", 5)
    for action, side, _price, size, _oid in changes:
        if action not in ORDER_ACTIONS or side not in (0, 1) or size < 0:
            raise BadMessage(f"field 'orders': bad entry {[action, side, _price, size, _oid]!r}")
    return changes


def _resting(obj: dict[str, Any]) -> tuple[RestingOrder, ...]:
    orders: tuple[RestingOrder, ...] = _levels(obj, "orders", 4)
    for side, _price, size, _oid in orders:
        if side not in (0, 1) or size <= 0:
            raise BadMessage(f"field 'orders': bad entry {[side, _price, size, _oid]!r}")
    return orders


def decode(data: bytes) -> Event:
    """Decode one wire message; raise BadMessage naming the problem."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadMessage(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadMessage("message must be a JSON object")
    kind = obj.get("k")
    venue, symbol = _str(obj, "venue"), _str(obj, "symbol")
    if kind == "book":
        return BookUpdate(
            venue,
            symbol,
            _int(obj, "seq"),
            _int(obj, "ts_event"),
            _int(obj, "ts_recv"),
            _levels(obj, "changes", 3),
            _int(obj, "flags") if "flags" in obj else F_LAST,
            _order_changes(obj) if "orders" in obj else None,
        )
    if kind == "trade":
        if obj.get("side") not in (BUY, SELL, NO_AGGRESSOR):
            raise BadMessage(f"trade side must be 0, 1 or 2, got {obj.get('side')!r}")
        return Trade(
            venue,
            symbol,
            _int(obj, "seq"),
            _str(obj, "trade_id"),
            _int(obj, "price"),
            _int(obj, "size"),
            _int(obj, "side"),
            _int(obj, "ts_event"),
            _int(obj, "ts_recv"),
        )
    if kind == "snapshot":
        return BookSnapshot(
            venue,
            symbol,
            _int(obj, "seq"),
            _int(obj, "ts_event"),
            _levels(obj, "bids", 2),
            _levels(obj, "asks", 2),
            _resting(obj) if "orders" in obj else None,
        )
    if kind == "instrument":
        tick, lot = _str(obj, "tick_size"), _str(obj, "lot_size")
        try:
            _unit(tick), _unit(lot)
        except ValueError as exc:
            raise BadMessage(f"instrument {venue}/{symbol}: {exc}") from None
        return Instrument(venue, symbol, tick, lot)
    if kind == "status":
        state = _str(obj, "state")
        if state not in STATES:
            raise BadMessage(f"field 'state' must be one of {', '.join(STATES)}, got {state!r}")
        return Status(
            venue,
            symbol,
            state,
            str(obj.get("reason", "")),
            _int(obj, "ts_event"),
            _int(obj, "ts_recv"),
        )
    if kind == "bbo":
        bid, ask = _pair(obj, "bid"), _pair(obj, "ask")
        return TopOfBook(
            venue,
            symbol,
            _int(obj, "seq"),
            _int(obj, "ts_event"),
            _int(obj, "ts_recv"),
            *bid,
            *ask,
        )
    if kind == "bar":
        ohlc, notional = obj.get("ohlc"), obj.get("notional")
        if not isinstance(ohlc, list) or len(ohlc) != 4 or any(type(x) is not int for x in ohlc):
            raise BadMessage(f"field 'ohlc' must be 4 integers, got {ohlc!r}")
        if not isinstance(notional, str) or not notional.isdigit():
            raise BadMessage(f"field 'notional' must be a string of digits, got {notional!r}")
        return Bar(
            venue,
            symbol,
            _int(obj, "interval_s"),
            _int(obj, "start"),
            ohlc[0],
            ohlc[1],
            ohlc[2],
            ohlc[3],
            _int(obj, "volume"),
            int(notional),
            _int(obj, "trades"),
        )
    raise BadMessage(f"unknown message kind {kind!r}")


def _pair(obj: dict[str, Any], key: str) -> tuple[int, int]:
    value = obj.get(key)
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(type(v) is int and v >= 0 for v in value)
    ):
        raise BadMessage(f"field {key!r} must be [price, size] of non-negative integers")
    return value[0], value[1]
