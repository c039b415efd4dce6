"""The venue without I/O: risk checks refuse without changing anything, reports and
positions follow the fills, and replaying the logged commands rebuilds everything."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from tests.trading.venues import (
    ALICE,
    BOB,
    OPERATOR,
    SYMBOLS,
    accounts,
    new,
    run,
    state,
    venue,
)
from trading.messages import Replace, Sim
from trading.risk import Limits
from trading.simulator import SimulatedExchange
from trading.venue import Command, Original, Reject, TradingVenue


@pytest.mark.parametrize(
    ("message", "limits", "reason"),
    [
        (new("x", symbol="DOGE-USD"), Limits(), "unknown_symbol"),
        (new("x", price="64900.001"), Limits(), "bad_field"),
        (new("x", qty="0.000001"), Limits(), "bad_field"),
        (new("x", qty="-1"), Limits(), "bad_field"),
        (
            new("x", price=None, qty="0.01") | {"price": 64900.0, "type": "limit"},
            Limits(),
            "bad_field",
        ),
        (new("x", side="up"), Limits(), "bad_field"),
        (new("x", colour="red"), Limits(), "bad_field"),
        (new("x", qty="3"), Limits(max_qty="2"), "max_qty"),
        (new("x", qty="1"), Limits(max_notional="10000"), "max_notional"),
        (new("x", price="80000.00"), Limits(), "price_collar"),
        (new("x", qty="6"), Limits(max_position="5"), "position_limit"),
        (new("x", qty="1", display_qty="2"), Limits(), "bad_field"),
        ({"op": "cancel", "orig_cl_ord_id": "nope"}, Limits(), "unknown_order"),
        ({"op": "dance"}, Limits(), "bad_message"),
        ({"op": "symbol_state", "symbol": "BTC-USD", "state": "halted"}, Limits(), "not_permitted"),
    ],
)
def test_refusals_are_named_and_change_nothing(
    message: dict[str, Any], limits: Limits, reason: str
) -> None:
    v, _log = venue(limits)
    before = state(v)
    answer = v.check(ALICE, message, 5)
    assert isinstance(answer, Reject), answer
    assert answer.reason == reason, answer
    assert answer.text
    assert state(v) == before


def test_open_order_count_kill_switch_and_halt_refuse_new_orders() -> None:
    v, log = venue(Limits(max_open_orders=2))
    for i in range(2):
        assert not isinstance(run(v, log, ALICE, new(f"o{i}", price="64000.00")), Reject)
    assert run(v, log, ALICE, new("o3", price="64000.00")).reason == "max_open_orders"
    run(v, log, ALICE, {"op": "kill_switch", "on": True})
    assert v.state[ALICE].open_orders == {}  # the kill switch cancelled both
    assert run(v, log, ALICE, new("o4", price="64000.00")).reason == "kill_switch"
    run(v, log, ALICE, {"op": "kill_switch", "on": False})
    assert run(v, log, OPERATOR, {"op": "symbol_state", "symbol": "BTC-USD", "state": "halted"})
    assert run(v, log, ALICE, new("o5", price="64000.00")).reason == "symbol_halted"
    run(v, log, OPERATOR, {"op": "symbol_state", "symbol": "BTC-USD", "state": "open"})
    assert not isinstance(run(v, log, ALICE, new("o5", price="64000.00")), Reject)


def test_client_order_id_is_an_idempotency_key() -> None:
    v, log = venue()
    first = run(v, log, ALICE, new("a1"))
    ack = first.reports[0][1]
    again = v.check(ALICE, new("a1"), 9)
    assert again == Original(ack)  # the very same acknowledgement, nothing ran
    other = v.check(ALICE, new("a1", price="64800.00"), 9)
    assert isinstance(other, Reject) and other.reason == "duplicate_cl_ord_id"
    assert not isinstance(run(v, log, BOB, new("a1")), Reject)  # keys are per account
    assert len([o for o in v.orders.values() if o.cl_ord_id == "a1"]) == 2


def test_cancel_of_someone_elses_order_is_refused() -> None:
    v, log = venue()
    run(v, log, ALICE, new("a1", price="64000.00"))
    oid = next(iter(v.orders))
    answer = v.check(BOB, {"op": "cancel", "order_id": str(oid)}, 5)
    assert isinstance(answer, Reject) and answer.reason == "not_owner"
    assert v.orders[oid].open


def test_fills_between_traders_give_reports_and_positions_that_add_up() -> None:
    v, log = venue()
    engine = v.exchanges["BTC-USD"].engine
    for ts in range(10_000):  # the flow until its spread is wider than a tick
        bid, ask = engine.best_bid(), engine.best_ask()
        if bid is not None and ask is not None and ask[0] - bid[0] >= 2:
            break
        log.append(Sim("BTC-USD", 1, ts))
        v.apply(log[-1])
    assert bid is not None and ask is not None and ask[0] - bid[0] >= 2
    price = v.exchanges["BTC-USD"].instrument.tick.to_str(bid[0] + 1)  # inside the spread
    run(v, log, ALICE, new("s1", side="sell", price=price, qty="0.05"))
    out = run(v, log, BOB, new("b1", side="buy", price=price, qty="0.02"))
    kinds = [(a, r["exec_type"]) for a, r in out.reports]
    assert (BOB, "fill") in kinds and (ALICE, "partial_fill") in kinds
    assert v.state[BOB].positions["BTC-USD"] == 2000  # lots of 0.00001
    assert v.state[ALICE].positions["BTC-USD"] == -2000
    trades = [e for e in out.events if type(e).__name__ == "Trade"]
    assert [t.size for t in trades] == [2000] and trades[0].side == 0  # bob bought: aggressor
    for account in (ALICE, BOB):
        seqs = [r["seq"] for r in v.state[account].reports]
        assert seqs == list(range(1, len(seqs) + 1))


def test_replaying_the_log_rebuilds_books_reports_and_positions() -> None:
    rng = random.Random(5)
    v, log = venue(warm=100)
    placed: dict[int, list[str]] = {ALICE: [], BOB: []}
    for i in range(1500):
        account = rng.choice((ALICE, BOB))
        roll = rng.random()
        if roll < 0.3:
            cmd = Sim(rng.choice(SYMBOLS), rng.randrange(1, 5), i)
            v.apply(cmd)
            log.append(cmd)
            continue
        if roll < 0.45 and placed[account]:
            run(v, log, account, {"op": "cancel", "orig_cl_ord_id": rng.choice(placed[account])})
            continue
        if roll < 0.55 and placed[account]:
            m = {"op": "replace", "orig_cl_ord_id": rng.choice(placed[account]), "qty": "0.02"}
            run(v, log, account, m)
            continue
        x = v.exchanges["BTC-USD"]
        ref = v.reference_price("BTC-USD")
        side = rng.choice(("buy", "sell"))
        off = rng.randrange(-300, 300)
        price = x.instrument.tick.to_str(ref + off)
        kind = rng.choice(("limit", "limit", "market", "ioc"))
        m = new(f"c{i}", side=side, price=None if kind == "market" else price, qty="0.01")
        if kind == "ioc":
            m["tif"] = "ioc"
        if not isinstance(run(v, log, account, m), Reject):
            placed[account].append(f"c{i}")
    replayed = TradingVenue({s: SimulatedExchange("SIM", s, 3) for s in SYMBOLS}, accounts())
    events = [e for c in log for e in replayed.apply(c).events]  # the warm-up included
    assert state(replayed) == state(v)
    assert sum(len(s.reports) for s in v.state.values()) > 500
    assert any(r["exec_type"] == "fill" for r in v.state[ALICE].reports)
    assert len(events) > 1000


def test_compiled_and_python_engines_give_the_same_venue() -> None:
    from orderbook_core import _engine, _pyengine

    rng = random.Random(8)
    v, log = venue(warm=200)
    for i in range(800):
        side = rng.choice(("buy", "sell"))
        ref = v.reference_price("BTC-USD")
        price = v.exchanges["BTC-USD"].instrument.tick.to_str(ref + rng.randrange(-200, 200))
        kind = rng.choice(("limit", "market", "stop"))
        m = new(f"d{i}", side=side, price=None if kind != "limit" else price)
        if kind == "stop":
            m |= {"type": "stop", "stop_price": price}
        run(v, log, rng.choice((ALICE, BOB)), m)
        if i % 7 == 0:
            cmd = Sim("BTC-USD", 3, i)
            v.apply(cmd)
            log.append(cmd)
    results = []
    for engine in (_engine.MatchingEngine, _pyengine.MatchingEngine):
        exchanges = {s: SimulatedExchange("SIM", s, 3) for s in SYMBOLS}
        for x in exchanges.values():
            x.engine = engine()  # type: ignore[assignment]  # the twin, duck-typed
        replayed = TradingVenue(exchanges, accounts())
        events = [e for c in log for e in replayed.apply(c).events]
        results.append((state(replayed), events))
    assert results[0] == results[1]
    reports = [r for a in (ALICE, BOB) for r in v.state[a].reports]
    assert {"triggered", "fill", "cancelled"} <= {r["exec_type"] for r in reports}


def test_buying_power_counts_open_buys_and_moves_with_fills() -> None:
    from decimal import Decimal

    v, log = venue(Limits(buying_power="2000"))
    # 0.02 BTC at 64,900 = 1,298 of the 2,000: fits; another 0.02 would need 2,596.
    assert not isinstance(run(v, log, ALICE, new("b1", qty="0.02")), Reject)
    refused = v.check(ALICE, new("b2", qty="0.02"), 5)
    assert isinstance(refused, Reject) and refused.reason == "buying_power"
    assert "2596" in refused.text and "2000" in refused.text
    run(v, log, ALICE, {"op": "cancel", "orig_cl_ord_id": "b1"})
    # A buy that trades spends cash at the fill price; a sell gives it back.
    ask = v.exchanges["BTC-USD"].engine.best_ask()
    assert ask is not None
    price = v.exchanges["BTC-USD"].instrument.tick.to_str(ask[0])
    out = run(v, log, ALICE, new("b3", price=price, qty="0.01", tif="ioc"))
    spent = sum(
        Decimal(r["last_qty"]) * Decimal(r["last_price"])
        for _a, r in out.reports
        if r["last_price"]
    )
    assert spent > 0 and v.buying_power(ALICE) == Decimal("2000") - spent
    assert type(v.state[ALICE].cash) is int  # kept in integer cash units, not Decimal
    assert v.buying_power(BOB) == Decimal("2000")  # each account has its own


def test_a_restored_snapshot_continues_exactly() -> None:
    rng = random.Random(9)

    def traffic(v: TradingVenue, log: list[Command], start: int, n: int) -> None:
        for i in range(start, start + n):
            account = rng.choice((ALICE, BOB))
            if i % 5 == 0:
                cmd = Sim(rng.choice(SYMBOLS), 3, i)
                v.apply(cmd)
                log.append(cmd)
                continue
            ref = v.reference_price("BTC-USD")
            price = v.exchanges["BTC-USD"].instrument.tick.to_str(ref + rng.randrange(-150, 150))
            run(v, log, account, new(f"r{i}", side=rng.choice(("buy", "sell")), price=price))
            if i % 3 == 0:
                run(v, log, account, {"op": "cancel", "orig_cl_ord_id": f"r{i - 2}"})

    v, log = venue(Limits(buying_power="100000"))
    traffic(v, log, 0, 600)
    saved = orjson.loads(orjson.dumps(v.snapshot()))  # through JSON, as on disk
    copy = TradingVenue({s: SimulatedExchange("SIM", s, 3) for s in SYMBOLS}, accounts())
    copy.restore(saved)
    assert state(copy) == state(v)
    rest: list[Command] = []
    traffic(v, rest, 600, 600)
    events = [e for c in rest for e in copy.apply(c).events]
    assert state(copy) == state(v)
    assert {k: s.cash for k, s in copy.state.items()} == {k: s.cash for k, s in v.state.items()}
    assert len(events) > 100
    # the idempotency keys came through too
    first_cl = next(iter(v.state[ALICE].orders_by_cl))
    reused = copy.check(ALICE, new(first_cl, price="1.00"), 1)
    assert isinstance(reused, Reject) and reused.reason == "duplicate_cl_ord_id"


def test_a_replace_must_pass_the_limits_a_new_order_would() -> None:
    v, log = venue(Limits(max_qty="0.05", max_position="0.06", buying_power="3000"))
    run(v, log, ALICE, new("r1", price="64900.00", qty="0.01"))
    cases = [
        ({"qty": "0.5"}, "max_qty"),
        ({"price": "90000.00"}, "price_collar"),
        ({"qty": "0.05", "price": "64000.00"}, "position_limit"),  # with r2 below
    ]
    run(v, log, ALICE, new("r2", price="64000.00", qty="0.02"))
    before = state(v)
    for change, reason in cases:
        answer = v.check(ALICE, {"op": "replace", "orig_cl_ord_id": "r1", **change}, 5)
        assert isinstance(answer, Reject) and answer.reason == reason, (change, answer)
    # Within the limits it goes through, and the order itself is not counted twice.
    ok = v.check(ALICE, {"op": "replace", "orig_cl_ord_id": "r1", "qty": "0.02"}, 5)
    assert isinstance(ok, Replace)  # 1,298 + 1,280 of the 3,000
    poor = v.check(ALICE, {"op": "replace", "orig_cl_ord_id": "r2", "qty": "0.04"}, 5)
    assert isinstance(poor, Reject) and poor.reason == "buying_power"
    assert state(v) == before  # checks change nothing, refused or not
