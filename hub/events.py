"""The hub's events and their wire encoding (orjson, integer fields), declared in one table.

Every event carries the venue's event time and our receive time in int64
nanoseconds. Book updates and trades are sequenced per (venue, symbol)
stream, each with its own gap-free ``seq`` starting at 1 in each ``epoch``.

An epoch names one incarnation of a stream: (epoch, seq) identifies an event for
ever. ``new_epoch`` picks it as the wall clock in ns when the stream starts (a
positive int64, larger than any earlier incarnation's on a sane clock, readable as
a start time); a stream continued exactly (the order path restored from its
journal or checkpoint) keeps its epoch. Sources build events with epoch 0 and
``bus.output.FeedOutput`` stamps them (``stamp``) as it publishes; a decoded
message without the field (written before epochs) reads as epoch 0.

Each event class is declared once with ``@event(tag, topic=...)``: its kind tag,
the Kafka topic that carries it (``bus.kafka``) and its fields, each with the shape
it travels in (``wire(shape)``; plain ``int`` and ``str`` fields need none). At
import the declaration is compiled into one encoder and one decoder per class
(hub.event_codec, with the shapes), so adding an event is a change in one place and
costs no reflection per message.

Wire format (Kafka values, Redis snapshot values) is one JSON object per event:
the kind tag ``k``, then the fields in declaration order (a field that defaults to
None is left out while None). ``encode`` refuses an object that is not a declared
event (TypeError); ``decode`` validates a message and names what is wrong with it
(BadMessage), an unknown kind tag included. tests/hub/test_events.py pins the bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from hub.decimals import Unit
from hub.errors import BadMessage
from hub.event_codec import (
    DECODERS,
    ENCODERS,
    INTEGER,
    Choice,
    Digits,
    Levels,
    Note,
    Packed,
    UnitSize,
    unit,
)
from hub.event_codec import EVENT_TYPES as EVENT_TYPES
from hub.event_codec import EventType as EventType
from hub.event_codec import event as event
from hub.event_codec import wire as wire
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
STATES = ("stale", "resynced", "halted", "trading", "closed")
"""A book stream's health as a Status event reports it."""
ORDER_ACTIONS = tuple(int(a) for a in Action)
BAR_INTERVALS = (1, 60, 300, 3600, 86400)
"""Bar lengths in seconds, shortest first: the recorder's ``bars`` and fanout's candles."""


# -- the field shapes of the events ----------------------------------------------------


def _order_change_ok(change: list[int]) -> bool:
    action, side, _price, size, _oid = change
    return action in ORDER_ACTIONS and side in (0, 1) and size >= 0


def _resting_order_ok(order: list[int]) -> bool:
    side, _price, size, _oid = order
    return side in (0, 1) and size > 0


INVERSE = Choice((False, True), "field 'inverse' must be true or false")
TERM = Note()
"""A listing term of an Instrument ("" where the source has none)."""
LEVELS, LEVEL_CHANGES = Levels(2), Levels(3)
ORDER_CHANGES, RESTING_ORDERS = Levels(5, _order_change_ok), Levels(4, _resting_order_ok)
UNIT_SIZE = UnitSize()
MEMBERS = Levels(3, all, str)  # (venue, symbol, state) of a consolidated stream's members
BID, ASK = (Packed(side, ("price", "size"), non_negative=True) for side in ("bid", "ask"))
OHLC = Packed("ohlc", ("open", "high", "low", "close"))


# -- the events ----------------------------------------------------------------------------


@event("instrument", topic="instruments")
class Instrument:
    """Static data of one instrument: tick and lot sizes as decimal strings, and its
    canonical listing (hub.symbology.Listing's fields; "" / False where the source has
    none, which is also how a payload from before them decodes). Equity file sources
    (ITCH, LOBSTER, Databento) use the ticker as ``canonical`` with kind ``equity``."""

    venue: str
    symbol: str
    tick_size: str = wire(UNIT_SIZE)
    lot_size: str = wire(UNIT_SIZE)
    canonical: str = wire(TERM, default="")
    kind: str = wire(TERM, default="")
    base: str = wire(TERM, default="")
    quote: str = wire(TERM, default="")
    settle: str = wire(TERM, default="")
    expiry: str = wire(TERM, default="")
    strike: str = wire(TERM, default="")
    right: str = wire(TERM, default="")
    contract_size: str = wire(TERM, default="")
    inverse: bool = wire(INVERSE, default=False)

    @property
    def id(self) -> str:
        """The canonical id, or the venue's symbol where there is none."""
        return self.canonical or self.symbol

    @property
    def tick(self) -> Unit:
        return unit(self.tick_size)

    @property
    def lot(self) -> Unit:
        return unit(self.lot_size)


@event("book", topic="book")
class BookUpdate:
    """One atomic change of an L2 book: after it the book is consistent."""

    venue: str
    symbol: str
    seq: int
    ts_event: int
    ts_recv: int
    changes: tuple[LevelChange, ...] = wire(LEVEL_CHANGES)
    flags: int = F_LAST
    """F_LAST always (each update is one atomic change); F_SNAPSHOT too when the update is a
    (re)synchronisation: its changes turn the previous book into the venue's fresh snapshot."""
    orders: tuple[OrderChange, ...] | None = wire(ORDER_CHANGES, default=None)
    """Sources with orders (the simulated venue, Databento MBO): the same event's changes of
    the order-level book, which aggregates to the L2 book at every seq. None for L2-only
    sources."""
    epoch: int = 0
    """The stream's incarnation (see module doc); FeedOutput stamps it (0: not yet)."""
    checksum: int | None = wire(INTEGER, default=None)
    """The source's checksum of its book after this update (orderbook_core's CRC-32 over
    the top CHECKSUM_LEVELS levels), stamped by FeedOutput; None when not stamped."""


@event("trade", topic="trades")
class Trade:
    """One public trade; ``side`` is the aggressor's side (BUY, SELL or NO_AGGRESSOR)."""

    venue: str
    symbol: str
    seq: int
    trade_id: str
    price: int
    size: int
    side: int = wire(Choice((BUY, SELL, NO_AGGRESSOR), "trade side must be 0, 1 or 2"))
    ts_event: int
    ts_recv: int
    epoch: int = 0


@event("snapshot", topic="depth")
class BookSnapshot:
    """The whole L2 book as of book stream ``seq`` (the last update applied); the feed
    stores it whole and publishes its top levels periodically (topic ``depth``)."""

    venue: str
    symbol: str
    seq: int
    ts_event: int
    bids: tuple[Level, ...] = wire(LEVELS)
    asks: tuple[Level, ...] = wire(LEVELS)
    orders: tuple[RestingOrder, ...] | None = wire(RESTING_ORDERS, default=None)
    """The order-level book at the same seq (sources with orders): bids best first, then
    asks best first, each level's orders in queue order."""
    epoch: int = 0


@event("status", topic="book")
class Status:
    """A change in a book stream's health, in order with its updates (on their topic).

    ``state`` is one of STATES: ``stale`` (gap, checksum mismatch, crossed book or lost
    connection: the book is frozen at its last update until resynced), ``resynced`` (the
    update just before this event rebuilt it from a fresh snapshot), ``halted`` (the venue
    halted trading), ``trading`` (it resumed) and ``closed`` (the source ended, e.g. a
    file replay reached its end: the book is final)."""

    venue: str
    symbol: str
    state: str = wire(Choice(STATES))
    reason: str = wire(Note())
    ts_event: int
    ts_recv: int


@event("bbo", topic="bbo")
class TopOfBook:
    """The best bid and ask after book update ``seq``, published when either changed.
    An empty side has price and size 0."""

    venue: str
    symbol: str
    seq: int
    ts_event: int
    ts_recv: int
    bid_price: int = wire(BID)
    bid_size: int = wire(BID)
    ask_price: int = wire(ASK)
    ask_size: int = wire(ASK)
    epoch: int = 0


@event("bar", topic="bars")
class Bar:
    """One OHLCV bar of a stream's trades: ``interval_s`` seconds from ``start`` (ns).

    Prices in ticks, volume in lots, ``notional`` = sum(price ticks x size lots); the same
    numbers the recorder stores in the ``bars`` table. A bar is republished whenever a
    trade (late ones included) changes it: the newest copy of a bucket replaces older ones."""

    venue: str
    symbol: str
    interval_s: int
    start: int
    open: int = wire(OHLC)
    high: int = wire(OHLC)
    low: int = wire(OHLC)
    close: int = wire(OHLC)
    volume: int
    notional: int = wire(Digits())
    """Sent as a string of digits: it may exceed 64 bits."""
    trades: int
    epoch: int = 0
    """The epoch of the trade stream the bar was built from (0: unknown)."""


@event("members", topic="book")
class Members:
    """The venues of a consolidated stream (bus.consolidate) as of its update ``seq``: one
    (venue, symbol, state) per member in member-number order (the number its per-venue
    sizes' order ids carry; the list only grows within an epoch). On the ``book`` topic,
    in order with the stream's updates; republished for consumers that join late."""

    venue: str
    symbol: str
    seq: int
    ts_event: int
    members: tuple[tuple[str, str, str], ...] = wire(MEMBERS)
    epoch: int = 0


Event = BookUpdate | Trade | BookSnapshot | Instrument | Status | TopOfBook | Bar | Members
"""Every declared event (tests check that it names each class of EVENT_TYPES)."""

TOPICS = tuple(dict.fromkeys(t.topic for t in EVENT_TYPES.values()))
"""The Kafka topics events travel on, by their suffix, in declaration order."""


def new_epoch() -> int:
    """The epoch of a stream starting now: wall-clock ns (int64, > 0), strictly larger
    than any epoch this process returned before."""
    global _LAST_EPOCH
    _LAST_EPOCH = max(time.time_ns(), _LAST_EPOCH + 1)
    return _LAST_EPOCH


_LAST_EPOCH = 0
_SET_EPOCH: dict[type, Callable[[Any, Any], None]] = {
    cls: vars(cls)["epoch"].__set__ for cls in EVENT_TYPES if "epoch" in vars(cls)
}
_SET_CHECKSUM: Callable[[Any, Any], None] = vars(BookUpdate)["checksum"].__set__


def stamp(event: Event, epoch: int) -> None:
    """Set an unpublished event's epoch in place (the publisher's own objects: no copy)."""
    _SET_EPOCH[type(event)](event, epoch)


def stamp_checksum(update: BookUpdate, checksum: int) -> None:
    """Set an unpublished book update's source checksum in place."""
    _SET_CHECKSUM(update, checksum)


def event_type(event: object) -> EventType:
    """The declaration of an event's class; TypeError for anything else."""
    declared = EVENT_TYPES.get(type(event))
    if declared is None:
        raise TypeError(f"not an event: {type(event).__name__}")
    return declared


def encode(event: Event) -> bytes:
    """Encode an event as one JSON object; TypeError for an object that is not an event."""
    encoder = ENCODERS.get(type(event))
    if encoder is None:
        raise TypeError(f"not an event: {type(event).__name__}")
    return encoder(event)


def decode(data: bytes) -> Event:
    """Decode one wire message; raise BadMessage naming the problem."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadMessage(f"not JSON: {exc}") from None
    if type(obj) is not dict:
        raise BadMessage("message must be a JSON object")
    kind = obj.get("k")
    decoder = DECODERS.get(kind) if type(kind) is str else None
    if decoder is None:
        raise BadMessage(f"unknown message kind {kind!r}")
    event: Event = decoder(obj)
    return event


_E = TypeVar("_E")


def decode_as(data: bytes, cls: type[_E]) -> _E:
    """Decode a message that must hold an event of class ``cls``; BadMessage otherwise."""
    event = decode(data)
    if not isinstance(event, cls):
        raise BadMessage(f"expected a {EVENT_TYPES[cls].tag} message, got {event_type(event).tag}")
    return event
