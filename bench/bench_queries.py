"""Analyst query latency on the real local TimescaleDB (services must be up).

    .venv/bin/python -m bench.bench_queries [--trades 10000000] [--days 10] [--runs 30]

Fills a fresh database with ``--trades`` trades for two symbols spread evenly
over ``--days`` days (generated inside PostgreSQL, so the fill is fast), builds
their 1-minute bars the way the recorder defines them (first/last by time and
seq), then times the analyst's question "one day of 1-minute bars for one
symbol" two ways: from the stored ``bars`` (what the recorder maintains) and
computed on the fly from the raw trades with ``time_bucket`` (the baseline,
measured in the same run). Both must return the same rows. Figures are
medians and p99 over ``--runs`` runs of each.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import psycopg

from bench.bench_recorder import drop, fresh_database
from bench.machine import facts

FILL = """
INSERT INTO trades (time, venue, symbol, seq, trade_id, price_ticks, size_lots, side,
                    ts_event, ts_recv)
SELECT t0 + make_interval(secs => (i / 2) * step), 'SIM',
       CASE i %% 2 WHEN 0 THEN 'BTC-USD' ELSE 'ETH-USD' END,
       i / 2 + 1, (i / 2 + 1)::text,
       6500000 + ((i * 7919) %% 20001) - 10000, 1 + (i * 104729) %% 500, i %% 2,
       0, 0
FROM generate_series(0::bigint, %(n)s - 1) AS i,
     LATERAL (SELECT %(t0)s::timestamptz AS t0, %(step)s::float8 AS step) p
"""

BARS = """
INSERT INTO bars (bucket, interval_s, venue, symbol, open, high, low, close, volume,
                  notional, trades)
SELECT time_bucket('1 minute', time), 60, venue, symbol,
       (array_agg(price_ticks ORDER BY time, seq))[1], max(price_ticks), min(price_ticks),
       (array_agg(price_ticks ORDER BY time DESC, seq DESC))[1], sum(size_lots),
       sum(price_ticks::numeric * size_lots), count(*)
FROM trades
GROUP BY 1, venue, symbol
"""

FROM_BARS = """
SELECT bucket, open, high, low, close, volume, trades FROM bars
WHERE venue = 'SIM' AND symbol = 'BTC-USD' AND interval_s = 60
  AND bucket >= %(day)s AND bucket < %(day)s::timestamptz + interval '1 day'
ORDER BY bucket
"""

FROM_TRADES = """
SELECT time_bucket('1 minute', time) AS bucket,
       (array_agg(price_ticks ORDER BY time, seq))[1], max(price_ticks), min(price_ticks),
       (array_agg(price_ticks ORDER BY time DESC, seq DESC))[1], sum(size_lots), count(*)
FROM trades
WHERE venue = 'SIM' AND symbol = 'BTC-USD'
  AND time >= %(day)s AND time < %(day)s::timestamptz + interval '1 day'
GROUP BY 1 ORDER BY 1
"""

T0 = "2026-09-01 00:00:00+00"


def timed(conn: psycopg.Connection[Any], sql: str, runs: int) -> tuple[list[float], list[Any]]:
    times, rows = [], []
    for _ in range(runs):
        started = time.perf_counter()
        rows = conn.execute(sql, {"day": "2026-09-05 00:00:00+00"}).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return times, rows


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trades", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    dsn = fresh_database()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            step = args.days * 86_400 / (args.trades / 2)  # seconds between a symbol's trades
            started = time.perf_counter()
            conn.execute(FILL, {"n": args.trades, "t0": T0, "step": step})
            fill_s = time.perf_counter() - started
            started = time.perf_counter()
            conn.execute(BARS)
            bars_s = time.perf_counter() - started
            conn.execute("ANALYZE trades; ANALYZE bars")
            stored = conn.execute("SELECT count(*) FROM trades").fetchone()
            bars_ms, bar_rows = timed(conn, FROM_BARS, args.runs)
            raw_ms, raw_rows = timed(conn, FROM_TRADES, max(3, args.runs // 5))
        assert [tuple(r) for r in bar_rows] == [tuple(r) for r in raw_rows], "bars differ"
        assert len(bar_rows) == 1440, len(bar_rows)
    finally:
        drop(dsn)
    print(facts())
    print()
    n = stored[0] if stored else 0
    print(
        f"{n:,} trades stored over {args.days} days (fill {fill_s:.0f} s, 1-minute bars "
        f"built in {bars_s:.0f} s); one day = 1440 bars, "
        f"{n // 2 // args.days:,} trades of the symbol"
    )
    print()
    print("| one day of 1-minute bars, one symbol | p50 ms | p99 ms | goal | met |")
    print("|---|---:|---:|---|---|")
    goal = 50.0
    print(
        f"| from the stored bars | {statistics.median(bars_ms):.1f} | {p99(bars_ms):.1f} | "
        f"<= {goal:.0f} ms | {'met' if p99(bars_ms) <= goal else 'NOT met'} |"
    )
    print(
        f"| time_bucket over the raw trades (baseline) | {statistics.median(raw_ms):.1f} | "
        f"{p99(raw_ms):.1f} | | |"
    )


if __name__ == "__main__":
    main()
