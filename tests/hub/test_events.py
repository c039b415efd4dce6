from __future__ import annotations

import pytest

from hub.errors import BadMessage
from hub.events import BookSnapshot, BookUpdate, Event, Instrument, TopOfBook, Trade, decode, encode

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


def test_wire_bytes_are_stable() -> None:
    assert encode(EVENTS[1]) == (
        b'{"k":"trade","venue":"SIM","symbol":"BTC-USD","seq":3,"trade_id":"3","price":6500000,'
        b'"size":5,"side":1,"ts_event":10,"ts_recv":11}'
    )


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
        (b'{"k":"weird","venue":"SIM","symbol":"X"}', "unknown message kind"),
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
    ],
)
def test_bad_messages_named(data: bytes, message: str) -> None:
    with pytest.raises(BadMessage, match=message):
        decode(data)
