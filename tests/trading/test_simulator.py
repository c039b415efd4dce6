"""The simulated exchange is deterministic and its events are sequenced and consistent."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Callable

import pytest

from hub.events import BookUpdate, Event, Trade
from hub.orders import apply_orders, order_book, resting_orders
from orderbook_core import L2Book, L3Book
from orderbook_core.engine_types import EngineEvent, OrderType
from trading import simulator
from trading.simulator import ACCOUNTS, DEFAULT_SPECS, GENERIC_SPEC, SimulatedExchange


def run(seed: int, n: int) -> tuple[SimulatedExchange, list[object]]:
    x = SimulatedExchange("SIM", "BTC-USD", seed)
    events: list[object] = []
    for i in range(n):
        events.extend(x.step(i))
    return x, events


def test_same_seed_same_events_other_seed_differs() -> None:
    _, ea = run(5, 3000)
    _, eb = run(5, 3000)
    _, ec = run(6, 3000)
    assert ea == eb
    assert ea != ec


def test_updates_rebuild_the_engine_book_and_seqs_are_contiguous() -> None:
    x, events = run(11, 5000)
    book = L2Book()
    updates = [e for e in events if isinstance(e, BookUpdate)]
    trades = [e for e in events if isinstance(e, Trade)]
    assert [u.seq for u in updates] == list(range(1, len(updates) + 1))
    assert [t.seq for t in trades] == list(range(1, len(trades) + 1))
    assert trades, "the flow must trade"
    for u in updates:
        book.apply(u.changes)
        assert not book.is_crossed()
    for side in (0, 1):
        assert book.depth(side) == [(p, s) for p, s, _n in x.engine.depth(side)]
    snap = x.snapshot()
    assert snap.seq == updates[-1].seq
    assert list(snap.bids) == book.depth(0) and list(snap.asks) == book.depth(1)


def shown(x: SimulatedExchange, oid: int) -> int:
    state = x.engine.order(oid)
    assert state is not None, f"order {oid} is queued but unknown"
    return state.visible


def engine_orders(x: SimulatedExchange) -> tuple[tuple[int, int, int, int], ...]:
    """Every resting order as the engine holds it: (side, price, displayed size, id)."""
    return tuple(
        (side, price, shown(x, oid), oid)
        for side in (0, 1)
        for price, _size, _n in x.engine.depth(side)
        for oid in x.engine.order_ids(side, price)
    )


def mirror_updates(x: SimulatedExchange, book: L3Book, events: list[Event]) -> None:
    for e in events:
        if isinstance(e, BookUpdate):
            assert e.orders is not None
            apply_orders(book, e.orders)
            for side in (0, 1):  # the orders sum to the levels at every seq
                assert [lv[:2] for lv in book.depth(side)] == [
                    lv[:2] for lv in x.engine.depth(side)
                ]


def test_order_changes_rebuild_every_queue_of_the_engine() -> None:
    x = SimulatedExchange("SIM", "BTC-USD", 3)
    book = order_book(x.snapshot().orders or ())
    for i in range(6000):
        mirror_updates(x, book, x.step(i))
        if i % 500 == 0:
            assert resting_orders(book) == engine_orders(x) == x.snapshot().orders
    restored = SimulatedExchange("SIM", "BTC-USD", 3)
    restored.restore(x.state())  # a restarted feed publishes on from the same book
    for i in range(2000):
        mirror_updates(restored, book, restored.step(i))
    assert resting_orders(book) == engine_orders(restored) == restored.snapshot().orders


def test_order_changes_of_icebergs_stops_replaces_and_mass_cancels() -> None:
    x = SimulatedExchange("SIM", "X", 1)
    book = order_book()
    e = x.engine
    commands: list[Callable[[], list[EngineEvent]]] = [
        lambda: e.new_order(1, 1, 0, OrderType.LIMIT, 100, 10, display=3),  # iceberg
        lambda: e.new_order(2, 2, 0, OrderType.LIMIT, 100, 5),
        lambda: e.new_order(3, 3, 0, OrderType.LIMIT, 100, 5),
        lambda: e.new_order(4, 4, 1, OrderType.LIMIT, 105, 8),
        lambda: e.new_order(5, 5, 1, OrderType.STOP_LIMIT, 99, 4, stop_price=100),
        lambda: e.new_order(6, 6, 1, OrderType.MARKET, 0, 4),  # refills the iceberg
        lambda: e.replace(3, 3, 100, 2),  # smaller: keeps its place
        lambda: e.replace(3, 3, 100, 9),  # larger: to the back
        lambda: e.replace(4, 4, 104, 8),  # new price
        lambda: e.new_order(7, 7, 1, OrderType.LIMIT, 100, 3),  # trades, triggers the stop
        lambda: e.new_order(8, 1, 0, OrderType.LIMIT, 101, 2),
        lambda: e.mass_cancel(1),
        lambda: e.new_order(9, 9, 0, OrderType.LIMIT, 100, 7),
        lambda: e.cancel(9, 9),
    ]
    seen: list[list[int]] = []
    for ts, command in enumerate(commands):
        events = x.publish(command(), ts)
        mirror_updates(x, book, events)
        assert resting_orders(book) == engine_orders(x), f"after command {ts}"
        seen.append([c[0] for u in events if isinstance(u, BookUpdate) for c in u.orders or ()])
    add, update, delete = 1, 2, 3
    assert seen[5] == [delete, add, delete]  # iceberg slice filled, shown again at the back
    assert seen[6] == [update]
    assert seen[7] == [delete, add]
    assert seen[8] == [delete, add]  # to the new price


def flow_only(x: SimulatedExchange, n: int, check: Callable[[int], None]) -> None:
    """Drive the flow straight into the engine (no publishing, to keep long runs fast)."""
    engine, flow = x.engine, x.flow
    for i in range(n):
        o = flow.next_order(engine)
        account = o.order_id % ACCOUNTS
        if o.kind == "cancel":
            engine.cancel(o.order_id, account)
        else:
            kind = OrderType.MARKET if o.kind == "market" else OrderType.LIMIT
            engine.new_order(o.order_id, account, o.side, kind, o.price, o.size)
        check(i)


def resting_count(x: SimulatedExchange) -> int:
    return sum(n for side in (0, 1) for _p, _s, n in x.engine.depth(side))


def test_long_run_is_bounded_moves_and_never_crosses() -> None:
    x = SimulatedExchange("SIM", "ETH-USD", 7)
    cap = DEFAULT_SPECS["ETH-USD"].max_resting
    counts: list[int] = []
    mids: list[tuple[float, bool]] = []
    crossed = 0

    def check(i: int) -> None:
        nonlocal crossed
        bid, ask = x.engine.best_bid(), x.engine.best_ask()
        if bid is not None and ask is not None:
            crossed += bid[0] >= ask[0]
            if i % 100 == 0:
                mids.append(((bid[0] + ask[0]) / 2, x.flow.fair.volatile))
        if i % 1000 == 0:
            counts.append(resting_count(x))
            assert x.flow.live <= cap

    flow_only(x, 200_000, check)
    assert crossed == 0
    assert max(counts) < cap
    half = len(counts) // 2  # a plateau, not a queue: it shrinks as much as it grows
    assert max(counts[half:]) < 1.5 * max(counts[:half])
    steps = [b - a for a, b in itertools.pairwise(counts)]
    assert -sum(d for d in steps if d < 0) > 0.8 * sum(d for d in steps if d > 0)
    assert max(counts) > 500, "the book should be deep enough to trade against"
    prices = [m for m, _v in mids]
    assert max(prices) - min(prices) > 300  # ticks: $3 on a $3000 start
    calm = [b - a for (a, va), (b, vb) in itertools.pairwise(mids) if not va and not vb]
    wild = [b - a for (a, va), (b, vb) in itertools.pairwise(mids) if va and vb]
    assert len(calm) > 100 and len(wild) > 100, "both regimes must occur in this run"

    def rms(moves: list[float]) -> float:
        mean_square: float = sum(m * m for m in moves) / len(moves)
        return math.sqrt(mean_square)

    assert rms(wild) > 2 * rms(calm)


@pytest.mark.parametrize("symbol", ["BTC-USD", "SOL-USD", "OTHER"])
def test_every_instrument_moves_and_stays_bounded(symbol: str) -> None:
    x = SimulatedExchange("SIM", symbol, 2)
    spec = DEFAULT_SPECS.get(symbol, GENERIC_SPEC)
    mids: list[float] = []
    peak = 0

    def check(i: int) -> None:
        nonlocal peak
        if i % 500 == 0:
            bid, ask = x.engine.best_bid(), x.engine.best_ask()
            assert bid is None or ask is None or bid[0] < ask[0]
            if bid is not None and ask is not None:
                mids.append((bid[0] + ask[0]) / 2)
            peak = max(peak, resting_count(x))

    flow_only(x, 50_000, check)
    assert peak < spec.max_resting
    assert max(mids) - min(mids) > 20 * spec.step_vol  # many ticks, scaled to the instrument


def test_the_hard_cap_holds_without_cancellation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulator, "CANCEL_BASE", 0.0)
    monkeypatch.setattr(simulator, "CANCEL_SLOPE", 0.0)
    spec = dataclasses.replace(DEFAULT_SPECS["ETH-USD"], max_resting=300)
    x = SimulatedExchange("SIM", "ETH-USD", 4, spec)
    counts: list[int] = []

    def check(i: int) -> None:
        assert x.flow.live <= 300
        if i % 50 == 0:
            counts.append(resting_count(x))

    flow_only(x, 10_000, check)
    assert max(counts) == 300  # reached, never passed: at the cap the flow only trades
    assert resting_count(x) <= 300


def test_state_round_trips_through_json_and_continues_identically() -> None:
    a = SimulatedExchange("SIM", "BTC-USD", 9)
    for i in range(15_000):
        a.step(i)
    state = json.loads(json.dumps(a.state()))
    assert state["flow"] == a.flow.state()  # floats of the price model round-trip exactly
    b = SimulatedExchange("SIM", "BTC-USD", 9)
    b.restore(state)
    ea = [e for i in range(15_000, 20_000) for e in a.step(i)]
    eb = [e for i in range(15_000, 20_000) for e in b.step(i)]
    assert ea == eb
    assert a.snapshot() == b.snapshot()
    assert a.flow.state() == b.flow.state()


def test_a_checkpoint_of_the_old_flow_still_restores() -> None:
    x = SimulatedExchange("SIM", "BTC-USD", 1)
    state = x.flow.state()
    old = {"rng": state["rng"], "ref": 6_400_000, "next_id": 5, "live": []}
    x.flow.restore(old)
    assert x.flow.fair.value == 6_400_000 and not x.flow.fair.volatile
    x.step(0)
