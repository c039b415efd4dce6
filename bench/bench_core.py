"""Book-core benchmark: the compiled core against its pure-Python twin, same run, same inputs.

    .venv/bin/python -m bench.bench_core [--repeat 7] [--n 200000]

Prints one row per workload: median time of each implementation over the
repeats, operations per second, and the speed-up ratio (python / cython).
The baseline is the pure-Python twin measured in this same run, so noisy
machines still give comparable ratios.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from orderbook_core import _book, _pybook

Impl = Any


def l2_updates(n: int, seed: int = 1) -> list[tuple[int, int, int]]:
    """Venue-like L2 traffic: most updates near the top, a fifth of them deletes."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        side = rng.randrange(2)
        price = 10_000 + (-1 if side == 0 else 1) * (1 + int(rng.expovariate(1 / 20)))
        out.append((side, price, 0 if rng.random() < 0.2 else rng.randrange(1, 1000)))
    return out


def order_flow(n: int, seed: int = 1) -> list[tuple[str, int, int, int, int]]:
    """Limit orders around a mid, some marketable, and cancels of earlier ids."""
    rng = random.Random(seed)
    ops: list[tuple[str, int, int, int, int]] = []
    live: list[int] = []
    for oid in range(1, n + 1):
        r = rng.random()
        if r < 0.3 and live:
            ops.append(("cancel", live.pop(rng.randrange(len(live))), 0, 0, 0))
            continue
        side = rng.randrange(2)
        off = int(rng.expovariate(1 / 8)) - (3 if r > 0.93 else -1)
        price = 10_000 - off if side == 0 else 10_000 + off
        ops.append(("limit", oid, side, price, rng.randrange(1, 100)))
        live.append(oid)
    return ops


def run_l2_apply(impl: Impl, data: list[tuple[int, int, int]]) -> None:
    impl.L2Book().apply(data)


def run_l2_set_and_top(impl: Impl, data: list[tuple[int, int, int]]) -> None:
    book = impl.L2Book()
    for side, price, size in data:
        book.set(side, price, size)
        book.best_bid()
        book.best_ask()


def run_matching(impl: Impl, ops: list[tuple[str, int, int, int, int]]) -> None:
    engine = impl.MatchingEngine()
    for kind, oid, side, price, size in ops:
        if kind == "cancel":
            if engine.order(oid) is not None:
                engine.cancel(oid)
        else:
            engine.submit_limit(oid, side, price, size)


def median_time(fn: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    l2 = l2_updates(args.n)
    flow = order_flow(args.n)
    workloads: list[tuple[str, Callable[[Impl], None]]] = [
        ("L2 batch apply", lambda impl: run_l2_apply(impl, l2)),
        ("L2 set + read top", lambda impl: run_l2_set_and_top(impl, l2)),
        ("matching engine", lambda impl: run_matching(impl, flow)),
    ]
    print(f"book core, {args.n:,} operations per run, median of {args.repeat} runs")
    print("| workload | python (baseline) | cython | cython ops/s | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for name, work in workloads:
        py = median_time(partial(work, _pybook), args.repeat)
        cy = median_time(partial(work, _book), args.repeat)
        print(
            f"| {name} | {py * 1e3:,.1f} ms | {cy * 1e3:,.1f} ms | "
            f"{args.n / cy:,.0f} | {py / cy:.1f}x |"
        )


if __name__ == "__main__":
    main()
