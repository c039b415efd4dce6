"""Matching-engine behaviour, run against both implementations."""

from __future__ import annotations

from typing import Any

import pytest

from orderbook_core import _book, _pybook
from orderbook_core.errors import DuplicateOrderId, InvalidPrice, InvalidSize, OrderNotFound

BID, ASK = 0, 1


@pytest.fixture(params=["cython", "python"])
def engine(request: pytest.FixtureRequest) -> Any:
    return (_book if request.param == "cython" else _pybook).MatchingEngine()


def test_price_time_priority_and_partial_fill(engine: Any) -> None:
    engine.submit_limit(1, ASK, 101, 5)
    engine.submit_limit(2, ASK, 100, 3)
    engine.submit_limit(3, ASK, 100, 4)
    fills, levels = engine.submit_limit(10, BID, 101, 9)
    # Best price first, then arrival order at that price; the rest at 101 from order 1.
    assert fills == [(2, 10, 100, 3), (3, 10, 100, 4), (1, 10, 101, 2)]
    assert levels == [(ASK, 100, 0), (ASK, 101, 3)]
    assert engine.depth(ASK) == [(101, 3, 1)]
    assert engine.best_bid() is None


def test_limit_rests_remainder_and_market_sweeps(engine: Any) -> None:
    engine.submit_limit(1, ASK, 100, 2)
    fills, levels = engine.submit_limit(2, BID, 100, 5)
    assert fills == [(1, 2, 100, 2)]
    assert levels == [(ASK, 100, 0), (BID, 100, 3)]
    assert engine.order(2) == (BID, 100, 3)
    fills, levels = engine.submit_market(3, ASK, 10)
    assert fills == [(2, 3, 100, 3)]
    assert levels == [(BID, 100, 0)]
    assert engine.order_count() == 0


def test_cancel_keeps_queue_order(engine: Any) -> None:
    for oid in (1, 2, 3):
        engine.submit_limit(oid, BID, 50, oid)
    fills, levels = engine.cancel(2)
    assert (fills, levels) == ([], [(BID, 50, 4)])
    assert engine.order_ids(BID, 50) == [1, 3]
    assert engine.depth(BID) == [(50, 4, 2)]


def test_integrity_errors_cross_the_boundary(engine: Any) -> None:
    engine.submit_limit(1, BID, 10, 1)
    with pytest.raises(DuplicateOrderId):
        engine.submit_limit(1, BID, 10, 1)
    with pytest.raises(OrderNotFound):
        engine.cancel(99)
    with pytest.raises(InvalidSize):
        engine.submit_limit(2, BID, 10, 0)
    with pytest.raises(InvalidPrice):
        engine.submit_limit(3, ASK, 0, 1)
    with pytest.raises(ValueError):
        engine.submit_limit(4, 2, 10, 1)
    assert engine.depth(BID) == [(10, 1, 1)]
