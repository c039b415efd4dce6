"""Recorder ingest benchmark against the real local TimescaleDB (services must be up).

    .venv/bin/python -m bench.bench_recorder [--trades 200000] [--batch 5000] [--runs 3]

Two flows: trades in time order, and the same with 1 % of them up to 3 h late.
Rows: trades/s through the recorder's whole write path (staging COPY, dedupe,
every bar interval merged, one transaction per batch), against two baselines
measured in the same run on fresh, migrated databases: a plain binary COPY of
the same trades into the same hypertable (no dedupe, no bars: the floor of
what the database takes), and executemany INSERTs. Each cell is the median of
``--runs`` runs. After the recorder's runs the bench checks that every bar
equals its trades (recomputed in SQL from the stored rows).

``--writers 1,2``: the same with the trades split by symbol between that many writers,
each on its own connection and batching its own share, run at once: as several
recorder processes of one consumer group split the partitions (tests/recorder/test_group.py).
One PostgreSQL backend is one core, and one writer keeps its backend busy; COPY is
split the same way for the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import psycopg

from bench.machine import facts
from hub.db import migrate
from hub.events import BAR_INTERVALS, Instrument, Trade
from recorder.writer import StoredSeqs, write_batch

ADMIN = "postgresql://postgres@127.0.0.1:35432/postgres"
T0 = 1_790_000_000 * 10**9
COLUMNS = (
    "time",
    "venue",
    "symbol",
    "seq",
    "trade_id",
    "price_ticks",
    "size_lots",
    "side",
    "ts_event",
    "ts_recv",
)
CHECK_BARS = """
SELECT count(*) FROM bars b
FULL JOIN (
    SELECT venue, symbol, i AS interval_s, time_bucket(make_interval(secs => i), time) AS bucket,
           (array_agg(price_ticks ORDER BY ts_event, epoch, seq))[1] AS open,
           max(price_ticks) AS high, min(price_ticks) AS low,
           (array_agg(price_ticks ORDER BY ts_event DESC, epoch DESC, seq DESC))[1] AS close,
           sum(size_lots) AS volume, sum(price_ticks::numeric * size_lots) AS notional,
           count(*) AS trades
    FROM trades CROSS JOIN unnest($1::int[]) AS i
    GROUP BY 1, 2, 3, 4
) t USING (venue, symbol, interval_s, bucket)
WHERE (b.open, b.high, b.low, b.close, b.volume, b.notional, b.trades)
      IS DISTINCT FROM (t.open, t.high, t.low, t.close, t.volume, t.notional, t.trades)
"""


def flow(n: int, late: float, seed: int = 7) -> list[Trade]:
    """``n`` trades of two symbols, ~1,000 a second in time order; a ``late`` share of them
    stamped up to 3 h earlier than their neighbours (arriving late)."""
    rng = random.Random(seed)
    out = []
    for seq in range(1, n + 1):
        ts = T0 + seq * 1_000_000 + rng.randrange(1_000_000)
        if rng.random() < late:
            ts -= rng.randrange(3 * 3600 * 10**9)
        out.append(
            Trade(
                "SIM",
                ("BTC-USD", "ETH-USD")[seq % 2],
                seq,
                str(seq),
                rng.randrange(99_000, 101_000),
                rng.randrange(1, 500),
                rng.randrange(3),
                ts,
                ts,
            )
        )
    return out


def fresh_database() -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    migrate(dsn)
    return dsn


def drop(dsn: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')


def plain_row(t: Trade) -> tuple[Any, ...]:
    micros = t.ts_event // 1000
    when = datetime.fromtimestamp(micros // 10**6, tz=UTC).replace(microsecond=micros % 10**6)
    return (when, t.venue, t.symbol, t.seq, t.trade_id, t.price, t.size, t.side, t.ts_event, 0)


async def write(conn: asyncpg.Connection, mode: str, trades: list[Trade], batch: int) -> None:
    seqs = StoredSeqs()
    for i in range(0, len(trades), batch):
        chunk = trades[i : i + batch]
        if mode == "recorder":
            await write_batch(conn, chunk, [], seqs=seqs)
        elif mode == "copy":
            async with conn.transaction():
                rows = [plain_row(t) for t in chunk]
                await conn.copy_records_to_table("trades", records=rows, columns=COLUMNS)
        else:
            async with conn.transaction():
                await conn.executemany(
                    f"INSERT INTO trades ({', '.join(COLUMNS)}) VALUES "
                    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                    [plain_row(t) for t in chunk],
                )


async def run(mode: str, trades: list[Trade], batch: int, writers: int = 1) -> float:
    """Trades/s of ``mode`` with ``writers`` connections at once, each writing the trades of
    its own symbols (symbol i to writer i mod ``writers``) in order, in ``batch``es."""
    dsn = fresh_database()
    try:
        conn = await asyncpg.connect(dsn)
        symbols = sorted({t.symbol for t in trades})
        instruments = [Instrument("SIM", s, "0.01", "0.0001") for s in symbols]
        await write_batch(conn, [], instruments)
        owner = {s: i % writers for i, s in enumerate(symbols)}
        shares = [[t for t in trades if owner[t.symbol] == w] for w in range(writers)]
        conns = [conn, *[await asyncpg.connect(dsn) for _ in range(writers - 1)]]
        started = time.perf_counter()
        await asyncio.gather(
            *(write(c, mode, share, batch) for c, share in zip(conns, shares, strict=True))
        )
        seconds = time.perf_counter() - started
        for extra in conns[1:]:
            await extra.close()
        assert await conn.fetchval("SELECT count(*) FROM trades") == len(trades)
        if mode == "recorder":
            wrong = await conn.fetchval(CHECK_BARS, list(BAR_INTERVALS))
            assert wrong == 0, f"{wrong} bars differ from their trades"
        await conn.close()
        return len(trades) / seconds
    finally:
        drop(dsn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--writers", default="1,2", help="writers at once, e.g. 1 or 1,2")
    args = parser.parse_args()
    flows = {"in time order": 0.0, "1 % up to 3 h late": 0.01}
    counts = [int(w) for w in args.writers.split(",")]
    rates: dict[tuple[str, int, str], float] = {}
    for name, late in flows.items():
        trades = flow(args.trades, late)
        for writers in counts:
            # executemany is the slow reference: one writer, one run
            modes = ("executemany", "copy", "recorder") if writers == 1 else ("copy", "recorder")
            for mode in modes:
                n = 1 if mode == "executemany" else args.runs
                rates[name, writers, mode] = statistics.median(
                    asyncio.run(run(mode, trades, args.batch, writers)) for _ in range(n)
                )
    print(facts())
    print()
    print(
        f"| flow ({args.trades:,} trades, batches of {args.batch:,}) | writers | executemany/s "
        "| plain COPY/s | recorder/s | recorder vs COPY | goal | met |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for name in flows:
        for writers in counts:
            copy, rec = rates[name, writers, "copy"], rates[name, writers, "recorder"]
            many = rates.get((name, writers, "executemany"))
            floor = 200_000 if name == "in time order" else 50_000
            goal = f">= {floor // 1000}k/s" + (" and >= 0.8x COPY" if floor == 200_000 else "")
            met = rec >= floor and (floor != 200_000 or rec >= 0.8 * copy)
            print(
                f"| {name} | {writers} | {'' if many is None else f'{many:,.0f}'} | {copy:,.0f} "
                f"| {rec:,.0f} | {rec / copy:.2f}x | {goal} | {'met' if met else 'NOT met'} |"
            )


if __name__ == "__main__":
    main()
