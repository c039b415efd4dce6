"""client.analytics against the real PostgreSQL + TimescaleDB: each helper's DataFrame holds
exactly the rows of its range, across both venues' names of one asset, in the units that
applied at each row's time."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import asyncpg
import pytest

from client import analytics
from hub.db import migrate
from hub.events import BookSnapshot, Instrument, TopOfBook, Trade
from hub.symbology import listed, spot
from recorder.units import Announced
from recorder.writer import write_batch

pytestmark = pytest.mark.services
T0 = 1_790_000_000 * 10**9  # 2026-09-21 14:13:20 UTC
S = 10**9


def fill(database: str) -> None:
    kraken = listed(
        Instrument("KRAKEN", "XBT/USD", "0.1", "0.001"), spot("KRAKEN", "XBT/USD", "XBT", "USD")
    )
    finer = listed(
        Instrument("KRAKEN", "XBT/USD", "0.01", "0.001"), spot("KRAKEN", "XBT/USD", "XBT", "USD")
    )
    coinbase = listed(
        Instrument("COINBASE", "BTC-USD", "0.01", "0.0001"),
        spot("COINBASE", "BTC-USD", "BTC", "USD"),
    )
    eth = listed(
        Instrument("COINBASE", "ETH-USD", "0.01", "0.0001"),
        spot("COINBASE", "ETH-USD", "ETH", "USD"),
    )

    def trade(venue: str, symbol: str, seq: int, ts: int, price: int) -> Trade:
        return Trade(venue, symbol, seq, str(seq), price, 2, seq % 2, ts, ts)

    async def main() -> None:
        conn = await asyncpg.connect(database)
        try:
            await write_batch(
                conn,
                [trade("KRAKEN", "XBT/USD", n, T0 + n * S, 650_000 + n) for n in range(1, 4)]
                + [
                    trade("COINBASE", "BTC-USD", n, T0 + n * S + 1000, 6_500_000 + n)
                    for n in range(1, 4)
                ]
                + [trade("COINBASE", "ETH-USD", 1, T0 + S, 300_000)],
                [Announced(kraken, 1), Announced(coinbase, 1), Announced(eth, 1)],
                tops=[TopOfBook("KRAKEN", "XBT/USD", 1, T0 + S, T0, 649_990, 4, 650_010, 5)],
                snapshots=[
                    BookSnapshot(
                        "COINBASE", "BTC-USD", 1, T0 + 2 * S, ((6_499_999, 30),), ((6_500_001, 40),)
                    )
                ],
            )
            await write_batch(
                conn,
                [trade("KRAKEN", "XBT/USD", 4, T0 + 4 * S, 6_500_040)],
                [Announced(finer, 2)],
                tops=[
                    TopOfBook("KRAKEN", "XBT/USD", 2, T0 + 5 * S, T0, 6_499_990, 4, 6_500_000, 5)
                ],
            )
        finally:
            await conn.close()

    migrate(database)
    asyncio.run(main())


def test_trades_of_one_asset_on_two_venues_over_a_range(database: str) -> None:
    fill(database)
    df = analytics.trades(
        database, "btc-usd", "2026-09-21 14:13:21", dt.datetime(2026, 9, 21, 14, 13, 25)
    )
    assert list(df.columns) == [
        "time",
        "venue",
        "symbol",
        "canonical",
        "epoch",
        "seq",
        "trade_id",
        "price",
        "size",
        "side",
    ]
    assert [(r.venue, r.symbol, r.seq, r.price) for r in df.itertuples()] == [
        ("KRAKEN", "XBT/USD", 1, 65000.1),
        ("COINBASE", "BTC-USD", 1, 65000.01),
        ("KRAKEN", "XBT/USD", 2, 65000.2),
        ("COINBASE", "BTC-USD", 2, 65000.02),
        ("KRAKEN", "XBT/USD", 3, 65000.3),
        ("COINBASE", "BTC-USD", 3, 65000.03),
        ("KRAKEN", "XBT/USD", 4, 65000.4),  # after the tick change: 6,500,040 ticks of 0.01
    ]
    assert str(df["time"].dtype).endswith(", UTC]")  # datetime64[ns or us, UTC]
    assert df["time"].iloc[0] == dt.datetime(2026, 9, 21, 14, 13, 21, tzinfo=dt.UTC)
    assert set(df["canonical"]) == {"BTC-USD"}
    exact = analytics.trades(
        database, "XBT/USD", "2026-09-21", "2026-09-22", venue="kraken", exact=True
    )
    assert list(exact["price"]) == [
        Decimal("65000.1"),
        Decimal("65000.2"),
        Decimal("65000.3"),
        Decimal("65000.40"),
    ]
    assert analytics.trades(database, "DOGE-USD", "2026-09-21", "2026-09-22").empty


def test_bars_spreads_and_depth(database: str) -> None:
    fill(database)
    bars = analytics.bars(
        database, "BTC-USD", "2026-09-21", "2026-09-22", interval_s=60, exact=True
    )
    assert [(r.venue, r.open, r.close, r.trades, r.mixed_units) for r in bars.itertuples()] == [
        ("COINBASE", Decimal("65000.01"), Decimal("65000.03"), 3, False),
        ("KRAKEN", Decimal("65000.1"), Decimal("650004.0"), 4, True),  # mixes two ticks: flagged
    ]
    spreads = analytics.spreads(database, "BTC-USD", "2026-09-21", "2026-09-22")
    assert [(r.seq, r.bid, r.ask, round(r.spread, 6)) for r in spreads.itertuples()] == [
        (1, 64999.0, 65001.0, 2.0),
        (2, 64999.9, 65000.0, 0.1),
    ]
    depth = analytics.depth(database, "BTC-USD", "2026-09-21", "2026-09-22")
    assert [(r.venue, r.bid_prices, r.bid_sizes, r.ask_prices) for r in depth.itertuples()] == [
        ("COINBASE", [64999.99], [0.003], [65000.01])
    ]
