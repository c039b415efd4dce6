"""Matching-engine rules, one by one, for the compiled engine and its reference."""

from __future__ import annotations

from typing import Any

import pytest

from orderbook_core import _engine, _pyengine
from orderbook_core.engine_types import BookEvent, EngineEvent, ExecEvent, TradeEvent
from orderbook_core.engine_types import ExecType as X
from orderbook_core.engine_types import OrderType as T
from orderbook_core.engine_types import Reason as R
from orderbook_core.engine_types import SelfTrade as S
from orderbook_core.engine_types import TimeInForce as F

BUY, SELL = 0, 1
A, B = 1, 2  # accounts


@pytest.fixture(params=["cython", "python"])
def eng(request: pytest.FixtureRequest) -> Any:
    return (_engine if request.param == "cython" else _pyengine).MatchingEngine()


def reports(events: list[EngineEvent]) -> list[tuple[int, int, int]]:
    """(order_id, exec_type, reason) of each execution report."""
    return [(e.order_id, e.exec_type, e.reason) for e in events if isinstance(e, ExecEvent)]


def trades(events: list[EngineEvent]) -> list[tuple[int, int, int, int]]:
    """(price, qty, maker_id, taker_id) of each trade."""
    return [
        (e.price, e.qty, e.maker_order_id, e.taker_order_id)
        for e in events
        if isinstance(e, TradeEvent)
    ]


def book(events: list[EngineEvent]) -> list[tuple[int, int, int]]:
    return [(e.side, e.price, e.size) for e in events if isinstance(e, BookEvent)]


def test_price_time_priority_partial_fill_and_gapless_seq(eng: Any) -> None:
    eng.new_order(1, A, SELL, T.LIMIT, 101, 5)
    eng.new_order(2, A, SELL, T.LIMIT, 100, 3)
    eng.new_order(3, A, SELL, T.LIMIT, 100, 4)
    ev = eng.new_order(10, B, BUY, T.LIMIT, 101, 9)
    assert trades(ev) == [(100, 3, 2, 10), (100, 4, 3, 10), (101, 2, 1, 10)]
    assert reports(ev)[-1] == (10, X.FILL, 0)
    assert book(ev) == [(SELL, 100, 0), (SELL, 101, 3)]
    assert [e.seq for e in ev] == list(range(ev[0].seq, ev[0].seq + len(ev)))


def test_market_order_sweeps_and_cancels_rest(eng: Any) -> None:
    eng.new_order(1, A, SELL, T.LIMIT, 100, 2)
    ev = eng.new_order(2, B, BUY, T.MARKET, 0, 5)
    assert trades(ev) == [(100, 2, 1, 2)]
    assert reports(ev)[-1] == (2, X.CANCELLED, R.IOC_REMAINDER)
    ev = eng.new_order(3, B, BUY, T.MARKET, 0, 5)
    assert reports(ev) == [(3, X.ACCEPTED, 0), (3, X.CANCELLED, R.NO_LIQUIDITY)]


def test_ioc_and_fok(eng: Any) -> None:
    eng.new_order(1, A, SELL, T.LIMIT, 100, 3)
    ev = eng.new_order(2, B, BUY, T.LIMIT, 100, 5, F.FOK)
    assert trades(ev) == [] and reports(ev)[-1] == (2, X.CANCELLED, R.FOK_NOT_FILLABLE)
    ev = eng.new_order(3, B, BUY, T.LIMIT, 100, 5, F.IOC)
    assert trades(ev) == [(100, 3, 1, 3)] and reports(ev)[-1] == (3, X.CANCELLED, R.IOC_REMAINDER)
    eng.new_order(4, A, SELL, T.LIMIT, 100, 3)
    eng.new_order(5, A, SELL, T.LIMIT, 101, 3)
    ev = eng.new_order(6, B, BUY, T.LIMIT, 101, 6, F.FOK)
    assert trades(ev) == [(100, 3, 4, 6), (101, 3, 5, 6)]


def test_post_only_rejected_if_it_would_take(eng: Any) -> None:
    eng.new_order(1, A, SELL, T.LIMIT, 100, 3)
    ev = eng.new_order(2, B, BUY, T.LIMIT, 100, 1, post_only=True)
    assert reports(ev) == [(2, X.REJECTED, R.POST_ONLY_WOULD_TAKE)]
    ev = eng.new_order(3, B, BUY, T.LIMIT, 99, 1, post_only=True)
    assert reports(ev) == [(3, X.ACCEPTED, 0)]
    ev = eng.replace(3, B, 100, 1)
    assert reports(ev) == [(3, X.REJECTED, R.POST_ONLY_WOULD_TAKE)]
    assert eng.order_ids(BUY, 99) == [3]


def test_iceberg_shows_display_and_replenishes_at_back(eng: Any) -> None:
    eng.new_order(1, A, SELL, T.LIMIT, 100, 10, display=3)
    eng.new_order(2, A, SELL, T.LIMIT, 100, 2)
    assert eng.depth(SELL) == [(100, 5, 2)]
    ev = eng.new_order(3, B, BUY, T.LIMIT, 100, 4)
    # 3 from the iceberg's shown slice, which then goes behind order 2; then 1 from order 2.
    assert trades(ev) == [(100, 3, 1, 3), (100, 1, 2, 3)]
    assert eng.order_ids(SELL, 100) == [2, 1]
    assert eng.depth(SELL) == [(100, 4, 2)]  # 1 left of order 2, 3 shown of the iceberg
    assert eng.order(1).leaves == 7  # hidden included


def test_stop_and_stop_limit_trigger_on_trades_in_arrival_order(eng: Any) -> None:
    eng.new_order(1, A, SELL, T.LIMIT, 101, 10)
    eng.new_order(2, B, BUY, T.STOP, 0, 2, stop_price=100)
    eng.new_order(3, B, BUY, T.STOP_LIMIT, 101, 2, stop_price=100)
    assert eng.order(3) is not None and eng.resting(3) is None  # pending, not in the book
    assert eng.resting(1) == (SELL, 101, 10, 1)  # (side, price, shown, arrival)
    eng.new_order(9, A, SELL, T.LIMIT, 100, 1)
    ev = eng.new_order(10, B, BUY, T.LIMIT, 100, 1)  # trade at 100 triggers both stops
    assert [r for r in reports(ev) if r[1] == X.TRIGGERED] == [
        (2, X.TRIGGERED, 0),
        (3, X.TRIGGERED, 0),
    ]
    assert trades(ev) == [(100, 1, 9, 10), (101, 2, 1, 2), (101, 2, 1, 3)]
    ev = eng.new_order(11, B, SELL, T.STOP, 0, 1, stop_price=101)  # already satisfied: now
    assert reports(ev)[:2] == [(11, X.ACCEPTED, 0), (11, X.TRIGGERED, 0)]


def test_replace_priority_rules(eng: Any) -> None:
    for oid in (1, 2, 3):
        eng.new_order(oid, A, BUY, T.LIMIT, 100, 5)
    eng.replace(1, A, 100, 3)  # size down: keeps its place
    assert eng.order_ids(BUY, 100) == [1, 2, 3]
    eng.replace(2, A, 100, 6)  # size up: back of the queue
    assert eng.order_ids(BUY, 100) == [1, 3, 2]
    eng.replace(1, A, 99, 3)  # price change: new level
    assert eng.order_ids(BUY, 100) == [3, 2] and eng.order_ids(BUY, 99) == [1]
    eng.new_order(4, B, SELL, T.LIMIT, 101, 2)
    ev = eng.replace(1, A, 101, 3)  # a replace that crosses trades
    assert trades(ev) == [(101, 2, 4, 1)]


def test_cancel_and_mass_cancel_by_account(eng: Any) -> None:
    eng.new_order(1, A, BUY, T.LIMIT, 99, 5)
    eng.new_order(2, B, BUY, T.LIMIT, 98, 5)
    eng.new_order(3, A, SELL, T.LIMIT, 103, 5)
    eng.new_order(4, A, BUY, T.STOP, 0, 1, stop_price=110)
    assert reports(eng.cancel(1, B)) == [(1, X.REJECTED, R.NOT_OWNER)]
    assert reports(eng.cancel(77, A)) == [(77, X.REJECTED, R.UNKNOWN_ORDER)]
    ev = eng.mass_cancel(A)
    assert reports(ev) == [
        (1, X.CANCELLED, R.MASS_CANCEL),
        (3, X.CANCELLED, R.MASS_CANCEL),
        (4, X.CANCELLED, R.MASS_CANCEL),
    ]
    assert eng.order_count() == 1 and eng.depth(BUY) == [(98, 5, 1)]


@pytest.mark.parametrize(
    ("mode", "expected_reports", "resting"),
    [
        (S.CANCEL_NEWEST, [(2, X.CANCELLED, R.SELF_TRADE)], [(100, 5, 1)]),
        (S.CANCEL_OLDEST, [(1, X.CANCELLED, R.SELF_TRADE)], []),
        (S.CANCEL_BOTH, [(1, X.CANCELLED, R.SELF_TRADE), (2, X.CANCELLED, R.SELF_TRADE)], []),
        (
            S.DECREMENT,
            [(1, X.REPLACED, R.SELF_TRADE), (2, X.CANCELLED, R.SELF_TRADE)],
            [(100, 2, 1)],
        ),
    ],
)
def test_self_trade_prevention(
    eng: Any, mode: int, expected_reports: list[Any], resting: list[Any]
) -> None:
    eng.new_order(1, A, SELL, T.LIMIT, 100, 5)
    ev = eng.new_order(2, A, BUY, T.LIMIT, 100, 3, stp=mode)
    assert trades(ev) == []
    got = [r for r in reports(ev) if r[1] != X.ACCEPTED]
    assert got == expected_reports
    assert eng.depth(SELL) == resting


def test_decrement_shrinks_an_iceberg_maker_and_keeps_trading(eng: Any) -> None:
    eng.new_order(1, A, SELL, T.LIMIT, 100, 3, display=1)
    eng.new_order(2, B, SELL, T.LIMIT, 100, 4)
    ev = eng.new_order(3, A, BUY, T.LIMIT, 100, 5, stp=S.DECREMENT)
    assert reports(ev)[1:3] == [(1, X.CANCELLED, R.SELF_TRADE), (3, X.REPLACED, R.SELF_TRADE)]
    assert trades(ev) == [(100, 2, 2, 3)]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((1, A, 2, T.LIMIT, 100, 1), R.INVALID_SIDE),
        ((-(2**63), A, BUY, T.LIMIT, 100, 1), R.INVALID_ORDER_ID),
        ((1, A, BUY, 9, 100, 1), R.INVALID_TYPE),
        ((1, A, BUY, T.LIMIT, 100, 0), R.INVALID_SIZE),
        ((1, A, BUY, T.LIMIT, 0, 1), R.INVALID_PRICE),
        ((1, A, BUY, T.STOP, 0, 1), R.INVALID_STOP_PRICE),
        ((1, A, BUY, T.LIMIT, 100, 5, F.GTC, False, 6), R.INVALID_DISPLAY),
        ((1, A, BUY, T.LIMIT, 100, 5, F.IOC, True), R.INVALID_TYPE),
    ],
)
def test_bad_orders_get_reject_reports_and_leave_the_book_alone(
    eng: Any, args: Any, reason: int
) -> None:
    eng.new_order(50, B, SELL, T.LIMIT, 105, 1)
    ev = eng.new_order(*args)
    assert reports(ev) == [(args[0], X.REJECTED, reason)]
    assert eng.depth(SELL) == [(105, 1, 1)] and eng.depth(BUY) == []
    assert reports(eng.new_order(50, A, BUY, T.LIMIT, 100, 1)) == [
        (50, X.REJECTED, R.DUPLICATE_ORDER_ID)
    ]


def test_same_commands_same_bytes(eng: Any) -> None:
    cls = type(eng)

    def session(e: Any) -> list[Any]:
        out = []
        for i in range(1, 200):
            side = i % 2
            out += e.new_order(
                i,
                i % 3,
                side,
                T.LIMIT,
                100 + (i * 7) % 5 - 2,
                1 + i % 4,
                display=(i % 5 == 0) * 1,
                stp=i % 5,
            )
            if i % 7 == 0:
                out += e.cancel(i - 3, (i - 3) % 3)
        return out

    assert session(cls()) == session(cls())


BIG = 2**62
MAX = 2**63 - 1


def test_a_level_never_overflows_int64(eng: Any) -> None:
    """Two orders of 2**62 at one price: the second is refused, the level stays exact."""
    assert reports(eng.new_order(1, A, BUY, T.LIMIT, 100, BIG)) == [(1, X.ACCEPTED, R.NONE)]
    before = eng.snapshot_state()
    ev = eng.new_order(2, B, BUY, T.LIMIT, 100, BIG)
    assert reports(ev) == [(2, X.REJECTED, R.SIZE_OVERFLOW)] and book(ev) == []
    assert eng.snapshot_state()["book"] == before["book"]
    assert eng.depth(BUY) == [(100, BIG, 1)]
    # An iceberg showing what still fits rests; its hidden size is not on the level.
    assert reports(eng.new_order(3, B, BUY, T.LIMIT, 100, MAX, display=MAX - BIG)) == [
        (3, X.ACCEPTED, R.NONE)
    ]
    assert eng.depth(BUY) == [(100, MAX, 2)]
    assert reports(eng.new_order(4, B, BUY, T.LIMIT, 100, 1)) == [(4, X.REJECTED, R.SIZE_OVERFLOW)]
    assert eng.depth(BUY) == [(100, MAX, 2)]


def test_a_replace_never_overflows_a_level_or_its_own_total(eng: Any) -> None:
    eng.new_order(1, A, BUY, T.LIMIT, 100, BIG)
    eng.new_order(2, A, BUY, T.LIMIT, 99, BIG)
    ev = eng.replace(2, A, 100, BIG)  # onto the full level
    assert reports(ev) == [(2, X.REJECTED, R.SIZE_OVERFLOW)] and book(ev) == []
    assert reports(eng.replace(1, A, 100, MAX)) == [(1, X.REPLACED, R.NONE)]  # itself leaves
    assert eng.depth(BUY) == [(100, MAX, 1), (99, BIG, 1)]
    eng.new_order(3, B, SELL, T.LIMIT, 100, BIG)  # fills 2**62 of order 1
    assert eng.order(1).cum == BIG
    ev = eng.replace(1, A, 100, MAX)  # cum + open would pass int64
    assert reports(ev) == [(1, X.REJECTED, R.SIZE_OVERFLOW)]
    assert eng.depth(BUY) == [(100, MAX - BIG, 1), (99, BIG, 1)]


def test_a_stop_limit_triggered_onto_a_full_level_is_cancelled(eng: Any) -> None:
    eng.new_order(1, A, BUY, T.LIMIT, 100, MAX)
    eng.new_order(2, B, BUY, T.STOP_LIMIT, 100, 5, stop_price=101)
    eng.new_order(3, A, SELL, T.LIMIT, 101, 1)
    ev = eng.new_order(4, B, BUY, T.LIMIT, 101, 1)  # trades at 101: the stop triggers
    assert (2, X.CANCELLED, R.SIZE_OVERFLOW) in reports(ev)
    assert eng.depth(BUY) == [(100, MAX, 1)]


@pytest.mark.parametrize("where", ["order_id", "account", "price", "size", "display", "stop"])
def test_arguments_past_int64_raise_overflow_error_and_change_nothing(eng: Any, where: str) -> None:
    eng.new_order(1, A, SELL, T.LIMIT, 105, 3)
    before = eng.snapshot_state()
    args: dict[str, Any] = {"order_id": 2, "account": A, "price": 100, "size": 1}
    args |= {"display": 0, "stop": 0, where: 2**63}
    with pytest.raises(OverflowError):
        eng.new_order(
            args["order_id"],
            args["account"],
            BUY,
            T.LIMIT,
            args["price"],
            args["size"],
            display=args["display"],
            stop_price=args["stop"],
        )
    with pytest.raises(OverflowError):
        eng.replace(1, A, 105, 2**63)
    assert eng.snapshot_state() == before


def test_a_state_whose_level_would_overflow_is_refused(eng: Any) -> None:
    from orderbook_core.errors import InvalidSize

    eng.new_order(1, A, BUY, T.LIMIT, 100, BIG)
    state = eng.snapshot_state()
    orders = state["book"][0][2]
    twin = list(orders[0])
    twin[0] = 2
    orders.append(twin)  # a second 2**62 at the same price, as a poisoned checkpoint holds
    with pytest.raises(InvalidSize, match="past int64"):
        type(eng).restore(state)


def test_an_iceberg_shows_at_most_a_thousand_slices(eng: Any) -> None:
    """A display of 1 on 2**62 lots would make one taker meet 2**62 trades (found by the
    differential fuzz: the compiled engine ran out of memory); such an iceberg, or a replace
    that makes one, is refused, and the largest allowed one trades in 1,000 slices."""
    ev = eng.new_order(1, A, BUY, T.LIMIT, 100, BIG, display=1)
    assert reports(ev) == [(1, X.REJECTED, R.INVALID_DISPLAY)]
    assert reports(eng.new_order(2, A, BUY, T.LIMIT, 100, 1000, display=1)) == [
        (2, X.ACCEPTED, R.NONE)
    ]
    assert reports(eng.replace(2, A, 100, 1001)) == [(2, X.REJECTED, R.INVALID_DISPLAY)]
    ev = eng.new_order(3, B, SELL, T.MARKET, 0, BIG)
    assert len(trades(ev)) == 1000 and eng.depth(BUY) == []
