"""The simulated exchange is deterministic and its events are sequenced and consistent."""

from __future__ import annotations

from feedhandler.simulator import SimulatedExchange
from hub.events import BookUpdate, Trade
from orderbook_core import L2Book


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
