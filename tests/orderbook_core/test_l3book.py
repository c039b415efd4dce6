"""L3 book rules, pinned one by one for both implementations."""

from __future__ import annotations

from array import array
from typing import Any

import pytest

from orderbook_core import _l3, _pyl3
from orderbook_core.errors import (
    DuplicateOrderId,
    InvalidOrderId,
    InvalidPrice,
    InvalidSize,
    OrderNotFound,
    OrdersCrossed,
)
from orderbook_core.types import F_LAST, checksum, checksum_text

BID, ASK = 0, 1
ADD, UPDATE, DELETE, CLEAR = 1, 2, 3, 4


@pytest.fixture(params=["cython", "python"])
def impl(request: pytest.FixtureRequest) -> Any:
    return _l3 if request.param == "cython" else _pyl3


def test_price_time_queues_and_level_views(impl: Any) -> None:
    b = impl.L3Book()
    b.add(1, BID, 100, 5)
    b.add(2, BID, 100, 3)
    b.add(3, BID, 99, 1)
    b.add(4, ASK, 101, 2)
    assert b.order_ids(BID, 100) == [1, 2]
    assert b.depth(BID) == [(100, 8, 2), (99, 1, 1)]
    assert b.best_bid() == (100, 8) and b.best_ask() == (101, 2)
    assert b.snapshot(1) == ([(100, 8, 2)], [(101, 2, 1)])


def test_reduce_and_execute_keep_priority_and_delete_at_zero(impl: Any) -> None:
    b = impl.L3Book()
    b.add(1, ASK, 50, 5)
    b.add(2, ASK, 50, 5)
    b.reduce(1, 2)
    assert b.order_ids(ASK, 50) == [1, 2] and b.order(1) == (ASK, 50, 3)
    assert b.execute(1, 3) == (50, 3)
    assert b.order(1) is None and b.order_ids(ASK, 50) == [2]
    b.delete(2)  # the last order at the level: the level goes too
    assert b.depth(ASK) == [] and b.level_count(ASK) == 0


@pytest.mark.parametrize("size", [0, -1, 6])
def test_reduce_out_of_range_refused_and_book_unchanged(impl: Any, size: int) -> None:
    b = impl.L3Book()
    b.add(1, BID, 10, 5)
    with pytest.raises(InvalidSize, match="order 1"):
        b.reduce(1, size)
    with pytest.raises(InvalidSize):
        b.execute(1, size)
    assert b.order(1) == (BID, 10, 5)


def test_replace_loses_priority_keeps_side(impl: Any) -> None:
    b = impl.L3Book()
    b.add(1, BID, 10, 5)
    b.add(2, BID, 10, 5)
    b.replace(1, 7, 10, 4)
    assert b.order_ids(BID, 10) == [2, 7]
    assert b.order(7) == (BID, 10, 4) and b.order(1) is None


def test_refused_replace_leaves_order_in_place(impl: Any) -> None:
    b = impl.L3Book()
    b.add(1, BID, 10, 5)
    b.add(2, BID, 10, 5)
    b.add(3, ASK, 12, 1)
    with pytest.raises(OrdersCrossed):
        b.replace(1, 8, 12, 5)
    with pytest.raises(DuplicateOrderId):
        b.replace(1, 2, 11, 5)
    with pytest.raises(InvalidSize):
        b.replace(1, 9, 11, 0)
    assert b.order_ids(BID, 10) == [1, 2]


@pytest.mark.parametrize(("side", "price"), [(BID, 12), (BID, 13), (ASK, 10), (ASK, 9)])
def test_locking_or_crossing_add_refused(impl: Any, side: int, price: int) -> None:
    b = impl.L3Book()
    b.add(1, BID, 10, 1)
    b.add(2, ASK, 12, 1)
    with pytest.raises(OrdersCrossed, match="would cross"):
        b.add(3, side, price, 1)
    assert b.order_count() == 2
    crossing = impl.L3Book(allow_cross=True)
    crossing.add(1, BID, 10, 1)
    crossing.add(2, ASK, 10, 1)
    assert crossing.is_crossed()


def test_typed_errors(impl: Any) -> None:
    b = impl.L3Book()
    b.add(1, BID, 10, 1)
    with pytest.raises(DuplicateOrderId):
        b.add(1, BID, 10, 1)
    with pytest.raises(OrderNotFound, match="order id 5"):
        b.delete(5)
    with pytest.raises(InvalidPrice):
        b.add(2, BID, 0, 1)
    with pytest.raises(InvalidSize):
        b.add(2, BID, 10, -3)
    with pytest.raises(ValueError):
        b.add(2, 3, 10, 1)


def test_deltas_with_seq_and_last_flag(impl: Any) -> None:
    b = impl.L3Book(emit_deltas=True)
    b.add(1, BID, 10, 5)
    b.reduce(1, 2)
    b.replace(1, 2, 11, 4)
    b.clear()
    assert b.take_deltas() == [
        (ADD, BID, 10, 5, 1, F_LAST, 1),
        (UPDATE, BID, 10, 3, 1, F_LAST, 2),
        (DELETE, BID, 10, 0, 1, 0, 3),  # replace: one atomic change, F_LAST on its end
        (ADD, BID, 11, 4, 2, F_LAST, 4),
        (CLEAR, 0, 0, 0, 0, F_LAST, 5),
    ]
    assert b.take_deltas() == []


def test_batch_applies_in_order_and_keeps_prefix_on_error(impl: Any) -> None:
    b = impl.L3Book(emit_deltas=True)
    ops = array(
        "q",
        [
            1,
            1,
            BID,
            10,
            5,
            1,
            2,
            ASK,
            12,
            3,
            2,
            1,
            0,
            0,
            2,
            4,
            2,
            0,
            0,
            1,
            3,
            9,
            0,
            0,
            0,
            1,
            3,
            BID,
            9,
            1,
        ],
    )
    with pytest.raises(OrderNotFound) as info:
        b.apply_batch(ops)
    assert info.value.index == 4
    assert b.snapshot() == ([(10, 3, 1)], [(12, 2, 1)])
    deltas = b.take_deltas()
    assert [d[0] for d in deltas] == [ADD, ADD, UPDATE, UPDATE]
    assert [d[5] for d in deltas] == [0, 0, 0, F_LAST]
    assert b.apply_batch(array("q", [5, 1, 4, 9, 6])) == 1
    assert b.order(4) == (BID, 9, 6)
    with pytest.raises(ValueError, match="multiple of 5"):
        b.apply_batch(array("q", [1, 2, 3]))


def test_checksum_matches_its_definition(impl: Any) -> None:
    b = impl.L3Book()
    b.add(1, BID, 1002, 5)
    b.add(2, BID, 1001, 2)
    b.add(3, ASK, 1003, 7)
    assert checksum_text([(1002, 5), (1001, 2)], [(1003, 7)]) == b"1002:5:1003:7:1001:2"
    assert b.checksum(10) == checksum([(1002, 5), (1001, 2)], [(1003, 7)]) == 3013130725
    assert b.checksum(1) == checksum([(1002, 5)], [(1003, 7)])
    assert impl.L3Book().checksum(5) == 0


def test_reserved_order_id_refused(impl: Any) -> None:
    b = impl.L3Book()
    with pytest.raises(InvalidOrderId):
        b.add(-(2**63), BID, 10, 1)
    assert b.order_count() == 0


def test_snapshot_as_deltas_rebuilds_the_book(impl: Any) -> None:
    b = impl.L3Book(emit_deltas=True)
    b.add(1, BID, 10, 5)
    b.add(2, BID, 10, 3)
    b.add(3, ASK, 12, 1)
    b.add(4, ASK, 13, 2)
    b.take_deltas()
    snap = b.snapshot_deltas(1)
    assert snap == [
        (CLEAR, 0, 0, 0, 0, 2, 4),
        (ADD, BID, 10, 5, 1, 2, 4),
        (ADD, BID, 10, 3, 2, 2, 4),
        (ADD, ASK, 12, 1, 3, 2 | F_LAST, 4),
    ]
    copy = impl.L3Book()
    for _action, side, price, size, oid, _flags, _seq in snap[1:]:
        copy.add(oid, side, price, size)
    assert copy.snapshot() == b.snapshot(1)
