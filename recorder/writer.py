"""One recorder batch = one database transaction: instruments (with their unit versions),
dead letters, top of book, snapshots, trades, bars.

Rows go in with binary COPY into a staging table (event times as int ns; the
database derives ``time``), then ``INSERT ... ON CONFLICT DO NOTHING`` on each
table's unique key (venue, symbol, time, epoch, seq), so a re-delivered batch
changes nothing. In the same statement the trades that were new, and only
those, are merged into every interval's bars (``MERGE_BARS``): that keeps
every bar exactly equal to its trades, late, out-of-order and re-delivered
ones included, without reading a bucket's stored trades again. Open and close
are the first and last trade by event time in ns (``time`` keeps
microseconds), then epoch, then seq: the fanout's in-memory candles' rule
(tests/recorder/test_bars_agree.py).
Impossible trades and undecodable messages go to ``dead_letters`` with the
reason instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from hub.db import UNIX_EPOCH, bar_from_row
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
from recorder import units
from recorder.units import Announced

FUTURE_TOLERANCE_NS = 3600 * 10**9
"""A trade stamped more than this ahead of our clock is refused as 'time far in the future'."""

STAGED = {
    "trades": (
        "ts",
        "venue",
        "symbol",
        "epoch",
        "seq",
        "trade_id",
        "price_ticks",
        "size_lots",
        "side",
        "ts_event",
        "ts_recv",
    ),
    "top_of_book": (
        "ts",
        "venue",
        "symbol",
        "epoch",
        "seq",
        "bid_ticks",
        "bid_lots",
        "ask_ticks",
        "ask_lots",
    ),
    "book_snapshots": (
        "ts",
        "venue",
        "symbol",
        "epoch",
        "seq",
        "bid_ticks",
        "bid_lots",
        "ask_ticks",
        "ask_lots",
    ),
}
"""What each staging table holds: the row's columns, with the event time as ``ts`` (int
ns) in place of ``time``, which PostgreSQL derives exactly (no Python datetime per row)."""

TIME_FROM_NS = "to_timestamp(s.ts / 1000000000) + (s.ts % 1000000000 / 1000) * interval '1 us'"
"""A timestamptz from ns since the Unix epoch, exact to the microsecond PostgreSQL keeps."""

NEW_TRADES = f"""
new AS (
    INSERT INTO trades (time, venue, symbol, epoch, seq, trade_id, price_ticks, size_lots,
                        side, ts_event, ts_recv)
    SELECT {TIME_FROM_NS}, s.venue, s.symbol, s.epoch, s.seq, s.trade_id, s.price_ticks,
           s.size_lots, s.side, s.ts_event, s.ts_recv
    FROM trades_in s
    ON CONFLICT DO NOTHING
    RETURNING venue, symbol, epoch, seq, price_ticks, size_lots, ts_event
), seconds AS (
    SELECT venue, symbol, ts_event / 1000000000 AS second,
           min(ARRAY[ts_event, epoch, seq, price_ticks]) AS first,
           max(ARRAY[ts_event, epoch, seq, price_ticks]) AS last,
           max(price_ticks) AS high, min(price_ticks) AS low, sum(size_lots) AS volume,
           sum(price_ticks::numeric * size_lots) AS notional, count(*) AS trades
    FROM new
    GROUP BY 1, 2, 3
)"""
"""The staged trades not stored yet, stored, and summed per (venue, symbol, second)."""

INTO_BARS = """
batch AS (
    SELECT to_timestamp(second / i * i) AS bucket, i AS interval_s, venue, symbol,
           min(first) AS first, max(last) AS last, max(high) AS high, min(low) AS low,
           sum(volume) AS volume, sum(notional) AS notional, sum(trades) AS trades
    FROM seconds CROSS JOIN unnest($1::int[]) AS i
    GROUP BY 1, 2, 3, 4
), merged AS (
    INSERT INTO bars AS b (bucket, interval_s, venue, symbol, open, high, low, close, volume,
                           notional, trades, open_key, close_key)
    SELECT bucket, interval_s, venue, symbol, first[4], high, low, last[4], volume, notional,
           trades, first[1:3], last[1:3]
    FROM batch
    ON CONFLICT (venue, symbol, interval_s, bucket) DO UPDATE SET
        open = CASE WHEN EXCLUDED.open_key < b.open_key THEN EXCLUDED.open ELSE b.open END,
        open_key = LEAST(b.open_key, EXCLUDED.open_key),
        close = CASE WHEN EXCLUDED.close_key > b.close_key THEN EXCLUDED.close ELSE b.close END,
        close_key = GREATEST(b.close_key, EXCLUDED.close_key),
        high = GREATEST(b.high, EXCLUDED.high), low = LEAST(b.low, EXCLUDED.low),
        volume = b.volume + EXCLUDED.volume, notional = b.notional + EXCLUDED.notional,
        trades = b.trades + EXCLUDED.trades
    RETURNING venue, symbol, interval_s, bucket, open, high, low, close, volume, notional,
              trades
)"""
"""Merge ``seconds`` (per venue, symbol and second: first and last as [ts_event, epoch, seq,
price], high, low, volume, notional, trades) into every interval's bars."""

MERGE_BARS = f"""
WITH {NEW_TRADES}, {INTO_BARS}
SELECT (SELECT count(*) FROM new) AS new_trades, m.*
FROM (SELECT 1) AS one LEFT JOIN merged m ON true
"""
"""One statement per batch: store the trades not stored yet, and merge exactly those into
every interval's bars: sums and counts add, high/low widen, and open/close move only to a
trade earlier/later by (ts_event, epoch, seq) than the bar's (kept as open_key/close_key).
No bucket is rescanned, so late trades cost what on-time ones do; re-delivered trades are
not new and change nothing."""

MERGE_SECONDS = f"WITH seconds AS (SELECT * FROM seconds_in), {INTO_BARS} SELECT * FROM merged"
"""The fast path's bars: the batch's per-second sums (summed here, ``seconds_row``) merged
as MERGE_BARS merges them."""

SECONDS_COLUMNS = (
    "venue",
    "symbol",
    "second",
    "first",
    "last",
    "high",
    "low",
    "volume",
    "notional",
    "trades",
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


TOUCHED_BARS = """
SELECT b.venue, b.symbol, b.interval_s, b.bucket, b.open, b.high, b.low, b.close, b.volume,
       b.notional, b.trades
FROM (
    SELECT DISTINCT venue, symbol, i AS interval_s,
           to_timestamp(ts_event / 1000000000 / i * i) AS bucket
    FROM trades_in CROSS JOIN unnest($1::int[]) AS i
) t
JOIN bars b USING (venue, symbol, interval_s, bucket)
"""
"""Every bar the staged trades fall in, as stored now: what a batch that held trades stored
before (a re-delivery after a crash between commit and publish) publishes, so the bars it
merged nothing into are published again."""


def trade_row(t: Trade) -> tuple[Any, ...]:
    return (
        t.ts_event,
        t.venue,
        t.symbol,
        t.epoch,
        t.seq,
        t.trade_id,
        t.price,
        t.size,
        t.side,
        t.ts_event,
        t.ts_recv,
    )


def top_row(q: TopOfBook) -> tuple[Any, ...]:
    return (
        q.ts_event,
        q.venue,
        q.symbol,
        q.epoch,
        q.seq,
        q.bid_price,
        q.bid_size,
        q.ask_price,
        q.ask_size,
    )


def snapshot_row(s: BookSnapshot) -> tuple[Any, ...]:
    return (
        s.ts_event,
        s.venue,
        s.symbol,
        s.epoch,
        s.seq,
        [p for p, _q in s.bids],
        [q for _p, q in s.bids],
        [p for p, _q in s.asks],
        [q for _p, q in s.asks],
    )


async def stage(conn: asyncpg.Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Binary COPY of ``rows`` into the table's staging table (``<table>_in``: the table's
    columns, ``time`` as ``ts`` in ns), emptied at commit."""
    staging, columns = f"{table}_in", STAGED[table]
    await conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
        f"SELECT 0::bigint AS ts, {', '.join(columns[1:])} FROM {table} WITH NO DATA"
    )
    await conn.copy_records_to_table(staging, records=rows, columns=columns)


async def insert_once(conn: asyncpg.Connection, table: str, rows: list[tuple[Any, ...]]) -> int:
    """Stage ``rows``, then INSERT ... ON CONFLICT DO NOTHING: re-delivered rows change
    nothing (inside the caller's transaction). Returns the rows that were new."""
    if not rows:
        return 0
    await stage(conn, table, rows)
    columns = ", ".join(c for c in STAGED[table] if c != "ts")
    status = await conn.execute(
        f"INSERT INTO {table} (time, {columns}) SELECT {TIME_FROM_NS}, {columns} "
        f"FROM {table}_in s ON CONFLICT DO NOTHING"
    )
    return int(status.split()[-1])


class StoredSeqs:
    """Per stream (venue, symbol, epoch): the highest trade seq this process stored or saw
    stored. A batch whose every trade is above its stream's mark takes the fast path: binary
    COPY straight into ``trades`` and its bars summed in Python (``seconds_rows``), no staging
    and no ON CONFLICT. The marks only choose the path: the unique key still refuses a
    trade stored by an earlier run or another recorder (a stream unknown here, or a mark
    behind), and then the batch is written the careful way (``MERGE_BARS``) instead."""

    def __init__(self) -> None:
        self.marks: dict[tuple[str, str, int], int] = {}
        self.fast = 0
        self.careful = 0

    def all_new(self, trades: Sequence[Trade]) -> bool:
        marks = self.marks
        for t in trades:
            mark = marks.get((t.venue, t.symbol, t.epoch))
            if mark is None or t.seq <= mark:
                return False
        return True

    def stored(self, trades: Sequence[Trade]) -> None:
        marks = self.marks
        for t in trades:
            key = (t.venue, t.symbol, t.epoch)
            if t.seq > marks.get(key, -1):
                marks[key] = t.seq


def direct_row(t: Trade) -> tuple[Any, ...]:
    """A trades row with its ``time`` (microseconds, truncated as TIME_FROM_NS does)."""
    return (
        UNIX_EPOCH + timedelta(microseconds=t.ts_event // 1000),
        t.venue,
        t.symbol,
        t.epoch,
        t.seq,
        t.trade_id,
        t.price,
        t.size,
        t.side,
        t.ts_event,
        t.ts_recv,
    )


def seconds_rows(trades: Sequence[Trade]) -> list[tuple[Any, ...]]:
    """The trades summed per (venue, symbol, second), as MERGE_BARS's ``seconds``: first and
    last by (ts_event, epoch, seq) with their price, high, low, volume, notional, count."""
    sums: dict[tuple[str, str, int], list[Any]] = {}
    for t in trades:
        key = (t.venue, t.symbol, t.ts_event // 1_000_000_000)
        order = [t.ts_event, t.epoch, t.seq, t.price]
        s = sums.get(key)
        if s is None:
            sums[key] = [order, order, t.price, t.price, t.size, t.price * t.size, 1]
            continue
        if order < s[0]:
            s[0] = order
        if order > s[1]:
            s[1] = order
        if t.price > s[2]:
            s[2] = t.price
        if t.price < s[3]:
            s[3] = t.price
        s[4] += t.size
        s[5] += t.price * t.size
        s[6] += 1
    return [(*key, *s[:5], Decimal(s[5]), s[6]) for key, s in sums.items()]


async def _fast_trades(conn: asyncpg.Connection, trades: Sequence[Trade]) -> list[Any]:
    """COPY the trades into ``trades`` and merge their seconds into the bars (inside a
    savepoint: a trade already stored raises UniqueViolationError and undoes both)."""
    await conn.copy_records_to_table(
        "trades", records=[direct_row(t) for t in trades], columns=("time", *STAGED["trades"][1:])
    )
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS seconds_in (venue text, symbol text, second bigint,"
        " first bigint[], last bigint[], high bigint, low bigint, volume bigint,"
        " notional numeric, trades bigint) ON COMMIT DELETE ROWS"
    )
    await conn.copy_records_to_table(
        "seconds_in", records=seconds_rows(trades), columns=SECONDS_COLUMNS
    )
    return list(await conn.fetch(MERGE_SECONDS, list(BAR_INTERVALS)))


async def write_batch(
    conn: asyncpg.Connection,
    trades: list[Trade],
    instruments: Sequence[Instrument | Announced],
    dead: list[DeadLetter] | None = None,
    tops: list[TopOfBook] | None = None,
    snapshots: list[BookSnapshot] | None = None,
    bars: list[Bar] | None = None,
    seqs: StoredSeqs | None = None,
) -> int:
    """Write one batch in one transaction; return how many trades were new. Instruments
    (each with the time it was published, or now) go first: a unit change applies to the
    batch's rows (recorder/units.py). When ``bars`` is given, every bar the batch changed is
    appended to it, as stored. With ``seqs``, a batch of trades all newer than what it knows
    is stored takes the fast path (StoredSeqs)."""
    async with conn.transaction():
        await units.record(conn, instruments)
        if dead:
            await conn.executemany(
                'INSERT INTO dead_letters (topic, partition, "offset", reason, raw) '
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                [(d.topic, d.partition, d.offset, d.reason, d.raw) for d in dead],
            )
        await insert_once(conn, "top_of_book", [top_row(q) for q in tops or []])
        await insert_once(conn, "book_snapshots", [snapshot_row(x) for x in snapshots or []])
        if not trades:
            return 0
        if seqs is not None and seqs.all_new(trades):
            try:
                async with conn.transaction():  # a savepoint
                    merged = await _fast_trades(conn, trades)
            except asyncpg.UniqueViolationError:
                pass  # stored before (earlier run, other recorder): the careful way
            else:
                seqs.fast += 1
                seqs.stored(trades)
                if bars is not None:
                    bars.extend(bar_from_row(r) for r in merged)
                return len(trades)
        if seqs is not None:
            seqs.careful += 1
            seqs.stored(trades)
        await stage(conn, "trades", [trade_row(t) for t in trades])
        rows = await conn.fetch(MERGE_BARS, list(BAR_INTERVALS))
        new: int = rows[0]["new_trades"]
        if bars is not None:
            if new < len(trades):
                rows = await conn.fetch(TOUCHED_BARS, list(BAR_INTERVALS))
            bars.extend(bar_from_row(r) for r in rows if r["venue"] is not None)
        return new
