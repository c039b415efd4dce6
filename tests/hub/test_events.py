from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any, get_args

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hub.event_codec
import hub.events
from hub.errors import BadMessage
from hub.events import (
    EVENT_TYPES,
    SELL,
    TOPICS,
    Bar,
    BookSnapshot,
    BookUpdate,
    Event,
    Instrument,
    Members,
    Status,
    TopOfBook,
    Trade,
    decode,
    decode_as,
    encode,
    event,
    event_type,
    new_epoch,
    stamp,
    stamp_checksum,
    wire,
)
from orderbook_core.types import F_LAST, F_SNAPSHOT
from tests.hub.nasty import EXAMPLES, json_values

EVENTS: list[Event] = [
    BookUpdate(
        "SIM",
        "BTC-USD",
        7,
        1_700_000_000_000_000_001,
        1_700_000_000_000_000_002,
        ((0, 6_500_000, 12), (1, 6_500_100, 0)),
    ),
    Trade("SIM", "BTC-USD", 3, "3", 6_500_000, 5, 1, 10, 11),
    BookSnapshot("SIM", "BTC-USD", 9, 12, ((100, 1), (99, 2)), ((101, 3),)),
    Instrument("SIM", "BTC-USD", "0.01", "0.00001"),
    TopOfBook("SIM", "BTC-USD", 7, 10, 11, 6_500_000, 12, 6_500_100, 3),
    TopOfBook("SIM", "BTC-USD", 8, 10, 11, 0, 0, 6_500_100, 3),  # no bids
    BookUpdate(  # with its order-level changes; a Databento order id needs all 64 bits
        "DATABENTO",
        "ESZ6",
        8,
        1,
        2,
        ((0, 100, 3),),
        orders=((1, 0, 100, 4, 2**64 - 1), (2, 0, 100, 3, 2**64 - 1), (4, 0, 0, 0, 0)),
    ),
    BookSnapshot(
        "SIM", "BTC-USD", 9, 12, ((100, 1),), ((101, 3),), ((0, 100, 1, 7), (1, 101, 3, 8))
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_round_trip(event: Event) -> None:
    assert decode(encode(event)) == event


EPOCH = 1_764_700_000_000_000_000
GOLDEN: list[tuple[Event, bytes]] = [
    (
        BookUpdate(
            "SIM",
            "BTC-USD",
            7,
            1_700_000_000_000_000_001,
            1_700_000_000_000_000_002,
            ((0, 6_500_000, 12), (1, 6_500_100, 0)),
            epoch=EPOCH,
            checksum=2**32 - 1,
        ),
        b'{"k":"book","venue":"SIM","symbol":"BTC-USD","seq":7,"ts_event":1700000000000000001,'
        b'"ts_recv":1700000000000000002,"changes":[[0,6500000,12],[1,6500100,0]],"flags":1,'
        b'"epoch":1764700000000000000,"checksum":4294967295}',
    ),
    (
        BookUpdate(
            "DATABENTO",
            "ESZ6",
            8,
            1,
            2,
            ((0, 100, 3), (1, 101, 0)),
            F_SNAPSHOT | F_LAST,
            (
                (1, 0, 100, 4, 2**64 - 1),
                (2, 0, 100, 3, 2**64 - 1),
                (3, 1, 101, 0, 5),
                (4, 0, 0, 0, 0),
            ),
            EPOCH,
        ),
        b'{"k":"book","venue":"DATABENTO","symbol":"ESZ6","seq":8,"ts_event":1,"ts_recv":2,'
        b'"changes":[[0,100,3],[1,101,0]],"flags":3,"orders":[[1,0,100,4,18446744073709551615],'
        b'[2,0,100,3,18446744073709551615],[3,1,101,0,5],[4,0,0,0,0]],"epoch":1764700000000000000}',
    ),
    (
        Trade("SIM", "BTC-USD", 3, "t-3", 6_500_000, 5, SELL, 10, 11, EPOCH),
        b'{"k":"trade","venue":"SIM","symbol":"BTC-USD","seq":3,"trade_id":"t-3","price":6500000,'
        b'"size":5,"side":1,"ts_event":10,"ts_recv":11,"epoch":1764700000000000000}',
    ),
    (
        BookSnapshot("SIM", "BTC-USD", 9, 12, ((100, 1), (99, 2)), ((101, 3),), epoch=EPOCH),
        b'{"k":"snapshot","venue":"SIM","symbol":"BTC-USD","seq":9,"ts_event":12,'
        b'"bids":[[100,1],[99,2]],"asks":[[101,3]],"epoch":1764700000000000000}',
    ),
    (
        BookSnapshot(
            "SIM",
            "BTC-USD",
            9,
            12,
            ((100, 1),),
            ((101, 3),),
            ((0, 100, 1, 7), (1, 101, 3, 8)),
            EPOCH,
        ),
        b'{"k":"snapshot","venue":"SIM","symbol":"BTC-USD","seq":9,"ts_event":12,'
        b'"bids":[[100,1]],"asks":[[101,3]],"orders":[[0,100,1,7],[1,101,3,8]],'
        b'"epoch":1764700000000000000}',
    ),
    (
        Instrument("SIM", "BTC-USD", "0.01", "0.00001"),
        b'{"k":"instrument","venue":"SIM","symbol":"BTC-USD","tick_size":"0.01",'
        b'"lot_size":"0.00001","canonical":"","kind":"","base":"","quote":"","settle":"",'
        b'"expiry":"","strike":"","right":"","contract_size":"","inverse":false}',
    ),
    (
        Status("SIM", "BTC-USD", "stale", "gap 4..6", 13, 14),
        b'{"k":"status","venue":"SIM","symbol":"BTC-USD","state":"stale","reason":"gap 4..6",'
        b'"ts_event":13,"ts_recv":14}',
    ),
    (
        TopOfBook("SIM", "BTC-USD", 7, 10, 11, 6_500_000, 12, 0, 0, EPOCH),
        b'{"k":"bbo","venue":"SIM","symbol":"BTC-USD","seq":7,"ts_event":10,"ts_recv":11,'
        b'"bid":[6500000,12],"ask":[0,0],"epoch":1764700000000000000}',
    ),
    (
        Bar(
            "SIM",
            "BTC-USD",
            60,
            1_700_000_040_000_000_000,
            100,
            120,
            90,
            110,
            7,
            2**70 + 3,
            4,
            EPOCH,
        ),
        b'{"k":"bar","venue":"SIM","symbol":"BTC-USD","interval_s":60,"start":1700000040000000000,'
        b'"ohlc":[100,120,90,110],"volume":7,"notional":"1180591620717411303427","trades":4,'
        b'"epoch":1764700000000000000}',
    ),
    (
        Members(
            "CONSOLIDATED",
            "BTC-USD",
            5,
            12,
            (("COINBASE", "BTC-USD", "live"), ("KRAKEN", "XBT/USD", "stale")),
            EPOCH,
        ),
        b'{"k":"members","venue":"CONSOLIDATED","symbol":"BTC-USD","seq":5,"ts_event":12,'
        b'"members":[["COINBASE","BTC-USD","live"],["KRAKEN","XBT/USD","stale"]],'
        b'"epoch":1764700000000000000}',
    ),
]
"""One event of every type with its exact wire bytes, as written to Kafka topics and Redis
snapshots: messages stored before a change of the codec must still decode to the same event."""


@pytest.mark.parametrize(("event", "data"), GOLDEN, ids=lambda x: type(x).__name__)
def test_wire_bytes_are_pinned(event: Event, data: bytes) -> None:
    assert encode(event) == data
    assert decode(data) == event


def test_golden_covers_every_event_type() -> None:
    assert {type(e) for e, _ in GOLDEN} == set(get_args(Event))


def test_messages_of_older_writers_decode() -> None:
    """A book update without flags is one atomic change; a status without a reason has none."""
    update = decode(
        b'{"k":"book","venue":"SIM","symbol":"X","seq":1,"ts_event":1,"ts_recv":2,"changes":[]}'
    )
    assert update == BookUpdate("SIM", "X", 1, 1, 2, (), F_LAST)
    status = decode(
        b'{"k":"status","venue":"SIM","symbol":"X","state":"halted","ts_event":1,"ts_recv":2}'
    )
    assert status == Status("SIM", "X", "halted", "", 1, 2)
    trade = decode(
        b'{"k":"trade","venue":"SIM","symbol":"X","seq":1,"trade_id":"1","price":1,"size":1,'
        b'"side":0,"ts_event":1,"ts_recv":2}'
    )
    assert trade == Trade("SIM", "X", 1, "1", 1, 1, 0, 1, 2) and trade.epoch == 0


def test_stamp_sets_epoch_and_checksum_in_place() -> None:
    update = BookUpdate("SIM", "X", 1, 1, 2, ())
    stamp(update, EPOCH)
    stamp_checksum(update, 7)
    assert (update.epoch, update.checksum) == (EPOCH, 7)
    assert decode(encode(update)) == update
    assert 0 < new_epoch() < new_epoch() < 2**63


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (
            b'{"k":"book","venue":"SIM","symbol":"X","seq":"1","ts_event":1,"ts_recv":1,"changes":[]}',
            "'seq' must be an integer",
        ),
        (
            b'{"k":"book","venue":"SIM","symbol":"X","seq":1,"ts_event":1,"ts_recv":1,"changes":[[0,1]]}',
            "bad entry",
        ),
        (b'{"k":"trade","venue":"","symbol":"X"}', "'venue' must be a non-empty string"),
        (b'{"k":"weird","venue":"SIM","symbol":"X"}', "unknown message kind 'weird'"),
        (b'{"venue":"SIM","symbol":"X"}', "unknown message kind None"),
        (b'{"k":["book"]}', "unknown message kind \\['book'\\]"),
        (
            b'{"k":"instrument","venue":"SIM","symbol":"X","tick_size":"0","lot_size":"1"}',
            "positive",
        ),
        (
            b'{"k":"trade","venue":"SIM","symbol":"X","seq":1,"trade_id":"1","price":1.5,"size":1,'
            b'"side":0,"ts_event":1,"ts_recv":1}',
            "'price' must be an integer",
        ),
        (
            b'{"k":"trade","venue":"SIM","symbol":"X","seq":1,"trade_id":"1","price":1,"size":1,'
            b'"side":3,"ts_event":1,"ts_recv":1}',
            "trade side must be 0, 1 or 2, got 3",
        ),
        (
            b'{"k":"book","venue":"SIM","symbol":"X","seq":1,"ts_event":1,"ts_recv":1,'
            b'"changes":[],"orders":[[9,0,100,1,5]]}',
            "field 'orders': bad entry \\[9, 0, 100, 1, 5\\]",
        ),
        (
            b'{"k":"snapshot","venue":"SIM","symbol":"X","seq":1,"ts_event":1,"bids":[],'
            b'"asks":[],"orders":[[0,100,0,5]]}',
            "field 'orders': bad entry \\[0, 100, 0, 5\\]",
        ),
        (
            b'{"k":"bbo","venue":"SIM","symbol":"X","seq":1,"ts_event":1,"ts_recv":1,'
            b'"bid":[1,-2],"ask":[3,4]}',
            "'bid' must be \\[price, size\\] of non-negative integers",
        ),
        (
            b'{"k":"bar","venue":"SIM","symbol":"X","interval_s":1,"start":0,"ohlc":[1,2,3],'
            b'"volume":1,"notional":"1","trades":1}',
            "'ohlc' must be \\[open, high, low, close\\] of integers, got \\[1, 2, 3\\]",
        ),
        (
            b'{"k":"bar","venue":"SIM","symbol":"X","interval_s":1,"start":0,"ohlc":[1,2,3,4],'
            b'"volume":1,"notional":"\xc2\xb2","trades":1}',  # a superscript 2: not ASCII
            "'notional' must be a string of digits",
        ),
        (
            b'{"k":"status","venue":"SIM","symbol":"X","state":"gone","ts_event":1,"ts_recv":1}',
            "'state' must be one of stale, resynced, halted, trading, closed, got 'gone'",
        ),
        (
            b'{"k":"snapshot","venue":"SIM","symbol":"X","seq":1,"ts_event":1,"bids":{},"asks":[]}',
            "'bids' must be a list, got dict",
        ),
    ],
)
def test_bad_messages_named(data: bytes, message: str) -> None:
    with pytest.raises(BadMessage, match=message):
        decode(data)


def test_the_table_declares_every_event_once() -> None:
    assert set(EVENT_TYPES) == set(get_args(Event))
    assert len({t.tag for t in EVENT_TYPES.values()}) == len(EVENT_TYPES)
    assert TOPICS == ("instruments", "book", "trades", "depth", "bbo", "bars")
    assert {cls: t.topic for cls, t in EVENT_TYPES.items()} == {
        Instrument: "instruments",
        BookUpdate: "book",
        Status: "book",  # in order with its stream's updates
        Trade: "trades",
        BookSnapshot: "depth",
        TopOfBook: "bbo",
        Bar: "bars",
        Members: "book",  # in order with the consolidated stream's updates
    }
    for e, data in GOLDEN:
        assert event_type(e).tag == orjson.loads(data)["k"]


def test_an_object_that_is_not_an_event_is_not_encoded() -> None:
    """Never written as some other kind: a look-alike of a Trade is refused."""

    @dataclasses.dataclass(frozen=True)
    class LooksLikeTrade:
        venue: str = "SIM"
        symbol: str = "X"

    for thing in (LooksLikeTrade(), object(), None):
        with pytest.raises(TypeError, match="not an event"):
            encode(thing)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="not an event"):
            event_type(thing)


def test_decode_as_names_the_kind_it_got() -> None:
    trade = next(data for e, data in GOLDEN if isinstance(e, Trade))
    assert decode_as(trade, Trade) == decode(trade)
    with pytest.raises(BadMessage, match="expected a snapshot message, got trade"):
        decode_as(trade, BookSnapshot)


@pytest.fixture
def scratch_table() -> Iterator[None]:
    """Declarations made by a test leave the codec's tables as they were."""
    tables: list[dict[Any, Any]] = [
        hub.event_codec.EVENT_TYPES,
        hub.event_codec.ENCODERS,
        hub.event_codec.DECODERS,
    ]
    saved = [dict(table) for table in tables]
    yield
    for table, before in zip(tables, saved, strict=True):
        table.clear()
        table.update(before)


@pytest.mark.usefixtures("scratch_table")
def test_a_new_event_is_declared_in_one_place() -> None:
    @event("ping", topic="pings")
    class Ping:
        venue: str
        symbol: str
        n: int
        note: str = wire(hub.event_codec.Note())
        sides: tuple[tuple[int, int], ...] | None = wire(hub.events.LEVELS, default=None)

    ping = Ping("SIM", "X", 3, "hi")
    assert encode(ping) == b'{"k":"ping","venue":"SIM","symbol":"X","n":3,"note":"hi"}'  # type: ignore[arg-type]
    assert decode(encode(ping)) == ping  # type: ignore[arg-type, comparison-overlap]
    assert decode(b'{"k":"ping","venue":"SIM","symbol":"X","n":3,"sides":[[1,2]]}') == Ping(  # type: ignore[comparison-overlap]
        "SIM", "X", 3, "", ((1, 2),)
    )
    assert hub.events.EVENT_TYPES[Ping].topic == "pings"
    with pytest.raises(BadMessage, match="'n' must be an integer, got '3'"):
        decode(b'{"k":"ping","venue":"SIM","symbol":"X","n":"3"}')


@pytest.mark.usefixtures("scratch_table")
def test_declarations_that_cannot_travel_are_refused() -> None:
    with pytest.raises(TypeError, match="'book' is already declared"):

        @event("book", topic="book")
        class Again:
            venue: str

    with pytest.raises(TypeError, match=r"Odd.levels: declare its shape with wire\(...\)"):

        @event("odd", topic="odd")
        class Odd:
            levels: tuple[tuple[int, int], ...]

    with pytest.raises(TypeError, match=r"Half.bid_price: 2 fields travel together"):

        @event("half", topic="half")
        class Half:
            bid_price: int = wire(hub.events.BID)

    assert "odd" not in hub.event_codec.DECODERS and "half" not in hub.event_codec.DECODERS


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.sampled_from(GOLDEN), st.data())
def test_any_field_value_decodes_or_is_named(golden: tuple[Event, bytes], data: Any) -> None:
    """A message with one field (or the kind) replaced by any JSON value decodes to an event
    that encodes again, or is refused with a BadMessage; nothing else escapes."""
    obj = orjson.loads(golden[1])
    key = data.draw(st.sampled_from([*obj, "orders", "flags"]))
    obj[key] = data.draw(json_values)
    try:
        decoded = decode(json.dumps(obj).encode())
    except BadMessage:
        return
    assert decode(encode(decoded)) == decoded


def test_a_slotted_constructor_builds_what_the_dataclass_builds() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Plain:
        a: int
        b: str
        c: int | None = None

    @hub.event_codec.slotted
    @dataclasses.dataclass(frozen=True, slots=True)
    class Fast:
        a: int
        b: str
        c: int | None = None

    calls: tuple[tuple[tuple[Any, ...], dict[str, Any]], ...] = (
        ((1, "x"), {}),
        ((1,), {"b": "y", "c": 3}),
        ((), {"c": 0, "a": 2, "b": ""}),
    )
    for args, kwargs in calls:
        assert dataclasses.astuple(Fast(*args, **kwargs)) == dataclasses.astuple(
            Plain(*args, **kwargs)
        )
    assert "<init Fast>" in Fast.__init__.__code__.co_filename
    assert Fast(1, "x") == Fast(a=1, b="x")
    with pytest.raises(TypeError, match="b"):
        Fast(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="d"):
        Fast(1, "x", d=2)  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Fast(1, "x").a = 2  # type: ignore[misc]

    with pytest.raises(TypeError, match=r"Listed.xs: only plain fields"):

        @hub.event_codec.slotted
        @dataclasses.dataclass(frozen=True, slots=True)
        class Listed:
            xs: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="Loose: a slotted constructor needs slots"):

        @hub.event_codec.slotted
        @dataclasses.dataclass(frozen=True)
        class Loose:
            a: int
