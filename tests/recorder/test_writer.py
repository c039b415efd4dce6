"""Recorder batches against the real PostgreSQL + TimescaleDB: trades exactly once, bars
exactly equal to their trades (late and out-of-order ones included), dead letters kept."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from importlib.resources import files
from typing import Any

import asyncpg
import pytest

from hub.db import migrate
from hub.events import BAR_INTERVALS, BookSnapshot, Instrument, TopOfBook, Trade
from recorder.writer import DeadLetter, StoredSeqs, trade_problem, write_batch

pytestmark = pytest.mark.services
T0 = 1_790_000_000 * 10**9  # 2026-09-21, ns


def make_trades(seed: int, n: int) -> list[Trade]:
    rng = random.Random(seed)
    out = []
    for seq in range(1, n + 1):
        ts = T0 + rng.randrange(0, 3 * 3600) * 10**9 + rng.randrange(10**9)
        symbol = rng.choice(["BTC-USD", "ETH-USD"])
        out.append(
            Trade(
                "SIM",
                symbol,
                seq,
                str(seq),
                rng.randrange(99_000, 101_000),
                rng.randrange(1, 500),
                rng.randrange(3),  # buy, sell, no aggressor (a cross)
                ts,
                ts,
            )
        )
    return out


def expected_bars(rows: list[Any], interval: int) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """OHLCV computed in Python from the stored trades (time in µs since the epoch)."""
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for venue, symbol, micros, seq, price, size in rows:
        bucket = micros // (interval * 10**6) * interval
        groups[venue, symbol, bucket].append((micros, seq, price, size))
    out = {}
    for key, trades in groups.items():
        trades.sort()
        prices = [t[2] for t in trades]
        out[key] = (
            prices[0],
            max(prices),
            min(prices),
            prices[-1],
            sum(t[3] for t in trades),
            sum(t[2] * t[3] for t in trades),
            len(trades),
        )
    return out


async def stored_bars(
    conn: asyncpg.Connection, interval: int
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    rows = await conn.fetch(
        "SELECT venue, symbol, extract(epoch FROM bucket)::bigint AS b, open, high, low, close,"
        " volume, notional, trades FROM bars WHERE interval_s = $1",
        interval,
    )
    return {
        (r["venue"], r["symbol"], r["b"]): (
            r["open"],
            r["high"],
            r["low"],
            r["close"],
            int(r["volume"]),
            int(r["notional"]),
            r["trades"],
        )
        for r in rows
    }


async def check_exact(conn: asyncpg.Connection, trades: list[Trade]) -> None:
    """Every trade stored once, and every interval's bars equal to the stored trades."""
    assert await conn.fetchval("SELECT count(*) FROM trades") == len(trades)
    rows = await conn.fetch(
        "SELECT venue, symbol, (extract(epoch FROM time) * 1000000)::bigint, seq,"
        " price_ticks, size_lots FROM trades"
    )
    for interval in BAR_INTERVALS:
        want = expected_bars([tuple(r) for r in rows], interval)
        assert await stored_bars(conn, interval) == want, interval


def test_fast_path_copies_new_trades_and_falls_back_when_they_were_stored(
    database: str,
) -> None:
    """The fast path (StoredSeqs: COPY straight into trades, bars summed in Python) gives
    the bars the careful path gives; a mark behind what is stored (a restart, a second
    recorder) hits the unique key and the batch is written the careful way: nothing
    doubled, nothing lost, bars exact."""
    migrate(database)
    trades = sorted(make_trades(3, 4000), key=lambda t: t.seq)  # seq order, times jumbled
    inst = [Instrument("SIM", s, "0.01", "0.0001") for s in ("BTC-USD", "ETH-USD")]

    async def scenario() -> None:
        conn = await asyncpg.connect(database)
        try:
            await write_batch(conn, [], inst)
            seqs = StoredSeqs()
            new = 0
            for i in range(0, 2000, 250):
                new += await write_batch(conn, trades[i : i + 250], [], seqs=seqs)
            assert new == 2000
            assert (seqs.careful, seqs.fast) == (1, 7)  # the streams' first batch is careful
            await check_exact(conn, trades[:2000])

            # A second recorder that stored 2000-2999 while this one knew only up to 1999:
            other = StoredSeqs()
            other.stored(trades[:2000])
            assert await write_batch(conn, trades[2000:3000], [], seqs=other) == 1000
            # ... and this one, behind, is handed a batch overlapping what the other stored.
            overlap = trades[2500:3500]
            assert seqs.all_new(overlap)  # its marks say new: the unique key says not
            bars: list[Any] = []
            assert await write_batch(conn, overlap, [], bars=bars, seqs=seqs) == 500
            assert seqs.fast == 7 and seqs.careful == 2
            await check_exact(conn, trades[:3500])
            touched = {(b.symbol, b.interval_s, b.start) for b in bars}
            assert len(touched) == len(bars) and bars  # each touched bar once, as stored

            # Restarted recorder (no marks) re-delivered everything, then the rest.
            fresh = StoredSeqs()
            assert await write_batch(conn, trades[:3500], [], seqs=fresh) == 0
            assert await write_batch(conn, trades[3500:], [], seqs=fresh) == 500
            assert fresh.fast == 1
            await check_exact(conn, trades)
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_bars_equal_trades_with_redelivery_and_late_trades(database: str) -> None:
    migrate(database)
    trades = make_trades(1, 3000)

    async def scenario() -> None:
        conn = await asyncpg.connect(database)
        try:
            inst = [
                Instrument("SIM", "BTC-USD", "0.01", "0.0001"),
                Instrument("SIM", "ETH-USD", "0.01", "0.0001"),
            ]
            # Deliver in shuffled batches (out of order), then a late batch, then everything again.
            shuffled = trades[:2500]
            random.Random(2).shuffle(shuffled)
            new = 0
            for i in range(0, len(shuffled), 400):
                new += await write_batch(conn, shuffled[i : i + 400], inst)
            new += await write_batch(conn, trades[2500:], [])
            assert new == 3000
            assert await write_batch(conn, trades, inst) == 0  # re-delivery changes nothing
            assert await conn.fetchval("SELECT count(*) FROM trades") == 3000
            rows = await conn.fetch(
                "SELECT venue, symbol, (extract(epoch FROM time) * 1000000)::bigint, seq,"
                " price_ticks, size_lots FROM trades"
            )
            for interval in BAR_INTERVALS:
                assert await stored_bars(conn, interval) == expected_bars(
                    [tuple(r) for r in rows], interval
                ), interval
            vwap = await conn.fetchval(
                "SELECT vwap FROM bars_decimal WHERE interval_s = 86400 AND symbol = 'BTC-USD'"
            )
            btc = [t for t in trades if t.symbol == "BTC-USD"]
            from decimal import Decimal

            want = Decimal(sum(t.price * t.size for t in btc)) / sum(t.size for t in btc) / 100
            assert abs(vwap - want) < Decimal("1e-12")
            sides = await conn.fetch("SELECT side, count(*) FROM trades_decimal GROUP BY 1")
            assert dict(sides) == {
                name: sum(t.side == n for t in trades)
                for n, name in enumerate(("buy", "sell", "none"))
            }
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_top_of_book_and_snapshot_rows_are_stored_once(database: str) -> None:
    migrate(database)
    tops = [
        TopOfBook("SIM", "BTC-USD", seq, T0 + seq * 1000, T0, 6_500_000 - seq, seq, 6_500_100, 2)
        for seq in range(1, 301)
    ]

    async def scenario() -> None:
        conn = await asyncpg.connect(database)
        try:
            inst = [Instrument("SIM", "BTC-USD", "0.01", "0.0001")]
            await write_batch(conn, [], inst, tops=tops[:200])
            await write_batch(conn, [], [], tops=tops[100:])  # half of it again
            rows = await conn.fetch(
                "SELECT seq, bid_ticks, bid_lots, ask_ticks, ask_lots FROM top_of_book ORDER BY seq"
            )
            assert [tuple(r) for r in rows] == [
                (q.seq, q.bid_price, q.bid_size, q.ask_price, q.ask_size) for q in tops
            ]
            spread = await conn.fetchval(
                "SELECT spread::text FROM top_of_book_decimal WHERE seq = 100"
            )
            assert spread == "2.00"  # (6,500,100 - 6,499,900) ticks of 0.01
            snaps = [
                BookSnapshot("SIM", "BTC-USD", seq, T0 + seq, ((99, seq), (98, 1)), ((101, 2),))
                for seq in (1, 2, 3)
            ]
            await write_batch(conn, [], [], snapshots=snaps[:2])
            await write_batch(conn, [], [], snapshots=snaps)  # sent again with a newer one
            rows = await conn.fetch(
                "SELECT seq, bid_ticks, bid_lots, ask_ticks, ask_lots FROM book_snapshots"
                " ORDER BY seq"
            )
            assert [tuple(r) for r in rows] == [
                (s, [99, 98], [s, 1], [101], [2]) for s in (1, 2, 3)
            ]
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_dead_letters_are_kept_once_with_their_reason(database: str) -> None:
    migrate(database)
    now = T0
    assert trade_problem(Trade("V", "S", 1, "1", 0, 5, 0, now, now), now) == "non-positive price 0"
    assert trade_problem(Trade("V", "S", 1, "1", 5, -1, 0, now, now), now) == "non-positive size -1"
    assert "in the future" in (
        trade_problem(Trade("V", "S", 1, "1", 5, 1, 0, now + 2 * 3600 * 10**9, now), now) or ""
    )
    assert trade_problem(Trade("V", "S", 1, "1", 5, 1, 0, now, now), now) is None
    assert trade_problem(Trade("V", "S", 1, "1", 5, 1, 3, now, now), now) == (
        "unknown aggressor side 3"
    )

    async def scenario() -> None:
        conn = await asyncpg.connect(database)
        try:
            dead = [
                DeadLetter("md.trades", 3, 17, "non-positive price 0", b'{"k":"trade"}'),
                DeadLetter("md.trades", 3, 18, "undecodable: not JSON", b"\xff\x00"),
            ]
            await write_batch(conn, [], [], dead)
            await write_batch(conn, [], [], dead)  # re-delivered: still once
            rows = await conn.fetch('SELECT "offset", reason, raw FROM dead_letters ORDER BY 1')
            assert [(r[0], r[1], bytes(r[2])) for r in rows] == [
                (17, "non-positive price 0", b'{"k":"trade"}'),
                (18, "undecodable: not JSON", b"\xff\x00"),
            ]
            assert await conn.fetchval("SELECT count(*) FROM trades") == 0
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_every_way_a_restarting_database_fails_is_retried() -> None:
    """The recorder's retry loop reads ``retriable`` from the hub's error (hub.db)."""
    from hub.db import postgres_error, postgres_errors
    from hub.errors import ServiceError, ServiceUnavailable

    dsn = "postgresql://u:secret@db:5432/hub"
    for exc in (
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.CannotConnectNowError("starting up"),
        asyncpg.exceptions.ConnectionDoesNotExistError("gone"),
        asyncpg.exceptions.InterfaceError("connection is closed"),
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
    ):
        mapped = postgres_error(exc, dsn)
        assert isinstance(mapped, ServiceUnavailable), type(exc).__name__
        assert mapped.retriable and "secret" not in str(mapped)
        assert str(mapped).startswith("PostgreSQL unreachable at postgresql://u:***@db:5432/hub")
    refused = postgres_error(asyncpg.exceptions.UniqueViolationError("duplicate key"), dsn)
    assert type(refused) is ServiceError and not refused.retriable
    assert str(refused) == "PostgreSQL at postgresql://u:***@db:5432/hub refused: duplicate key"
    cause = ConnectionResetError(104, "reset")
    with pytest.raises(ServiceUnavailable) as caught, postgres_errors(dsn):
        raise cause
    assert caught.value.__cause__ is cause


def test_bars_stored_before_merge_keys_get_them_from_their_trades(database: str) -> None:
    """Migration 009 gives every existing bar the (ts_event, epoch, seq) of its first and
    last trade; later trades then merge into it exactly as into a bar the recorder made."""
    migrate(database)
    trades = make_trades(5, 1200)
    backfill = (files("hub") / "sql" / "009_bar_merge_keys.sql").read_text()

    async def scenario() -> None:
        conn = await asyncpg.connect(database)
        try:
            inst = [Instrument("SIM", s, "0.01", "0.0001") for s in ("BTC-USD", "ETH-USD")]
            await write_batch(conn, trades[:1000], inst)
            made = await conn.fetch("SELECT * FROM bars ORDER BY 1, 2, 3, 4")
            await conn.execute("UPDATE bars SET open_key = NULL, close_key = NULL")
            await conn.execute(backfill)
            assert await conn.fetch("SELECT * FROM bars ORDER BY 1, 2, 3, 4") == made
            await write_batch(conn, trades[1000:], [])  # late and early ones among them
            rows = await conn.fetch(
                "SELECT venue, symbol, (extract(epoch FROM time) * 1000000)::bigint, seq,"
                " price_ticks, size_lots FROM trades"
            )
            for interval in BAR_INTERVALS:
                assert await stored_bars(conn, interval) == expected_bars(
                    [tuple(r) for r in rows], interval
                ), interval
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_a_redelivered_batch_publishes_the_bars_it_falls_in_again(database: str) -> None:
    """A crash between the commit and the bars' publish re-delivers the batch: nothing is new,
    nothing changes, and the same bars are published again (else the candles channel would
    miss them until the bucket's next trade)."""
    migrate(database)
    trades = make_trades(9, 600)

    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        conn = await asyncpg.connect(database)
        try:
            inst = [Instrument("SIM", s, "0.01", "0.0001") for s in ("BTC-USD", "ETH-USD")]
            first: list[Any] = []
            assert await write_batch(conn, trades[:500], inst, bars=first) == 500
            again: list[Any] = []
            assert await write_batch(conn, trades[:500], [], bars=again) == 0
            mixed: list[Any] = []
            assert await write_batch(conn, trades[400:], [], bars=mixed) == 100
            return first, again, mixed
        finally:
            await conn.close()

    first, again, mixed = asyncio.run(scenario())

    def key(b: Any) -> tuple[Any, ...]:
        return (b.venue, b.symbol, b.interval_s, b.start)

    assert sorted(again, key=key) == sorted(first, key=key)
    later = {key(b): b for b in mixed}
    buckets = {
        (t.venue, t.symbol, i, t.ts_event // 10**9 // i * i * 10**9)
        for t in trades[400:]
        for i in BAR_INTERVALS
    }
    assert set(later) == buckets  # every bar the batch's trades fall in, as stored now
    assert sum(b.trades for k, b in later.items() if k[2] == 86400) == 600
