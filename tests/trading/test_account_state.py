"""What the venue keeps per account beside the books: the idempotency window of client
order ids, the per-side sums of open orders the risk checks read, and the order records
(their fields as a checkpoint keeps them, off the garbage collector's list)."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import orjson

from tests.trading.venues import (
    ALICE,
    BOB,
    SYMBOLS,
    accounts,
    new,
    run,
    state,
    venue,
)
from trading.accounts import AccountState, Exposure, Order
from trading.messages import Sim
from trading.risk import Limits
from trading.simulator import SimulatedExchange
from trading.venue import Command, Original, Reject, TradingVenue


def kept(v: TradingVenue) -> Any:
    """What the idempotency window holds: per account its keys and closed ids, and the orders."""
    by_account = {a: (list(s.orders_by_cl), list(s.closed)) for a, s in v.state.items()}
    return by_account, sorted(v.orders)


def test_the_idempotency_window_keeps_open_orders_and_the_last_closed_ones() -> None:
    window = 20
    v = TradingVenue(
        {s: SimulatedExchange("SIM", s, 3) for s in SYMBOLS}, accounts(), closed_kept=window
    )
    log: list[Command] = []
    for s in SYMBOLS:
        log.append(Sim(s, 300, 1))
        v.apply(log[-1])
    resting = run(v, log, ALICE, new("rest", price="60000.00"))  # far below: stays open
    assert not isinstance(resting, Reject)
    for i in range(3 * window):  # each closes at once: an IOC far from the market
        out = run(v, log, ALICE, new(f"ioc{i}", price="60000.00", tif="ioc"))
        assert out.reports[-1][1]["exec_type"] == "cancelled"
    alice = v.state[ALICE]
    assert len(alice.closed) == window
    assert set(alice.orders_by_cl) == {"rest"} | {f"ioc{i}" for i in range(2 * window, 3 * window)}
    assert len(v.orders) == window + 1  # Alice's: one open, the window's closed ones
    # Inside the window a repeat is the original; the open order is never forgotten.
    last = f"ioc{3 * window - 1}"
    assert isinstance(v.check(ALICE, new(last, price="60000.00", tif="ioc"), 9), Original)
    assert isinstance(v.check(ALICE, new("rest", price="60000.00"), 9), Original)
    assert v.status(ALICE, {"orig_cl_ord_id": "rest"})["open"] is True  # type: ignore[index]
    too_late = v.check(ALICE, {"op": "cancel", "orig_cl_ord_id": last}, 9)
    assert isinstance(too_late, Reject) and too_late.reason == "too_late"
    # Past it: forgotten, and a new order with that key is entered as a new one.
    gone = v.check(ALICE, {"op": "cancel", "orig_cl_ord_id": "ioc0"}, 9)
    assert isinstance(gone, Reject) and gone.reason == "unknown_order"
    again = run(v, log, ALICE, new("ioc0", price="60000.00", tif="ioc"))
    assert not isinstance(again, Reject) and again.reports[0][1]["cl_ord_id"] == "ioc0"
    assert len(alice.closed) == window and len(alice.orders_by_cl) == window + 1
    # A replay forgets exactly the same orders, and so does a restored checkpoint.
    replayed = TradingVenue(
        {s: SimulatedExchange("SIM", s, 3) for s in SYMBOLS}, accounts(), closed_kept=window
    )
    for c in log:
        replayed.apply(c)
    assert kept(replayed) == kept(v) and state(replayed) == state(v)
    copy = TradingVenue(
        {s: SimulatedExchange("SIM", s, 3) for s in SYMBOLS}, accounts(), closed_kept=window
    )
    copy.restore(orjson.loads(orjson.dumps(v.snapshot())))
    assert kept(copy) == kept(v)
    more = new("after", price="60000.00", tif="ioc")
    run(v, [], ALICE, more)
    run(copy, [], ALICE, more)
    assert kept(copy) == kept(v) and "ioc1" not in copy.state[ALICE].orders_by_cl


def test_a_checkpoint_from_before_the_window_is_trimmed_to_it() -> None:
    v, log = venue()
    for i in range(30):
        run(v, log, ALICE, new(f"x{i}", price="60000.00", tif="ioc"))
    saved = orjson.loads(orjson.dumps(v.snapshot()))
    for account in saved["accounts"].values():
        del account["closed"]  # as a checkpoint written before the window was
    copy = TradingVenue(
        {s: SimulatedExchange("SIM", s, 3) for s in SYMBOLS}, accounts(), closed_kept=10
    )
    copy.restore(saved)
    assert list(copy.state[ALICE].orders_by_cl) == [f"x{i}" for i in range(20, 30)]
    assert len(copy.orders) == 10 and state(copy) == state(v)


def test_an_orders_fields_are_its_constructor_arguments() -> None:
    """A checkpoint keeps ``Order.fields()`` and restores ``Order(*fields)``: every field,
    in order, whatever the dataclass grows."""
    order = Order(7, "c1", "BTC-USD", 42, 1, 0, 6_000_000, 5, leaves=3, cum=2, open=False)
    assert order.fields() == dataclasses.astuple(order)
    assert Order(*order.fields()) == order
    assert len(order.fields()) == len(dataclasses.fields(Order))


def recounted(st: AccountState) -> dict[tuple[str, int], Exposure]:
    """An account's open orders summed per (symbol, side) from scratch, order by order."""
    out: dict[tuple[str, int], Exposure] = {}
    for order in st.open_orders.values():
        out.setdefault((order.symbol, order.side), Exposure()).add(order, 1)
    return out


def kept_sums(st: AccountState) -> dict[tuple[str, int], Exposure]:
    return {k: e for k, e in st.exposure.items() if e != Exposure()}


def test_the_open_order_sums_the_checks_read_follow_every_change() -> None:
    """The checks read per-side sums kept as orders change, not a walk of every open
    order (which made each new order cost O(open orders): 0.44 ms at 1,000 resting, 2.2 ms
    at 5,000); after every command of a mixed flow the sums are the open orders', and so
    are a restored checkpoint's."""
    rng = random.Random(12)
    v, log = venue(Limits(buying_power="100000000", max_open_orders=100_000), warm=200)
    placed: dict[int, list[str]] = {ALICE: [], BOB: []}
    most_open = priced_out = 0
    for i in range(1500):
        account = rng.choice((ALICE, BOB))
        symbol = rng.choice(SYMBOLS)
        roll = rng.random()
        if roll < 0.15:
            cmd: Command = Sim(symbol, rng.randrange(1, 6), i)
            v.apply(cmd)
            log.append(cmd)
        elif roll < 0.25 and placed[account]:
            run(v, log, account, {"op": "cancel", "orig_cl_ord_id": rng.choice(placed[account])})
        elif roll < 0.4 and placed[account]:
            change = rng.choice(({"qty": "0.03"}, {"qty": "0.01"}, {"price": None}))
            if "price" in change:
                ref = v.reference_price(symbol)
                change = {"price": v.exchanges[symbol].instrument.tick.to_str(ref - 50)}
            m = {"op": "replace", "orig_cl_ord_id": rng.choice(placed[account]), **change}
            run(v, log, account, m)
        elif roll < 0.41:
            run(v, log, account, {"op": "mass_cancel", "symbol": symbol})
        else:
            ref = v.reference_price(symbol)
            tick = v.exchanges[symbol].instrument.tick
            price = tick.to_str(ref + rng.randrange(-400, 400))
            kind = rng.choice(("limit", "limit", "limit", "market", "ioc", "stop", "stop_limit"))
            side = rng.choice(("buy", "sell"))
            m = new(f"s{i}", side=side, price=None if kind in ("market", "stop") else price)
            m["symbol"] = symbol
            if kind == "ioc":
                m["tif"] = "ioc"
            if kind in ("stop", "stop_limit"):
                away = 300 if side == "buy" else -300
                m |= {"type": kind, "stop_price": tick.to_str(ref + away)}
            if not isinstance(run(v, log, account, m), Reject):
                placed[account].append(f"s{i}")
        for st in v.state.values():
            assert kept_sums(st) == recounted(st)
        most_open = max(most_open, len(v.state[ALICE].open_orders))
        priced_out = max([priced_out] + [e.unpriced for e in v.state[ALICE].exposure.values()])
    assert most_open > 50 and priced_out > 0  # many open orders, stop orders among them
    copy = TradingVenue({s: SimulatedExchange("SIM", s, 3) for s in SYMBOLS}, accounts())
    copy.restore(orjson.loads(orjson.dumps(v.snapshot())))
    for a, st in v.state.items():
        assert kept_sums(copy.state[a]) == kept_sums(st) == recounted(copy.state[a])


def test_a_replaced_order_is_left_out_of_its_own_sides_sums() -> None:
    v, log = venue(Limits(max_open_orders=100_000))
    for cl in ("p1", "p2"):
        assert not isinstance(run(v, log, ALICE, new(cl, price="60000.00", qty="0.02")), Reject)
    stop = new("p3", price=None, qty="0.05", type="stop", stop_price="70000.00")
    assert not isinstance(run(v, log, ALICE, stop), Reject)
    st = v.state[ALICE]
    p1 = v.orders[st.orders_by_cl["p1"][1]]
    lots = 2_000  # 0.02 in lots of 0.00001
    assert st.side_totals("BTC-USD", 0) == (2 * lots + 5_000, 2 * 6_000_000 * lots, 5_000)
    assert st.side_totals("BTC-USD", 0, p1) == (lots + 5_000, 6_000_000 * lots, 5_000)
    assert st.side_totals("BTC-USD", 1, p1) == (0, 0, 0)
    assert st.side_totals("ETH-USD", 0, p1) == (0, 0, 0)


def test_order_records_are_off_the_collectors_list() -> None:
    """The kept orders (open ones and the idempotency window) cost young collections
    nothing: each is untracked when made, which is safe because it can hold no container
    (slots only, no ``__dict__``). The twin leaves them tracked; results are the same."""
    import gc

    import orderbook_core

    v, log = venue()
    assert not isinstance(run(v, log, ALICE, new("u1", price="60000.00")), Reject)
    restored = TradingVenue({s: SimulatedExchange("SIM", s, 3) for s in SYMBOLS}, accounts())
    restored.restore(orjson.loads(orjson.dumps(v.snapshot())))
    for order in (*v.orders.values(), *restored.orders.values()):
        assert gc.is_tracked(order) is (orderbook_core.IMPLEMENTATION == "python")
        assert not hasattr(order, "__dict__")
    assert orderbook_core.untracked(5) == 5  # an object the collector never tracks: as it is
