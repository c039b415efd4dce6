"""Instrument unit versions against the real PostgreSQL + TimescaleDB: a tick-size change
never rescales stored history, announcements seen again add no version, two venues' names
of one asset meet on its canonical id, and a database from before versions migrates."""

from __future__ import annotations

import asyncio
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hub.db import SQL_DIR, migrate
from hub.events import BookSnapshot, Instrument, TopOfBook, Trade
from hub.symbology import listed, spot
from recorder.service import announced
from recorder.units import Announced
from recorder.writer import write_batch
from tests.recorder.test_writer import T0
from tests.test_analytics_docs import queries

pytestmark = pytest.mark.services
S = 10**9


def trade(venue: str, symbol: str, seq: int, ts: int, price: int, size: int = 3) -> Trade:
    return Trade(venue, symbol, seq, f"{venue}{seq}", price, size, seq % 2, ts, ts)


def run(database: str, scenario: Any) -> Any:
    async def main() -> Any:
        conn = await asyncpg.connect(database)
        try:
            return await scenario(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


async def versions(conn: asyncpg.Connection, venue: str, symbol: str) -> list[tuple[Any, ...]]:
    rows = await conn.fetch(
        "SELECT CASE WHEN valid_from = '-infinity' THEN '-infinity' ELSE"
        " to_char(valid_from AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') END,"
        " tick_size::text, lot_size::text, canonical FROM instrument_versions"
        " WHERE venue = $1 AND symbol = $2 ORDER BY valid_from",
        venue,
        symbol,
    )
    return [tuple(r) for r in rows]


def test_a_tick_size_change_leaves_earlier_rows_as_they_were(database: str) -> None:
    migrate(database)
    old = Instrument("SIM", "BTC-USD", "0.01", "0.001", canonical="BTC-USD", kind="spot")
    new = Instrument("SIM", "BTC-USD", "0.1", "0.01", canonical="BTC-USD", kind="spot")
    before = [trade("SIM", "BTC-USD", n, T0 + n * S, 10_000 + n) for n in range(1, 11)]
    after = [trade("SIM", "BTC-USD", n, T0 + n * S, 1_000 + n) for n in range(11, 21)]

    def top(seq: int, ts: int, bid: int) -> TopOfBook:
        return TopOfBook("SIM", "BTC-USD", seq, ts, ts, bid, 40, bid + 2, 50)

    def snap(seq: int, ts: int, bid: int) -> BookSnapshot:
        return BookSnapshot("SIM", "BTC-USD", seq, ts, ((bid, 40), (bid - 1, 7)), ((bid + 2, 5),))

    async def scenario(conn: asyncpg.Connection) -> None:
        await write_batch(
            conn, before, [old], tops=[top(1, T0 + S, 10_000)], snapshots=[snap(1, T0 + S, 10_000)]
        )
        await write_batch(
            conn,
            after,
            [new],
            tops=[top(2, T0 + 15 * S, 1_000)],
            snapshots=[snap(2, T0 + 15 * S, 1_000)],
        )
        rows = await conn.fetch(
            "SELECT seq, price, size, canonical FROM trades_decimal ORDER BY seq"
        )
        assert [(r["seq"], r["price"], r["size"], r["canonical"]) for r in rows] == [
            (t.seq, t.price * Decimal("0.01"), 3 * Decimal("0.001"), "BTC-USD") for t in before
        ] + [(t.seq, t.price * Decimal("0.1"), 3 * Decimal("0.01"), "BTC-USD") for t in after]
        assert await versions(conn, "SIM", "BTC-USD") == [
            ("-infinity", "0.01", "0.001", "BTC-USD"),
            # just after the last row stored under the old units (trade 10, at T0 + 10 s)
            ("2026-09-21 14:13:30.000001", "0.1", "0.01", "BTC-USD"),
        ]
        quotes = await conn.fetch(
            "SELECT seq, bid::text, ask_size::text, spread::text, mid, canonical"
            " FROM top_of_book_decimal ORDER BY seq"
        )
        assert [tuple(q) for q in quotes] == [
            (1, "100.00", "0.050", "0.02", Decimal("100.01"), "BTC-USD"),
            (2, "100.0", "0.50", "0.2", Decimal("100.1"), "BTC-USD"),
        ]
        books = await conn.fetch(
            "SELECT seq, bid_prices::text, bid_sizes::text, ask_prices::text, canonical"
            " FROM book_snapshots_decimal ORDER BY seq"
        )
        assert [tuple(b) for b in books] == [
            (1, "{100.00,99.99}", "{0.040,0.007}", "{100.02}", "BTC-USD"),
            (2, "{100.0,99.9}", "{0.40,0.07}", "{100.2}", "BTC-USD"),
        ]
        bars = await conn.fetch(
            "SELECT interval_s, extract(epoch FROM bucket)::bigint - $1 AS at, open::text,"
            " mixed_units FROM bars_decimal WHERE interval_s IN (1, 60) ORDER BY 1, 2",
            T0 // S,
        )
        got = [tuple(b) for b in bars]
        assert got[:2] == [(1, 1, "100.01", False), (1, 2, "100.02", False)]
        assert (1, 11, "101.1", False) in got  # after the change: the new tick
        assert (1, 10, "100.10", True) in got  # the second the change came in
        assert got[-1] == (60, -20, "100.01", True)  # T0 is 14:13:20: one minute holds both


def test_announcements_seen_again_add_no_version(database: str) -> None:
    """A re-delivered batch, a topic read again from the start after a restart, a feed
    restart and a replay re-announce instruments: none of them adds a version."""
    migrate(database)
    v1 = Instrument("K", "XBT/USD", "0.1", "0.00000001")
    v2 = Instrument("K", "XBT/USD", "0.01", "0.00000001")
    first = [trade("K", "XBT/USD", n, T0 + n * S, 600_000 + n) for n in range(1, 6)]
    second = [trade("K", "XBT/USD", n, T0 + n * S, 6_000_000 + n) for n in range(6, 11)]

    async def scenario(conn: asyncpg.Connection) -> None:
        await write_batch(conn, first, [Announced(v1, 1000)])
        await write_batch(conn, second, [Announced(v2, 2000)])
        want = await versions(conn, "K", "XBT/USD")
        assert [v[1] for v in want] == ["0.1", "0.01"]
        await write_batch(conn, second, [Announced(v2, 2000)])  # the batch re-delivered
        await write_batch(conn, first, [Announced(v1, 1000)])  # the topic read again
        await write_batch(conn, second, [Announced(v2, 2000)])
        await write_batch(conn, [], [Announced(v2, 9000)])  # the feed restarted
        await write_batch(conn, [], [Announced(v1, 1000), Announced(v2, 2000)])  # one batch
        assert await versions(conn, "K", "XBT/USD") == want
        # The listing learned later names the same asset for all of history.
        kraken = listed(v2, spot("K", "XBT/USD", "XBT", "USD"))
        await write_batch(conn, [], [Announced(kraken, 9500)])
        assert await versions(conn, "K", "XBT/USD") == [(*v[:3], "BTC-USD") for v in want]
        assert await conn.fetchval("SELECT canonical FROM instruments") == "BTC-USD"
        assert await conn.fetchval(
            "SELECT count(*) FROM trades_decimal WHERE canonical = 'BTC-USD'"
        ) == len(first) + len(second)

    run(database, scenario)


def test_a_version_no_row_used_is_replaced_not_kept(database: str) -> None:
    migrate(database)
    a = Instrument("V", "S", "0.5", "1")
    b = Instrument("V", "S", "0.25", "1")
    c = Instrument("V", "S", "0.125", "1")

    async def scenario(conn: asyncpg.Connection) -> None:
        await write_batch(conn, [], [Announced(a, 1)])
        await write_batch(conn, [], [Announced(b, 2)])  # no row stored yet: b from the start
        assert [v[:2] for v in await versions(conn, "V", "S")] == [("-infinity", "0.25")]
        await write_batch(conn, [trade("V", "S", 1, T0, 8)], [])
        await write_batch(conn, [], [Announced(c, 3)])
        await write_batch(conn, [], [Announced(a, 4)])  # back before any row used c
        assert [v[1] for v in await versions(conn, "V", "S")] == ["0.25", "0.5"]
        prices = await conn.fetch("SELECT price::text FROM trades_decimal")
        assert [p[0] for p in prices] == ["2.00"]

    run(database, scenario)


def test_the_documented_comparison_finds_both_venues_names_of_one_asset(database: str) -> None:
    """Kraken's XBT/USD and Coinbase's BTC-USD are one canonical BTC-USD."""
    migrate(database)
    kraken = listed(
        Instrument("KRAKEN", "XBT/USD", "0.1", "0.00000001"),
        spot("KRAKEN", "XBT/USD", "XBT", "USD"),
    )
    coinbase = listed(
        Instrument("COINBASE", "BTC-USD", "0.01", "0.00000001"),
        spot("COINBASE", "BTC-USD", "BTC", "USD"),
    )
    ts = T0 + 600 * S  # 14:23:20: all in one hour
    k = [trade("KRAKEN", "XBT/USD", n, ts + n, 650_000 + n * 10, 10**8) for n in (1, 2)]
    c = [trade("COINBASE", "BTC-USD", n, ts + n, 6_500_300, 10**8) for n in (1, 2, 3)]

    async def scenario(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
        await write_batch(conn, k + c, [kraken, coinbase])
        return [tuple(r) for r in await conn.fetch(queries()["venue_comparison"])]

    rows = run(database, scenario)
    assert [r[1:] for r in rows] == [
        ("COINBASE", "BTC-USD", Decimal("65003.00"), Decimal(3), 3),
        ("KRAKEN", "XBT/USD", Decimal("65001.5"), Decimal(2), 2),
    ]


def test_a_database_from_before_versions_migrates_with_its_data(
    database: str, tmp_path: Path
) -> None:
    """Migrations 001..009 with stored rows, then 010: every decimal is what it was, each
    instrument has its one version from -infinity, and the recorder carries on."""
    for path in sorted(SQL_DIR.glob("*.sql")):
        if int(path.name[:3]) <= 9:
            shutil.copy(path, tmp_path / path.name)
    assert len(migrate(database, tmp_path)) == 9

    async def fill(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO instruments (venue, symbol, tick_size, lot_size) VALUES"
            " ('SIM', 'BTC-USD', 0.01, 0.0001), ('SIM', 'ETH-USD', 0.05, 0.001)"
        )
        await conn.execute(
            "INSERT INTO trades (time, venue, symbol, epoch, seq, trade_id, price_ticks,"
            " size_lots, side, ts_event, ts_recv) SELECT to_timestamp($1 + s), 'SIM',"
            " CASE WHEN s % 2 = 0 THEN 'BTC-USD' ELSE 'ETH-USD' END, 7, s, s::text,"
            " 100000 + s, s, s % 3, ($1 + s)::bigint * 1000000000, ($1 + s)::bigint * 1000000000"
            " FROM generate_series(1, 50) AS s",
            T0 // S,
        )
        await conn.execute(
            "INSERT INTO top_of_book (time, venue, symbol, epoch, seq, bid_ticks, bid_lots,"
            " ask_ticks, ask_lots) VALUES (to_timestamp($1), 'SIM', 'BTC-USD', 7, 1, 99, 2,"
            " 101, 3)",
            T0 // S,
        )
        await conn.execute(
            "INSERT INTO bars (bucket, interval_s, venue, symbol, open, high, low, close,"
            " volume, notional, trades) VALUES (to_timestamp($1), 60, 'SIM', 'ETH-USD',"
            " 10, 12, 9, 11, 5, 52, 3)",
            T0 // S,
        )

    async def read(conn: asyncpg.Connection) -> tuple[list[Any], ...]:
        trades = await conn.fetch(
            "SELECT time, venue, symbol, seq, trade_id, price, size, side, ts_event, ts_recv,"
            " epoch FROM trades_decimal ORDER BY seq"
        )
        tops = await conn.fetch(
            "SELECT time, venue, symbol, seq, bid, bid_size, ask, ask_size, spread, mid, epoch"
            " FROM top_of_book_decimal"
        )
        bars = await conn.fetch(
            "SELECT bucket, interval_s, venue, symbol, open, high, low, close, volume,"
            " notional, vwap, trades FROM bars_decimal"
        )
        return [tuple(r) for r in trades], [tuple(r) for r in tops], [tuple(r) for r in bars]

    run(database, fill)
    was = run(database, read)
    assert len(was[0]) == 50 and len(was[1]) == 1 and len(was[2]) == 1
    assert migrate(database) == ["010_instrument_versions.sql"]
    assert run(database, read) == was

    async def carry_on(conn: asyncpg.Connection) -> None:
        assert await versions(conn, "SIM", "ETH-USD") == [("-infinity", "0.05", "0.001", "")]
        eth = listed(
            Instrument("SIM", "ETH-USD", "0.05", "0.001"), spot("SIM", "ETH-USD", "ETH", "USD")
        )
        await write_batch(conn, [], [eth])
        assert await versions(conn, "SIM", "ETH-USD") == [("-infinity", "0.05", "0.001", "ETH-USD")]
        assert await conn.fetchval("SELECT count(*) FROM instrument_versions") == 2
        canon = await conn.fetch("SELECT DISTINCT canonical FROM trades_decimal ORDER BY 1")
        assert [r[0] for r in canon] == ["BTC-USD", "ETH-USD"]  # BTC-USD: its symbol

    run(database, carry_on)


def test_an_instrument_carries_its_kafka_time() -> None:
    inst = Instrument("V", "S", "1", "1")
    assert announced(inst, 1_700_000_000_123, 5) == Announced(inst, 1_700_000_000_123_000_000)
    assert announced(inst, None, 5) == Announced(inst, 5)
    assert announced(inst, -1, 5) == Announced(inst, 5)
