"""Book-core errors carry their data as attributes, the same in both cores, with the
messages unchanged; replay and batch errors also say where."""

from __future__ import annotations

import copy
import pickle
from array import array
from typing import Any

import pytest

from orderbook_core import _book, _engine, _itch, _l3, _pybook, _pyengine, _pyitch, _pyl3
from orderbook_core.errors import (
    BookError,
    DuplicateOrderId,
    InvalidOrderId,
    InvalidPrice,
    InvalidSize,
    OrderNotFound,
    OrdersCrossed,
    located,
)
from testing import itchgen as g

BID, ASK = 0, 1
CORES = {"cython": (_book, _l3, _itch, _engine), "python": (_pybook, _pyl3, _pyitch, _pyengine)}


@pytest.fixture(params=sorted(CORES))
def core(request: pytest.FixtureRequest) -> tuple[Any, Any, Any, Any]:
    return CORES[request.param]


def data(err: BaseException) -> dict[str, Any]:
    """The attributes an error carries beyond its message."""
    names = ("order_id", "side", "price", "size", "best", "index", "offset", "msg_type")
    return {n: getattr(err, n) for n in names if hasattr(err, n)}


def test_l2_errors_carry_side_price_and_size(core: Any) -> None:
    book = core[0].L2Book()
    with pytest.raises(InvalidSize, match=r"^negative size -3 at price 100$") as size:
        book.set(ASK, 100, -3)
    assert data(size.value) == {
        "order_id": None,
        "side": ASK,
        "price": 100,
        "size": -3,
        "index": None,
        "offset": None,
        "msg_type": None,
    }
    with pytest.raises(InvalidPrice, match=r"^non-positive price 0$") as price:
        book.set(BID, 0, 5)
    assert (price.value.price, price.value.side, price.value.order_id) == (0, BID, None)
    with pytest.raises(InvalidPrice) as batch:
        book.apply_batch(array("q", [0, 10, 1, 1, -5, 1]))
    assert (batch.value.index, batch.value.price, batch.value.side) == (1, -5, 1)


def test_l3_errors_carry_the_order(core: Any) -> None:
    book = core[1].L3Book()
    book.add(1, BID, 100, 5)
    with pytest.raises(OrderNotFound, match=r"^order id 9 is not in the book$") as missing:
        book.delete(9)
    assert missing.value.order_id == 9
    with pytest.raises(DuplicateOrderId, match=r"^order id 1 is already in the book$") as dup:
        book.add(1, ASK, 101, 1)
    assert dup.value.order_id == 1
    with pytest.raises(InvalidOrderId) as reserved:
        book.add(-(2**63), ASK, 101, 1)
    assert reserved.value.order_id == -(2**63)
    with pytest.raises(InvalidSize, match=r"^order 2: size must be positive, got 0$") as size:
        book.add(2, ASK, 101, 0)
    assert (size.value.order_id, size.value.side, size.value.price, size.value.size) == (
        2,
        ASK,
        101,
        0,
    )
    with pytest.raises(InvalidPrice) as price:
        book.add(2, ASK, -1, 4)
    assert (price.value.order_id, price.value.side, price.value.price) == (2, ASK, -1)
    with pytest.raises(InvalidSize, match="cannot remove 6 of its 5 lots") as take:
        book.reduce(1, 6)
    assert (take.value.order_id, take.value.side, take.value.price, take.value.size) == (
        1,
        BID,
        100,
        6,
    )
    with pytest.raises(OrdersCrossed, match="would cross the best bid 100") as crossed:
        book.add(3, ASK, 99, 1)
    assert data(crossed.value) == {
        "order_id": 3,
        "side": ASK,
        "price": 99,
        "best": 100,
        "index": None,
        "offset": None,
        "msg_type": None,
    }
    book.add(4, ASK, 102, 1)
    with pytest.raises(DuplicateOrderId, match="new id 4 is already in the book") as new_id:
        book.replace(1, 4, 100, 5)
    assert new_id.value.order_id == 4
    with pytest.raises(InvalidSize) as replace:
        book.replace(1, 5, 101, -2)
    assert (replace.value.order_id, replace.value.side, replace.value.size) == (1, BID, -2)
    with pytest.raises(OrderNotFound) as batch:
        book.apply_batch(array("q", [1, 7, BID, 99, 1, 3, 8, 0, 0, 0]))
    assert (batch.value.index, batch.value.order_id) == (1, 8)


def test_replay_errors_keep_the_book_error_data_and_say_where(core: Any) -> None:
    r = core[2].ItchReplay()
    r.feed(g.add_order(1, 1, 1, "B", 100, "X", 10_0000))
    with pytest.raises(InvalidSize, match=r"^ITCH 'X' message at byte 38: order 1: cannot") as e:
        r.feed(g.cancel(1, 3, 1, 500))
    assert data(e.value) == {
        "order_id": 1,
        "side": BID,
        "price": 10_0000,
        "size": 500,
        "index": None,
        "offset": 38,
        "msg_type": "X",
    }
    with pytest.raises(OrderNotFound) as missing:
        r.feed(g.delete(1, 4, 77))
    assert (missing.value.order_id, missing.value.offset, missing.value.msg_type) == (77, 63, "D")


def test_engine_state_error_carries_the_order(core: Any) -> None:
    engine = core[3].MatchingEngine()
    engine.new_order(1, 1, BID, 0, 100, 2**62)
    engine.new_order(2, 1, BID, 0, 100, 2**62 - 1)
    state = engine.snapshot_state()
    state["book"][0][2][1][9] = 2**62 + 1  # order 2's shown size, past the level's room
    with pytest.raises(InvalidSize, match="order 2 takes the level at 100 past int64") as e:
        core[3].MatchingEngine.restore(state)
    assert (e.value.order_id, e.value.side, e.value.price, e.value.size) == (2, BID, 100, 2**62 + 1)


def test_errors_copy_and_pickle_with_their_data() -> None:
    err = OrdersCrossed("crossed", order_id=3, side=ASK, price=99, best=100)
    where = located(err, "ITCH 'U' message at byte 7", 7, "U")
    assert type(where) is OrdersCrossed and str(where) == "ITCH 'U' message at byte 7: crossed"
    assert data(where) == data(err) | {"offset": 7, "msg_type": "U"}
    assert data(err)["offset"] is None  # the original is left as it was
    for again in (copy.copy(where), pickle.loads(pickle.dumps(where))):
        assert type(again) is OrdersCrossed and again.args == where.args
        assert data(again) == data(where)
    missing = pickle.loads(pickle.dumps(OrderNotFound("order id 5 is not in the book", order_id=5)))
    assert str(missing) == "order id 5 is not in the book" and missing.order_id == 5
    assert isinstance(missing, BookError) and isinstance(missing, KeyError)
