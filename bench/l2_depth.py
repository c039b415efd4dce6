"""The L2 benchmark at three book depths (10, 1,000 and 100,000 levels a side): each book
is loaded first (untimed), then updates spread evenly over its whole depth are applied
with the best bid and ask read after every one, by ours and by the same baselines as
``bench_core``'s near-the-top stream.

Work bound: a contender is timed on the largest prefix of the updates (10k, 40k, ...)
whose run fits ``BUDGET_S``, so a baseline that slows down with depth (``order-book``
re-sorts its keys when the best is read after a change: O(depth) per read) is measured
on fewer updates instead of running for hours; its rate is per update either way, and
its final book is checked against ours after the same prefix.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from array import array
from typing import Any

from order_book import OrderBook
from sortedcontainers import SortedDict

from orderbook_core import _book, _pybook

Update = tuple[int, int, int]
Book = tuple[list[tuple[int, int]], list[tuple[int, int]]]
Row = tuple[str, str, str, str, str]
DEPTHS = (10, 1_000, 100_000)
BUDGET_S = 0.5
MID = 10_000_000


def depth_stream(depth: int, n: int, seed: int = 2) -> tuple[list[Update], list[Update]]:
    """(the book's levels, ``n`` updates): updates over 1.1 x ``depth`` price slots a side,
    a fifth of them deletes, so the book stays about ``depth`` deep."""
    rng = random.Random(seed)
    levels = [(s, MID + (i if s else -i), 100) for i in range(1, depth + 1) for s in (0, 1)]
    slots = depth + depth // 10 + 1
    updates = []
    for _ in range(n):
        side, away = rng.randrange(2), rng.randrange(1, slots + 1)
        price = MID + away if side else MID - away
        updates.append((side, price, 0 if rng.random() < 0.2 else rng.randrange(1, 10_000)))
    return levels, updates


class OrderBookC:
    name = "order-book (C ext)"

    def load(self, levels: list[Update]) -> Any:
        ob = OrderBook()
        for side, price, size in levels:
            (ob.bids if side == 0 else ob.asks)[price] = size
        return ob

    def run(self, ob: Any, updates: list[Update]) -> None:
        bids, asks = ob.bids, ob.asks
        for side, price, size in updates:
            book = bids if side == 0 else asks
            if size:
                book[price] = size
            elif price in book:
                del book[price]
            _ = bids.index(0) if len(bids) else None
            _ = asks.index(0) if len(asks) else None

    def book(self, ob: Any) -> Book:
        return [(p, ob.bids[p]) for p in ob.bids], [(p, ob.asks[p]) for p in ob.asks]


class Sorted:
    name = "sortedcontainers"

    def load(self, levels: list[Update]) -> Any:
        bids: SortedDict = SortedDict()
        asks: SortedDict = SortedDict()
        for side, price, size in levels:
            if side == 0:
                bids[-price] = size
            else:
                asks[price] = size
        return bids, asks

    def run(self, state: Any, updates: list[Update]) -> None:
        bids, asks = state
        for side, price, size in updates:
            levels, key = (bids, -price) if side == 0 else (asks, price)
            if size:
                levels[key] = size
            else:
                levels.pop(key, None)
            _ = bids.peekitem(0) if bids else None
            _ = asks.peekitem(0) if asks else None

    def book(self, state: Any) -> Book:
        bids, asks = state
        return [(-k, v) for k, v in bids.items()], list(asks.items())


class PerCall:
    def __init__(self, impl: Any, name: str) -> None:
        self.impl = impl
        self.name = name

    def load(self, levels: list[Update]) -> Any:
        book = self.impl.L2Book()
        book.apply(levels)
        return book

    def run(self, book: Any, updates: list[Update]) -> None:
        set_, best_bid, best_ask = book.set, book.best_bid, book.best_ask
        for side, price, size in updates:
            set_(side, price, size)
            best_bid()
            best_ask()

    def book(self, book: Any) -> Book:
        bids, asks = book.snapshot()
        return list(bids), list(asks)


class Batch(PerCall):
    """The batch path: the updates as one int64 buffer, best bid and ask of each written
    to another (built once, outside the timing: a feed hands its buffer over as is)."""

    def __init__(self) -> None:
        super().__init__(_book, "ours, batch")
        self.flat: array[int] = array("q")
        self.tops: array[int] = array("q")

    def prepare(self, updates: list[Update]) -> None:
        self.flat = array("q", [v for u in updates for v in u])
        self.tops = array("q", bytes(8 * 4 * len(updates)))

    def run(self, book: Any, updates: list[Update]) -> None:
        n = len(updates)
        book.apply_batch(memoryview(self.flat)[: 3 * n], memoryview(self.tops)[: 4 * n])


def timed(c: Any, levels: list[Update], updates: list[Update], repeat: int) -> tuple[int, float]:
    """(prefix measured, median seconds): the largest prefix whose run fits BUDGET_S."""
    size = min(len(updates), 10_000)
    while True:
        state = c.load(levels)
        gc.collect()
        started = time.perf_counter()
        c.run(state, updates[:size])
        took = time.perf_counter() - started
        if took > BUDGET_S / 4 or size == len(updates):
            break
        size = min(len(updates), size * 4)
    times = [took]
    for _ in range(repeat - 1):
        state = c.load(levels)
        gc.collect()
        started = time.perf_counter()
        c.run(state, updates[:size])
        times.append(time.perf_counter() - started)
    reference = _book.L2Book()
    reference.apply(levels)
    reference.apply(updates[:size])
    bids, asks = reference.snapshot()
    assert c.book(state) == (list(bids), list(asks)), f"{c.name} ended with another book"
    return size, statistics.median(times)


def bench_l2_depths(n: int, repeat: int, depths: tuple[int, ...] = DEPTHS) -> list[Row]:
    rows: list[Row] = []
    for depth in depths:
        levels, updates = depth_stream(depth, n)
        batch = Batch()
        batch.prepare(updates)
        contenders: list[Any] = [
            OrderBookC(),
            Sorted(),
            PerCall(_book, "ours, one call per update"),
            batch,
            PerCall(_pybook, "ours, Python twin, one call per update"),
        ]
        rates: dict[str, float] = {}
        sizes: dict[str, int] = {}
        for c in contenders:
            sizes[c.name], seconds = timed(c, levels, updates, repeat)
            rates[c.name] = sizes[c.name] / seconds
        ob, sc = rates["order-book (C ext)"], rates["sortedcontainers"]
        for name, r in rates.items():
            rows.append(
                (
                    f"L2 update + read best, {depth:,} deep ({sizes[name] // 1000}k): {name}",
                    f"{r / 1e6:.2f} M/s",
                    f"{r / ob:.1f}x / {r / sc:.1f}x",
                    _target(name),
                    _verdict(name, r, ob, sc),
                )
            )
    return rows


def _target(name: str) -> str:
    return {
        "ours, one call per update": ">= 3x faster baseline",
        "ours, batch": ">= 10x both",
    }.get(name, "reference" if "ours" in name else "baseline")


def _verdict(name: str, r: float, ob: float, sc: float) -> str:
    if name == "ours, one call per update":
        return "met" if r >= 3 * max(ob, sc) else "NOT met"
    if name == "ours, batch":
        return "met" if r >= 10 * max(ob, sc) else "NOT met"
    return ""
