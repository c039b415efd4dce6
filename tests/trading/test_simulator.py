"""The simulated exchange is deterministic and its events are sequenced and consistent."""

from __future__ import annotations

from collections.abc import Callable

from hub.events import BookUpdate, Event, Trade
from hub.orders import apply_orders, order_book, resting_orders
from orderbook_core import L2Book, L3Book
from orderbook_core.engine_types import EngineEvent, OrderType
from trading.simulator import SimulatedExchange


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
