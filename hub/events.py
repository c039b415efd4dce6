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
import the declaration is compiled into one encoder and one decoder per class, so
adding an event is a change in one place and costs no reflection per message.

Wire format (Kafka values, Redis snapshot values) is one JSON object per event:
the kind tag ``k``, then the fields in declaration order (a field that defaults to
None is left out while None). ``encode`` refuses an object that is not a declared
event (TypeError); ``decode`` validates a message and names what is wrong with it
(BadMessage), an unknown kind tag included. tests/hub/test_events.py pins the bytes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, dataclass_transform, get_type_hints

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
STATES = ("stale", "resynced", "halted", "trading", "closed")
"""A book stream's health as a Status event reports it."""
ORDER_ACTIONS = tuple(int(a) for a in Action)
BAR_INTERVALS = (1, 60, 300, 3600, 86400)
"""Bar lengths in seconds, shortest first: the recorder's ``bars`` and fanout's candles."""


# -- field shapes: how one field travels and how it is checked on the way in --------------


class Shape:
    """How a field travels on the wire: as its own value, unless ``encoded`` says otherwise.

    ``check`` turns the JSON value of field ``key`` into the field's value or raises
    BadMessage naming the key. ``fast``, when set, is a condition on ``{v}`` that holds
    exactly when ``check`` would accept ``{v}`` unchanged: the generated decoder tests it
    inline and calls ``check`` only to raise."""

    fast: str | None = None
    attrs = 1
    """How many consecutive fields of the class this one wire value holds."""

    def encoded(self, values: list[str]) -> str:
        """Source of the JSON value of the fields whose values' sources are ``values``."""
        return values[0]

    def check(self, key: str, value: Any) -> Any:
        raise NotImplementedError


class Integer(Shape):
    fast = "type({v}) is int"

    def check(self, key: str, value: Any) -> int:
        if type(value) is not int:
            raise BadMessage(f"field {key!r} must be an integer, got {value!r}")
        return value


class Text(Shape):
    fast = "type({v}) is str and {v}"

    def check(self, key: str, value: Any) -> str:
        if type(value) is not str or not value:
            raise BadMessage(f"field {key!r} must be a non-empty string, got {value!r}")
        return value


class Note(Shape):
    """Free text that may be missing (read as "") and is never refused."""

    def check(self, key: str, value: Any) -> str:
        return "" if value is None else str(value)


class Choice(Shape):
    """One of ``values``, all of one type; ``what`` is the refusal's text when not."""

    def __init__(self, values: tuple[Any, ...], what: str = "") -> None:
        self.values, self.kind, self.what = values, type(values[0]), what

    def check(self, key: str, value: Any) -> Any:
        if type(value) is not self.kind or value not in self.values:
            what = self.what or f"field {key!r} must be one of {', '.join(map(str, self.values))}"
            raise BadMessage(f"{what}, got {value!r}")
        return value


class UnitSize(Shape):
    """A positive decimal string, such as an instrument's tick size "0.01"."""

    def check(self, key: str, value: Any) -> str:
        text = TEXT.check(key, value)
        try:
            _unit(text)
        except ValueError as exc:
            raise BadMessage(f"field {key!r}: {exc}") from None
        return text


class Digits(Shape):
    """A non-negative integer that may not fit 64 bits, sent as a string of digits."""

    def encoded(self, values: list[str]) -> str:
        return f"str({values[0]})"

    def check(self, key: str, value: Any) -> int:
        if not isinstance(value, str) or not (value.isascii() and value.isdigit()):
            raise BadMessage(f"field {key!r} must be a string of digits, got {value!r}")
        return int(value)


class Levels(Shape):
    """A list of entries of ``width`` integers (or ``kind``) each (levels, level changes,
    orders), read as a tuple of tuples; ``entry`` says whether one (checked for width)
    makes sense."""

    def __init__(
        self, width: int, entry: Callable[[list[Any]], bool] | None = None, kind: type = int
    ) -> None:
        self.width, self.entry, self.kind = width, entry, kind

    def check(self, key: str, value: Any) -> tuple[tuple[Any, ...], ...]:
        if not isinstance(value, list):
            raise BadMessage(f"field {key!r} must be a list, got {type(value).__name__}")
        width, entry, kind = self.width, self.entry, self.kind
        for item in value:
            if type(item) is not list or len(item) != width:
                raise BadMessage(f"field {key!r}: bad entry {item!r}")
            for x in item:
                if type(x) is not kind:
                    raise BadMessage(f"field {key!r}: bad entry {item!r}")
            if entry is not None and not entry(item):
                raise BadMessage(f"field {key!r}: bad entry {item!r}")
        return tuple(map(tuple, value))


class Packed(Shape):
    """Consecutive integer fields that travel as one JSON array under ``key``, one part per
    field (``"bid":[price,size]``), each part at least 0 when ``non_negative``."""

    def __init__(self, key: str, parts: tuple[str, ...], non_negative: bool = False) -> None:
        self.key, self.parts, self.attrs = key, parts, len(parts)
        self.low = 0 if non_negative else None

    def encoded(self, values: list[str]) -> str:
        return f"[{', '.join(values)}]"

    def check(self, key: str, value: Any) -> list[int]:
        low = self.low
        if (
            type(value) is not list
            or len(value) != self.attrs
            or not all(type(v) is int and (low is None or v >= low) for v in value)
        ):
            kind = "integers" if low is None else "non-negative integers"
            parts = ", ".join(self.parts)
            raise BadMessage(f"field {key!r} must be [{parts}] of {kind}, got {value!r}")
        return value


def _order_change_ok(change: list[int]) -> bool:
    action, side, _price, size, _oid = change
    return action in ORDER_ACTIONS and side in (0, 1) and size >= 0


def _resting_order_ok(order: list[int]) -> bool:
    side, _price, size, _oid = order
    return side in (0, 1) and size > 0


INTEGER, TEXT = Integer(), Text()
INVERSE = Choice((False, True), "field 'inverse' must be true or false")
TERM = Note()
"""A listing term of an Instrument ("" where the source has none)."""
LEVELS, LEVEL_CHANGES = Levels(2), Levels(3)
ORDER_CHANGES, RESTING_ORDERS = Levels(5, _order_change_ok), Levels(4, _resting_order_ok)
UNIT_SIZE = UnitSize()
MEMBERS = Levels(3, all, str)  # (venue, symbol, state) of a consolidated stream's members
BID, ASK = (Packed(side, ("price", "size"), non_negative=True) for side in ("bid", "ask"))
OHLC = Packed("ohlc", ("open", "high", "low", "close"))
PLAIN: dict[Any, Shape] = {int: INTEGER, str: TEXT}
"""The shape of a field declared without one, by its type."""


# -- the table -----------------------------------------------------------------------------


def wire(shape: Shape, *, default: Any = dataclasses.MISSING) -> Any:
    """Declare a field that travels in ``shape`` (a field without a default unless given)."""
    return dataclasses.field(default=default, metadata={"wire": shape})


@dataclass(frozen=True, slots=True)
class EventType:
    """One declared event: its kind tag, its Kafka topic (the suffix after the prefix),
    its class and the codec generated from its fields (``source`` shows the code)."""

    tag: str
    topic: str
    cls: type
    encode: Callable[[Any], bytes]
    decode: Callable[[dict[str, Any]], Any]
    source: str


EVENT_TYPES: dict[type, EventType] = {}
"""Every event type by class, in declaration order."""
_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {}
_ENCODERS: dict[type, Callable[[Any], bytes]] = {}

_E = TypeVar("_E")


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, wire))
def event(tag: str, *, topic: str) -> Callable[[type[_E]], type[_E]]:
    """Declare an event class: a frozen, slotted dataclass sent as kind ``tag`` on ``topic``."""

    def declare(cls: type[_E]) -> type[_E]:
        cls = dataclass(frozen=True, slots=True)(cls)
        if tag in _DECODERS:
            raise TypeError(f"{cls.__name__}: kind tag {tag!r} is already declared")
        encoder, decoder, source = _compile(cls, tag)
        EVENT_TYPES[cls] = EventType(tag, topic, cls, encoder, decoder, source)
        _ENCODERS[cls], _DECODERS[tag] = encoder, decoder
        return cls

    return declare


Group = tuple[str, Shape, tuple[dataclasses.Field[Any], ...]]
"""One wire value: its key, its shape and the fields of the class it holds."""


def _groups(cls: type) -> list[Group]:
    """The wire values of an event class in field order; TypeError for a field without a
    shape or a Packed shape whose fields are not together."""
    hints, fields = get_type_hints(cls), dataclasses.fields(cls)
    out: list[Group] = []
    i = 0
    while i < len(fields):
        f = fields[i]
        shape = f.metadata.get("wire") or PLAIN.get(hints[f.name])
        if shape is None:
            raise TypeError(f"{cls.__name__}.{f.name}: declare its shape with wire(...)")
        group = fields[i : i + shape.attrs]
        if len(group) < shape.attrs or any(g.metadata.get("wire") is not shape for g in group[1:]):
            raise TypeError(f"{cls.__name__}.{f.name}: {shape.attrs} fields travel together")
        out.append((shape.key if isinstance(shape, Packed) else f.name, shape, group))
        i += shape.attrs
    return out


def _encoder(name: str, tag: str, groups: list[Group]) -> list[str]:
    """Source of the encoder: one dict display, then the fields that are left out while
    None (and any after them)."""
    items, after = [f"'k': {tag!r}"], []
    for key, shape, group in groups:
        value = shape.encoded([f"e.{f.name}" for f in group])
        if group[0].default is None:
            after += [f"    if e.{group[0].name} is not None:", f"        d[{key!r}] = {value}"]
        elif after:
            after.append(f"    d[{key!r}] = {value}")
        else:
            items.append(f"{key!r}: {value}")
    display = "{" + ", ".join(items) + "}"
    if not after:
        return [f"def encode_{name}(e):", f"    return _dumps({display})"]
    return [f"def encode_{name}(e):", f"    d = {display}", *after, "    return _dumps(d)"]


def _decoder(name: str, groups: list[Group], ns: dict[str, Any]) -> list[str]:
    """Source of the decoder: each key read once (integers and strings tested inline, a
    missing key with a default takes it), then the event built through its slots."""
    lines = [f"def decode_{name}(obj):"]
    for i, (key, shape, group) in enumerate(groups):
        ns[f"_s{i}"], var = shape, f"f_{group[0].name}"
        if shape.fast is None:
            targets = ", ".join(f"f_{f.name}" for f in group)
            read = [f"{targets} = _s{i}.check({key!r}, obj.get({key!r}))"]
        else:
            test = shape.fast.format(v=var)
            read = [
                f"{var} = obj.get({key!r})",
                f"if not ({test}):",
                f"    _s{i}.check({key!r}, {var})",
            ]
        if group[0].default is not dataclasses.MISSING:
            ns[f"_d{i}"] = group[0].default
            read = [
                f"if {key!r} in obj:",
                *(f"    {r}" for r in read),
                "else:",
                f"    {var} = _d{i}",
            ]
        lines += [f"    {r}" for r in read]
    lines.append("    e = _new(_cls)")
    for f in (f for _, _, group in groups for f in group):
        ns[f"_set_{f.name}"] = getattr(ns["_cls"], f.name).__set__
        lines.append(f"    _set_{f.name}(e, f_{f.name})")
    return [*lines, "    return e"]


def _init(fields: tuple[dataclasses.Field[Any], ...], ns: dict[str, Any]) -> list[str]:
    """Source of the constructor: the dataclass's signature, each field stored through its
    slot. The frozen dataclass's own ``__init__`` stores each through
    ``object.__setattr__``, which made building a BookUpdate ~2 us, a third of the hub's
    whole cost of a one-level venue frame; this one is a third of that."""
    params = ["self"]
    for i, f in enumerate(fields):
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            ns[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
    body = [f"    _set_{f.name}(self, {f.name})" for f in fields]
    return [f"def __init__({', '.join(params)}):", *body]


def _compile(cls: type, tag: str) -> tuple[Callable[[Any], bytes], Callable[..., Any], str]:
    """Generate the encoder, decoder and constructor of an event class from its
    declaration (the constructor replaces the dataclass's ``__init__``)."""
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: decoders build events without __init__")
    groups = _groups(cls)
    ns: dict[str, Any] = {"_cls": cls, "_dumps": orjson.dumps, "_new": object.__new__}
    name = cls.__name__
    code = _encoder(name, tag, groups) + _decoder(name, groups, ns)
    source = "\n".join(code + _init(dataclasses.fields(cls), ns)) + "\n"
    exec(compile(source, f"<event {name}>", "exec"), ns)
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    return ns[f"encode_{name}"], ns[f"decode_{name}"], source


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
    encoder = _ENCODERS.get(type(event))
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
    decoder = _DECODERS.get(kind) if type(kind) is str else None
    if decoder is None:
        raise BadMessage(f"unknown message kind {kind!r}")
    event: Event = decoder(obj)
    return event


def decode_as(data: bytes, cls: type[_E]) -> _E:
    """Decode a message that must hold an event of class ``cls``; BadMessage otherwise."""
    event = decode(data)
    if not isinstance(event, cls):
        raise BadMessage(f"expected a {EVENT_TYPES[cls].tag} message, got {event_type(event).tag}")
    return event
