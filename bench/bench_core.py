"""Book-core benchmarks: one command, one printed table, baselines measured in the same run.

    .venv/bin/python -m bench.bench_core [--quick]

Rows: L2 updates with the best bid/ask read after every update (against the
PyPI `order-book` C extension and a `sortedcontainers` book), near the top of the
book and across books 10, 1,000 and 100,000 levels deep (bench/l2_depth.py), ITCH bytes to
books, matching-engine throughput and per-order latency (scheduled release,
no coordinated omission), and memory of an L3 book with 1 M resting orders.
Each timed figure is the median of several runs; every contender's final
book is checked against ours, so no row can win by doing less work.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import subprocess
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any

from order_book import OrderBook
from sortedcontainers import SortedDict

from bench.l2_depth import bench_l2_depths
from bench.machine import facts, rss_bytes
from orderbook_core import _book, _engine, _itch, _l3, _pybook, _pyengine, _pyitch
from orderbook_core.engine_types import Event
from testing import itchgen

Row = tuple[str, str, str, str, str]


def median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds / 1e6:.2f} M/s"


# --- L2 -----------------------------------------------------------------------------------


def l2_stream(n: int, seed: int = 1) -> list[tuple[int, int, int]]:
    """Venue-like L2 traffic near the top: a fifth of the updates delete a level."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        side = rng.randrange(2)
        depth = 1 + int(rng.expovariate(1 / 15))
        price = 100_000 - depth if side == 0 else 100_000 + depth
        out.append((side, price, 0 if rng.random() < 0.2 else rng.randrange(1, 10_000)))
    return out


def l2_order_book(data: list[tuple[int, int, int]]) -> tuple[list[Any], list[Any]]:
    ob = OrderBook()
    bids, asks = ob.bids, ob.asks
    for side, price, size in data:
        levels = bids if side == 0 else asks
        if size:
            levels[price] = size
        elif price in levels:
            del levels[price]
        _ = bids.index(0) if len(bids) else None
        _ = asks.index(0) if len(asks) else None
    return ([(p, bids[p]) for p in bids], [(p, asks[p]) for p in asks])


def l2_sorted(data: list[tuple[int, int, int]]) -> tuple[list[Any], list[Any]]:
    bids: SortedDict = SortedDict()
    asks: SortedDict = SortedDict()
    for side, price, size in data:
        levels, key = (bids, -price) if side == 0 else (asks, price)
        if size:
            levels[key] = size
        else:
            levels.pop(key, None)
        _ = bids.peekitem(0) if bids else None
        _ = asks.peekitem(0) if asks else None
    return ([(-k, v) for k, v in bids.items()], list(asks.items()))


def l2_per_call(impl: Any, data: list[tuple[int, int, int]]) -> tuple[list[Any], list[Any]]:
    book = impl.L2Book()
    set_, best_bid, best_ask = book.set, book.best_bid, book.best_ask
    for side, price, size in data:
        set_(side, price, size)
        best_bid()
        best_ask()
    bids, asks = book.snapshot()
    return list(bids), list(asks)


def l2_batch(flat: array[int], tops: array[int]) -> tuple[list[Any], list[Any]]:
    book = _book.L2Book()
    book.apply_batch(flat, tops)
    bids, asks = book.snapshot()
    return list(bids), list(asks)


def bench_l2(n: int, repeat: int) -> list[Row]:
    data = l2_stream(n)
    flat = array("q", [v for u in data for v in u])
    tops = array("q", [0] * (4 * n))
    expected = l2_batch(flat, tops)
    contenders: dict[str, Callable[[], Any]] = {
        "order-book (C ext)": lambda: l2_order_book(data),
        "sortedcontainers": lambda: l2_sorted(data),
        "ours, one call per update": lambda: l2_per_call(_book, data),
        "ours, batch": lambda: l2_batch(flat, tops),
        "ours, Python twin, one call per update": lambda: l2_per_call(_pybook, data),
    }
    seconds = {}
    for name, fn in contenders.items():
        assert fn() == expected, f"{name} ended with a different book"
        seconds[name] = median_seconds(fn, repeat)
    faster_baseline = min(seconds["order-book (C ext)"], seconds["sortedcontainers"])
    rows = []
    for name, s in seconds.items():
        vs_ob = seconds["order-book (C ext)"] / s
        vs_sc = seconds["sortedcontainers"] / s
        rows.append(
            (
                f"L2 update + read best ({n // 1000}k): {name}",
                rate(n, s),
                f"{vs_ob:.1f}x / {vs_sc:.1f}x",
                target_l2(name),
                verdict_l2(name, n / s, s, faster_baseline, seconds),
            )
        )
    return rows


def target_l2(name: str) -> str:
    if name == "ours, batch":
        return ">= 10 M/s and >= 10x both"
    if name == "ours, one call per update":
        return ">= 3x faster baseline"
    return "baseline" if "ours" not in name else "reference"


def verdict_l2(
    name: str, per_second: float, s: float, faster: float, seconds: dict[str, float]
) -> str:
    both = min(seconds["order-book (C ext)"], seconds["sortedcontainers"])
    if name == "ours, batch":
        ok = per_second >= 10e6 and both / s >= 10
    elif name == "ours, one call per update":
        ok = faster / s >= 3
    else:
        return ""
    return "met" if ok else "NOT met"


# --- ITCH ---------------------------------------------------------------------------------


def bench_itch(n: int, repeat: int) -> list[Row]:
    data = itchgen.random_session(7, n, ("AAPL", "MSFT", "TSLA", "NVDA"))

    def compiled() -> Any:
        r = _itch.ItchReplay()
        r.feed(data)
        r.finish()
        return r

    py_data = itchgen.random_session(7, max(1000, n // 10), ("AAPL", "MSFT", "TSLA", "NVDA"))

    def reference() -> Any:
        r = _pyitch.ItchReplay()
        r.feed(py_data)
        return r

    check_c, check_py = _itch.ItchReplay(), _pyitch.ItchReplay()
    check_c.feed(py_data)
    check_py.feed(py_data)
    assert check_c.book("AAPL").snapshot() == check_py.book("AAPL").snapshot()
    msgs = compiled().messages
    s = median_seconds(compiled, repeat)
    s_py = median_seconds(reference, max(1, repeat // 2))
    py_msgs = reference().messages
    return [
        (
            f"ITCH bytes -> books ({msgs // 1000}k msgs): compiled",
            rate(msgs, s),
            f"{(msgs / s) / (py_msgs / s_py):.1f}x Python",
            ">= 5 M msg/s",
            "met" if msgs / s >= 5e6 else "NOT met",
        ),
        (
            f"ITCH bytes -> books ({py_msgs // 1000}k msgs): Python reference",
            rate(py_msgs, s_py),
            "baseline",
            "",
            "",
        ),
    ]


# --- matching -----------------------------------------------------------------------------


def order_stream(n: int, seed: int = 3) -> array[int]:
    """Mixed flow: limits around the mid (some marketable), cancels of live orders, markets."""
    rng = random.Random(seed)
    out = array("q")
    live: list[int] = []
    for oid in range(1, n + 1):
        r = rng.random()
        if r < 0.35 and live:
            victim = live.pop(rng.randrange(len(live)))
            out.extend((2, victim, victim % 100, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            continue
        side = rng.randrange(2)
        if r < 0.40:
            out.extend((1, oid, oid % 100, side, 1, 0, rng.randrange(1, 50), 0, 0, 0, 0, 0))
            continue
        off = int(rng.expovariate(1 / 8)) - (3 if r > 0.95 else -1)
        price = 10_000 - off if side == 0 else 10_000 + off
        out.extend((1, oid, oid % 100, side, 0, price, rng.randrange(1, 100), 0, 0, 0, 0, 0))
        live.append(oid)
    return out


def per_call(impl: Any, cmds: array[int]) -> int:
    """Run a command stream one Python call per command; the events come back as
    engine_types records, which this reads by name (as the venue does)."""
    engine = impl.MatchingEngine()
    new_order, cancel = engine.new_order, engine.cancel
    traded = 0
    for i in range(0, len(cmds), 12):
        c = cmds[i : i + 12]
        events = new_order(*c[1:7]) if c[0] == 1 else cancel(c[1], c[2])
        traded += sum(e.qty for e in events if e.kind == Event.TRADE)
    return traded


def bench_matching(n: int, repeat: int) -> list[Row]:
    cmds = order_stream(n)
    orders = len(cmds) // 12

    def compiled() -> Any:
        return _engine.MatchingEngine().run_batch(cmds)

    small = cmds[: 12 * max(1000, orders // 20)]

    def reference() -> Any:
        return _pyengine.MatchingEngine().run_batch(small)

    assert _engine.MatchingEngine().run_batch(small) == reference()
    assert per_call(_engine, small) == per_call(_pyengine, small)
    s = median_seconds(compiled, repeat)
    s_py = median_seconds(reference, max(1, repeat // 2))
    s_call = median_seconds(lambda: per_call(_engine, cmds), repeat)
    per_second = orders / s
    # Latency: first the service time of each command with the clock reads included, then
    # release commands on a fixed schedule at a quarter of that timed capacity.
    latencies = array("q", [0] * orders)
    _engine.MatchingEngine(orders).run_batch(cmds, latencies, 0)
    service = percentiles(latencies)
    interval = max(1, 4 * int(statistics.fmean(latencies)) + 1)
    collections_before = sum(st["collections"] for st in gc.get_stats())
    _engine.MatchingEngine(orders).run_batch(cmds, latencies, interval)
    gc_runs = sum(st["collections"] for st in gc.get_stats()) - collections_before
    scheduled = percentiles(latencies)
    _engine.MatchingEngine().run_batch(array("q", [0] * len(cmds)), latencies, interval)
    floor = percentiles(latencies)  # no-op commands, same schedule: this machine's jitter
    p50, p99, p9999, _ = scheduled
    lat_ok = p50 <= 0.5 and p99 <= 2 and p9999 <= 20
    rate_text = f"{1e9 / interval / 1e6:.2f} M orders/s"
    return [
        (
            f"matching, mixed flow ({orders // 1000}k orders): compiled",
            rate(orders, s),
            f"{per_second / (len(small) // 12 / s_py):.1f}x Python",
            ">= 2 M orders/s",
            "met" if per_second >= 2e6 else "NOT met",
        ),
        (
            f"matching ({orders // 1000}k orders): compiled, one call per command, named events",
            rate(orders, s_call),
            f"{s / s_call:.2f}x batch",
            "",
            "",
        ),
        (
            f"matching ({len(small) // 12 // 1000}k orders): Python reference",
            rate(len(small) // 12, s_py),
            "baseline",
            "",
            "",
        ),
        (
            f"per-order latency, scheduled release at {rate_text} (us)",
            show(scheduled),
            f"GC runs during run: {gc_runs}",
            "p50 <= 0.5, p99 <= 2, p99.99 <= 20",
            "met" if lat_ok and gc_runs == 0 else "NOT met",
        ),
        ("machine floor: no-op command, same schedule (us)", show(floor), "", "", ""),
        ("per-order service time, back to back (us)", show(service), "", "", ""),
    ]


def percentiles(latencies: array[int]) -> tuple[float, float, float, float]:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return float(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]) / 1000

    return pct(50), pct(99), pct(99.99), float(ordered[-1]) / 1000


def show(p: tuple[float, float, float, float]) -> str:
    return f"p50 {p[0]:.2f} / p99 {p[1]:.2f} / p99.99 {p[2]:.2f} / max {p[3]:.1f}"


# --- memory -------------------------------------------------------------------------------


def memory_used(n: int) -> int:
    """RSS growth from building an L3 book of ``n`` resting orders (run in a fresh process)."""
    gc.collect()
    before = rss_bytes()
    book = _l3.L3Book()
    ops = array("q")
    for oid in range(1, n + 1):
        side = oid & 1
        ops.extend(
            (
                1,
                oid,
                side,
                100_000 - 1 - oid % 5000 if side == 0 else 100_000 + oid % 5000,
                1 + oid % 100,
            )
        )
    book.apply_batch(ops)
    del ops
    gc.collect()
    assert book.order_count() == n
    return rss_bytes() - before


def bench_memory(n: int) -> list[Row]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from bench.bench_core import memory_used; print(memory_used({n}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    used = int(out.stdout)
    return [
        (
            f"L3 book memory, {n // 1000}k resting orders",
            f"{used / 2**20:.0f} MB",
            f"{used / n:.0f} B/order",
            "< 200 MB for 1 M",
            "met" if used < 200 * 2**20 else "NOT met",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    scale, repeat = (10, 3) if args.quick else (1, 5)
    rows: list[Row] = []
    rows += bench_l2(1_000_000 // scale, repeat)
    # --quick: the two shallower books only (loading 100,000 levels a side takes a while)
    depths = (10, 1_000) if args.quick else (10, 1_000, 100_000)
    rows += bench_l2_depths(1_000_000 // scale, max(3, repeat - 2), depths)
    rows += bench_itch(1_000_000 // scale, repeat)
    rows += bench_matching(1_000_000 // scale, repeat)
    rows += bench_memory(1_000_000 // scale)
    print(facts())
    print()
    print("| benchmark | result | vs baseline | target | |")
    print("|---|---:|---:|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
