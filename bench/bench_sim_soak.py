"""Soak of the simulated exchange: does a long demo stay bounded and keep moving?

    .venv/bin/python -m bench.bench_sim_soak [--minutes 40] [--rate 200] [--seed 1]

Runs the simulator flat out (every order through ``SimulatedExchange.step``, with
its published events, as the feed does) for the orders ``--minutes`` of demo flow at
``--rate`` orders/s per symbol hold, symbols interleaved, and prints per symbol the
resting orders at 4 minutes and at the end, the mid's range, and for the process
its RSS and order rate at the start and the end. Not part of the test suite (the
suite's tests/trading/test_simulator.py asserts the bounds on shorter runs).
"""

from __future__ import annotations

import argparse
import os
import time

from bench.machine import facts
from trading.simulator import SimulatedExchange

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")


def rss_mb() -> float:
    """Resident set size of this process now, in MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def resting(x: SimulatedExchange) -> int:
    return sum(n for side in (0, 1) for _p, _s, n in x.engine.depth(side))


def mid(x: SimulatedExchange) -> float | None:
    bid, ask = x.engine.best_bid(), x.engine.best_ask()
    return None if bid is None or ask is None else (bid[0] + ask[0]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--rate", type=int, default=200, help="orders/s per symbol")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    steps = int(args.minutes * 60 * args.rate)
    early = min(steps, 4 * 60 * args.rate)
    window = min(steps, 20_000)
    xs = [SimulatedExchange("SIM", s, args.seed) for s in SYMBOLS]
    lo = {s: float("inf") for s in SYMBOLS}
    hi = {s: float("-inf") for s in SYMBOLS}
    at_early: dict[str, int] = {}
    peak = {s: 0 for s in SYMBOLS}
    rss_start = rss_mb()
    rate_start = rate_end = 0.0
    started = window_start = time.perf_counter()
    for i in range(1, steps + 1):
        ts = i * 1_000_000_000 // args.rate
        for x in xs:
            x.step(ts)
        if i % 1000 == 0 or i == steps:
            for s, x in zip(SYMBOLS, xs, strict=True):
                m = mid(x)
                if m is not None:
                    lo[s], hi[s] = min(lo[s], m), max(hi[s], m)
                peak[s] = max(peak[s], resting(x))
        if i == window:
            rate_start = window * len(xs) / (time.perf_counter() - window_start)
        if i == steps - window:
            window_start = time.perf_counter()
        if i == early:
            at_early = {s: resting(x) for s, x in zip(SYMBOLS, xs, strict=True)}
    rate_end = window * len(xs) / (time.perf_counter() - window_start)
    elapsed = time.perf_counter() - started
    print(facts())
    print()
    print(
        f"{steps:,} orders per symbol ({args.minutes:g} min at {args.rate}/s), "
        f"run in {elapsed:.0f} s, seed {args.seed}"
    )
    print()
    print(
        f"| symbol | resting at {early / args.rate / 60:g} min | resting at end | peak "
        "| cap | mid min | mid max | trades |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s, x in zip(SYMBOLS, xs, strict=True):
        tick = x.instrument.tick
        print(
            f"| {s} | {at_early[s]:,} | {resting(x):,} | {peak[s]:,} | "
            f"{x.flow._spec.max_resting:,} | {tick.to_str(int(lo[s]))} | "
            f"{tick.to_str(int(hi[s]))} | {x.trade_seq:,} |"
        )
    print()
    print("| process | start | end |")
    print("|---|---:|---:|")
    print(f"| RSS MB | {rss_start:.0f} | {rss_mb():.0f} |")
    label = f"orders/s (all symbols, {window:,}-order window)"
    print(f"| {label} | {rate_start:,.0f} | {rate_end:,.0f} |")


if __name__ == "__main__":
    main()
