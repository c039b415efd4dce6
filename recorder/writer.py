"""One recorder batch = one database transaction: instruments, dead letters, trades, bars.

Trades go in with binary COPY into a staging table, then ``INSERT ... ON
CONFLICT DO NOTHING`` on the trades' unique key, so a re-delivered batch
changes nothing. In the same transaction every bar the batch touches (each
interval, each bucket that holds one of its trades) is recomputed: 1 s bars
from the stored trades, each longer interval from the next finer bars. That
keeps every bar exactly equal to its trades, late and out-of-order ones
included, at a cost bounded by one bucket's children. Open and close are the
first and last trade by event time in ns (``time`` keeps microseconds) then seq,
the fanout's in-memory candles' rule (tests/recorder/test_bars_agree.py).
Impossible trades and undecodable messages go to ``dead_letters`` with the
reason instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.events import (
    BAR_INTERVALS,
    BUY,
    NO_AGGRESSOR,
    SELL,
    Bar,
    BookSnapshot,
    Instrument,
    TopOfBook,
    Trade,
)

FUTURE_TOLERANCE_NS = 3600 * 10**9
"""A trade stamped more than this ahead of our clock is refused as 'time far in the future'."""

TRADE_COLUMNS = (
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

BAR_PARENTS = tuple(zip(BAR_INTERVALS[1:], BAR_INTERVALS[:-1], strict=True))
"""Each longer interval is rebuilt from the next finer bars (children partition it exactly),
so no batch rescans more than a parent's children: a day bar reads 24 hourly bars."""

# One LATERAL aggregate per affected bucket: each is an index range scan on
# (venue, symbol, time) or the bars key. (A plain join let the planner merge
# on (venue, symbol) and filter the time range afterwards: a cross product.)
UPSERT_BARS = """
ON CONFLICT (venue, symbol, interval_s, bucket) DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume, notional = EXCLUDED.notional, trades = EXCLUDED.trades
"""

AFFECTED = """
WITH affected AS (
    SELECT DISTINCT venue, symbol, time_bucket(make_interval(secs => $1), time) AS bucket
    FROM trades_in
)
INSERT INTO bars (bucket, interval_s, venue, symbol, open, high, low, close, volume,
                  notional, trades)
SELECT a.bucket, $1, a.venue, a.symbol, s.open, s.high, s.low, s.close, s.volume,
       s.notional, s.trades
FROM affected a
CROSS JOIN LATERAL (
"""

RECOMPUTE_BARS_FROM_TRADES = (
    AFFECTED
    + """
    SELECT (array_agg(t.price_ticks ORDER BY t.ts_event, t.seq))[1] AS open,
           max(t.price_ticks) AS high, min(t.price_ticks) AS low,
           (array_agg(t.price_ticks ORDER BY t.ts_event DESC, t.seq DESC))[1] AS close,
           sum(t.size_lots) AS volume, sum(t.price_ticks::numeric * t.size_lots) AS notional,
           count(*) AS trades
    FROM trades t
    WHERE t.venue = a.venue AND t.symbol = a.symbol
      AND t.time >= a.bucket AND t.time < a.bucket + make_interval(secs => $1)
) s
WHERE s.trades > 0
"""
    + UPSERT_BARS
)

RECOMPUTE_BARS_FROM_CHILDREN = (
    AFFECTED
    + """
    SELECT (array_agg(b.open ORDER BY b.bucket))[1] AS open, max(b.high) AS high,
           min(b.low) AS low, (array_agg(b.close ORDER BY b.bucket DESC))[1] AS close,
           sum(b.volume) AS volume, sum(b.notional) AS notional, sum(b.trades) AS trades
    FROM bars b
    WHERE b.venue = a.venue AND b.symbol = a.symbol AND b.interval_s = $2
      AND b.bucket >= a.bucket AND b.bucket < a.bucket + make_interval(secs => $1)
) s
WHERE s.trades > 0
"""
    + UPSERT_BARS
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message kept out of the normal tables, where it came from and why."""

    topic: str
    partition: int
    offset: int
    reason: str
    raw: bytes


def trade_problem(t: Trade, now_ns: int | None = None) -> str | None:
    """Why a trade cannot be stored as a normal trade (None if it can)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    if t.price <= 0:
        return f"non-positive price {t.price}"
    if t.size <= 0:
        return f"non-positive size {t.size}"
    if t.side not in (BUY, SELL, NO_AGGRESSOR):
        return f"unknown aggressor side {t.side}"
    if t.ts_event > now_ns + FUTURE_TOLERANCE_NS:
        return f"event time {t.ts_event} is more than 1 h in the future"
    return None


def _time(ts_ns: int) -> datetime:
    """Event time in ns as a timestamptz (microseconds, as PostgreSQL keeps them)."""
    micros = ts_ns // 1000
    return datetime.fromtimestamp(micros // 1_000_000, tz=UTC).replace(
        microsecond=micros % 1_000_000
    )


def trade_row(t: Trade) -> tuple[Any, ...]:
    return (
        _time(t.ts_event),
        t.venue,
        t.symbol,
        t.seq,
        t.trade_id,
        t.price,
        t.size,
        t.side,
        t.ts_event,
        t.ts_recv,
    )


BOOK_COLUMNS = (
    "time",
    "venue",
    "symbol",
    "seq",
    "bid_ticks",
    "bid_lots",
    "ask_ticks",
    "ask_lots",
)
"""Columns of top_of_book and book_snapshots (scalars in one, arrays best first in the other)."""


def top_row(q: TopOfBook) -> tuple[Any, ...]:
    return (
        _time(q.ts_event),
        q.venue,
        q.symbol,
        q.seq,
        q.bid_price,
        q.bid_size,
        q.ask_price,
        q.ask_size,
    )


def snapshot_row(s: BookSnapshot) -> tuple[Any, ...]:
    return (
        _time(s.ts_event),
        s.venue,
        s.symbol,
        s.seq,
        [p for p, _q in s.bids],
        [q for _p, q in s.bids],
        [p for p, _q in s.asks],
        [q for _p, q in s.asks],
    )


async def insert_once(
    conn: asyncpg.Connection, table: str, rows: list[tuple[Any, ...]], columns: tuple[str, ...]
) -> int:
    """Binary COPY into a staging table, then INSERT ... ON CONFLICT DO NOTHING: re-delivered
    rows change nothing (inside the caller's transaction). Returns the rows that were new."""
    if not rows:
        return 0
    staging = f"{table}_in"
    await conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table} INCLUDING DEFAULTS) "
        "ON COMMIT DELETE ROWS"
    )
    await conn.copy_records_to_table(staging, records=rows, columns=columns)
    status = await conn.execute(
        f"INSERT INTO {table} SELECT * FROM {staging} ON CONFLICT DO NOTHING"
    )
    return int(status.split()[-1])


async def write_batch(
    conn: asyncpg.Connection,
    trades: list[Trade],
    instruments: list[Instrument],
    dead: list[DeadLetter] | None = None,
    tops: list[TopOfBook] | None = None,
    snapshots: list[BookSnapshot] | None = None,
    bars: list[Bar] | None = None,
) -> int:
    """Write one batch in one transaction; return how many trades were new. When ``bars``
    is given, every bar the batch recomputed is appended to it, as stored."""
    async with conn.transaction():
        for inst in instruments:
            await conn.execute(
                "INSERT INTO instruments (venue, symbol, tick_size, lot_size) "
                "VALUES ($1, $2, $3::numeric, $4::numeric) ON CONFLICT (venue, symbol) DO UPDATE "
                "SET tick_size = EXCLUDED.tick_size, lot_size = EXCLUDED.lot_size, "
                "updated_at = now()",
                inst.venue,
                inst.symbol,
                inst.tick_size,
                inst.lot_size,
            )
        if dead:
            await conn.executemany(
                'INSERT INTO dead_letters (topic, partition, "offset", reason, raw) '
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                [(d.topic, d.partition, d.offset, d.reason, d.raw) for d in dead],
            )
        await insert_once(conn, "top_of_book", [top_row(q) for q in tops or []], BOOK_COLUMNS)
        await insert_once(
            conn, "book_snapshots", [snapshot_row(x) for x in snapshots or []], BOOK_COLUMNS
        )
        if not trades:
            return 0
        # The bars below are recomputed for the buckets of what is still in trades_in.
        new = await insert_once(conn, "trades", [trade_row(t) for t in trades], TRADE_COLUMNS)
        if bars is None:
            await conn.execute(RECOMPUTE_BARS_FROM_TRADES, BAR_INTERVALS[0])
            for interval, child in BAR_PARENTS:
                await conn.execute(RECOMPUTE_BARS_FROM_CHILDREN, interval, child)
            return new
        rows = await conn.fetch(RECOMPUTE_BARS_FROM_TRADES + RETURNING_BAR, BAR_INTERVALS[0])
        for interval, child in BAR_PARENTS:
            rows += await conn.fetch(RECOMPUTE_BARS_FROM_CHILDREN + RETURNING_BAR, interval, child)
        bars.extend(bar_from_row(r) for r in rows)
        return new


RETURNING_BAR = """RETURNING venue, symbol, interval_s, bucket, open, high, low, close, volume,
    notional, trades"""


def bar_from_row(r: asyncpg.Record) -> Bar:
    start = r["bucket"]
    start_ns = (int(start.timestamp()) * 1_000_000 + start.microsecond) * 1000
    return Bar(
        r["venue"],
        r["symbol"],
        r["interval_s"],
        start_ns,
        r["open"],
        r["high"],
        r["low"],
        r["close"],
        int(r["volume"]),
        int(r["notional"]),
        r["trades"],
    )
