"""Issue 14: sizes bounded where they enter and order ids taken only by what is journaled.
No order, replace or replayed journal record can make the engine meet a number it cannot
store, whatever the account limits say."""

from __future__ import annotations

import pytest

from tests.trading.venues import (
    ALICE,
    BOB,
    FIRST_ID,
    OFF,
    POISON,
    SYMBOLS,
    accounts,
    new,
    old_new,
    record,
    run,
    sane,
    sizes_in,
    state,
    venue,
)
from trading.messages import Cancel, Sim
from trading.simulator import SimulatedExchange
from trading.venue import Reject, TradingVenue


def test_two_orders_of_two_to_the_62_lots_cannot_overflow_a_level() -> None:
    """Defect 1: with the default limits (demo accounts) both are refused by max_qty; with
    every limit off the notional bound refuses them at the bid, and at one tick (notional
    fits) the second is refused because the level would pass int64. Nothing ever carries a
    negative or overflowed size."""
    from trading.risk import demo_accounts

    demo = TradingVenue({"BTC-USD": SimulatedExchange("SIM", "BTC-USD", 3)}, demo_accounts())
    demo.apply(Sim("BTC-USD", 300, 1))
    bid = demo.exchanges["BTC-USD"].engine.best_bid()
    assert bid is not None
    price = demo.exchanges["BTC-USD"].instrument.tick.to_str(bid[0] * 95 // 100)
    for account, cl in ((1001, "p1"), (1002, "p2")):
        answer = demo.check(account, new(cl, price=price, qty=POISON), 5)
        assert isinstance(answer, Reject) and answer.reason == "max_qty", answer
    v, log = venue(OFF)
    before = state(v)
    for cl in ("p1", "p2"):
        answer = v.check(ALICE, new(cl, price=price, qty=POISON), 5)
        assert isinstance(answer, Reject) and answer.reason == "size_limit", answer
        assert "notional" in answer.text
    assert state(v) == before
    first = run(v, log, ALICE, new("t1", price="0.01", qty=POISON))
    assert not isinstance(first, Reject), first
    assert (1, 2**62, 1) in v.exchanges["BTC-USD"].engine.depth(0)
    second = v.check(BOB, new("t2", price="0.01", qty=POISON), 5)
    assert isinstance(second, Reject) and second.reason == "size_limit", second
    assert "0.01 level would hold more than 92233720368547.75807" in second.text
    assert all(0 <= s < 2**63 for s in sizes_in(first.events))
    sane(v)


def test_a_number_past_int64_is_refused_before_it_takes_an_order_id() -> None:
    """Defect 2: qty or stop price past int64 is a coded refusal, the next order is the
    first id, and a replay of the log gives the same ids, cancellable by the acked id."""
    v, log = venue(OFF)
    hostile = [
        new("h1", qty="99999999999999.99999"),
        new("h2", price=None, type="stop", stop_price="999999999999999999.99"),
        new("h3", type="stop_limit", stop_price="99999999999999999.99"),
        new("h4", qty="1", display_qty="99999999999999.99999"),
        new("h5", qty="1" + "0" * 60),
    ]
    before = state(v)
    for m in hostile:
        answer = v.check(ALICE, m, 5)
        assert isinstance(answer, Reject) and answer.reason == "bad_field", (m, answer)
    assert state(v) == before and v.next_order_id == FIRST_ID
    ack = run(v, log, ALICE, new("ok", price="64000.00"))
    assert ack.reports[0][1]["order_id"] == str(FIRST_ID)
    replayed = TradingVenue({s: SimulatedExchange("SIM", s, 3) for s in SYMBOLS}, accounts(OFF))
    for cmd in log:
        assert replayed.replay(record(cmd))[1] is None
    assert state(replayed) == state(v)
    cancel = replayed.check(ALICE, {"op": "cancel", "order_id": str(FIRST_ID)}, 6)
    assert isinstance(cancel, Cancel), cancel
    out = replayed.apply(cancel)
    assert [r["exec_type"] for _a, r in out.reports] == ["cancelled"]


@pytest.mark.parametrize(
    "change", [{"qty": "0"}, {"price": "0"}, {"qty": "0", "price": "0"}, {"qty": "-0.01"}]
)
def test_replace_to_zero_is_refused_not_a_silent_no_op(change: dict[str, str]) -> None:
    """Defect 9: qty "0" used to read as "unchanged" and be acknowledged as replaced."""
    v, log = venue()
    run(v, log, ALICE, new("z1", price="64000.00"))
    before = state(v)
    answer = v.check(ALICE, {"op": "replace", "orig_cl_ord_id": "z1", **change}, 5)
    assert isinstance(answer, Reject) and answer.reason == "bad_field", answer
    assert state(v) == before


def test_poisoned_journal_commands_are_refused_on_replay_keeping_ids_and_seqs() -> None:
    """The two 2**62 orders an old venue journaled (at one price, 5 % under the bid) are
    refused on replay: the book is what the other commands make, each keeps its order id
    and one report (cancelled, replay_refused), so later ids and seqs are unchanged."""
    v, log = venue()
    bid = v.exchanges["BTC-USD"].engine.best_bid()
    assert bid is not None
    px = bid[0] * 95 // 100
    good = [old_new(ALICE, "a1", px, 1000), old_new(ALICE, "a2", px - 1, 2000)]
    poisoned = [old_new(BOB, "b1", px, 2**62), old_new(BOB, "b2", px, 2**62)]
    journal = [*log, good[0], *poisoned, good[1]]
    clean = TradingVenue({s: SimulatedExchange("SIM", s, 3) for s in SYMBOLS}, accounts())
    for cmd in [*log, *good]:
        clean.apply(cmd)
    fresh = TradingVenue({s: SimulatedExchange("SIM", s, 3) for s in SYMBOLS}, accounts())
    refusals = []
    for cmd in journal:
        outcome, refusal = fresh.replay(record(cmd))
        assert all(0 <= s < 2**63 for s in sizes_in(outcome.events))
        if refusal is not None:
            refusals.append((refusal.reason, refusal.cl_ord_id))
    assert refusals == [("size_limit", "b1"), ("size_limit", "b2")]
    sane(fresh)
    for side in (0, 1):
        assert fresh.exchanges["BTC-USD"].engine.depth(side) == (
            clean.exchanges["BTC-USD"].engine.depth(side)
        )
    ids = {o.cl_ord_id: o.order_id for o in fresh.orders.values()}
    assert ids == {"a1": FIRST_ID, "b1": FIRST_ID + 1, "b2": FIRST_ID + 2, "a2": FIRST_ID + 3}
    bob = list(fresh.state[BOB].reports)
    assert [(r["seq"], r["exec_type"], r["reason"]) for r in bob] == [
        (1, "cancelled", "replay_refused"),
        (2, "cancelled", "replay_refused"),
    ]
    assert not fresh.orders[FIRST_ID + 1].open and fresh.state[BOB].open_orders == {}
    again = fresh.check(BOB, {"op": "new", **{"cl_ord_id": "b1"}}, 9)
    assert isinstance(again, Reject) and again.reason == "duplicate_cl_ord_id"  # key kept


def test_account_totals_are_bounded_even_with_every_limit_off() -> None:
    """Open qty on a side (here a resting limit plus a pending stop, neither on one level)
    and the open orders' notional must fit int64 too."""
    v, log = venue(OFF)
    assert not isinstance(run(v, log, ALICE, new("q1", price="0.01", qty=POISON)), Reject)
    stop = new("q2", price=None, type="stop", stop_price="0.01", qty=POISON)
    answer = v.check(ALICE, stop, 5)
    assert isinstance(answer, Reject) and answer.reason == "size_limit", answer
    assert "open orders on that side" in answer.text
    assert not isinstance(v.check(BOB, stop, 5), Reject)  # another account's totals are its own
    half = new("q3", price=None, type="stop", stop_price="0.02", qty="23058430092136.93952")
    answer = v.check(ALICE, half, 5)  # 2**61 lots at 2 ticks: qty fits, notional does not
    assert isinstance(answer, Reject) and answer.reason == "size_limit", answer
    assert "notional on that side" in answer.text


def test_an_iceberg_may_not_show_less_than_a_thousandth_of_its_size() -> None:
    v, log = venue(OFF)
    tiny = new("i1", price="64000.00", qty="1", display_qty="0.00001")
    answer = v.check(ALICE, tiny, 5)
    assert isinstance(answer, Reject) and answer.reason == "bad_field", answer
    assert "display_qty must be at least qty / 1000" in answer.text
    assert not isinstance(
        run(v, log, ALICE, new("i2", price="64000.00", display_qty="0.00001")), Reject
    )
    grow = v.check(ALICE, {"op": "replace", "orig_cl_ord_id": "i2", "qty": "0.01001"}, 5)
    assert isinstance(grow, Reject) and grow.reason == "bad_field", grow
