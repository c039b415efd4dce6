"""Recorder ingest benchmark against the real local TimescaleDB (services must be up).

    .venv/bin/python -m bench.bench_recorder [--trades 200000] [--batch 5000]

Rows: trades/s through the recorder's own write path (binary COPY into a
staging table, INSERT ... ON CONFLICT, bars recomputed, one transaction per
batch), the same COPY path without the bar work, and plain executemany
INSERTs as the baseline, all in fresh databases created by this run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import asyncpg
import psycopg

from bench.machine import facts
from hub.db import migrate
from hub.events import Instrument
from recorder.writer import TRADE_COLUMNS, trade_row, write_batch
from tests.recorder.test_writer import make_trades

ADMIN = "postgresql://postgres@127.0.0.1:35432/postgres"


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


async def run(mode: str, n: int, batch: int) -> float:
    trades = make_trades(3, n)
    dsn = fresh_database()
    try:
        conn = await asyncpg.connect(dsn)
        await write_batch(
            conn,
            [],
            [
                Instrument("SIM", "BTC-USD", "0.01", "0.0001"),
                Instrument("SIM", "ETH-USD", "0.01", "0.0001"),
            ],
        )
        started = time.perf_counter()
        for i in range(0, n, batch):
            chunk = trades[i : i + batch]
            if mode == "recorder":
                await write_batch(conn, chunk, [])
            elif mode == "copy":
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "trades", records=[trade_row(t) for t in chunk], columns=TRADE_COLUMNS
                    )
            else:
                async with conn.transaction():
                    await conn.executemany(
                        f"INSERT INTO trades ({', '.join(TRADE_COLUMNS)}) VALUES "
                        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                        [trade_row(t) for t in chunk],
                    )
        seconds = time.perf_counter() - started
        assert await conn.fetchval("SELECT count(*) FROM trades") == n
        await conn.close()
        return n / seconds
    finally:
        drop(dsn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    rates = {
        m: asyncio.run(run(m, args.trades, args.batch)) for m in ("executemany", "copy", "recorder")
    }
    print(facts())
    print()
    title = f"ingest ({args.trades:,} trades, batches of {args.batch:,})"
    print(f"| {title} | trades/s | vs executemany |")
    print("|---|---:|---:|")
    names = {
        "executemany": "executemany INSERT (baseline)",
        "copy": "binary COPY only",
        "recorder": "recorder write path (COPY + dedupe + 5 bar intervals)",
    }
    for mode, rate in rates.items():
        print(f"| {names[mode]} | {rate:,.0f} | {rate / rates['executemany']:.1f}x |")
    print(
        f"| target: >= 200,000 trades/s with COPY | | "
        f"{'met' if rates['copy'] >= 200_000 else 'NOT met'} |"
    )


if __name__ == "__main__":
    main()
