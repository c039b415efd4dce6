"""REST candles from the recorder's TimescaleDB: a node started after the bars were recorded
serves all of them, says so, starts its candles channel and ticker from them too, and
falls back to memory, saying why, when the database cannot be reached."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from client.market import HubClient
from fanout.openapi import document
from fanout.protocol import candle
from fanout.stream import BarBuilder
from hub.db import migrate
from hub.events import Bar, Trade
from recorder.writer import write_batch
from tests.fanout.harness import INST, until
from tests.fanout.restclient import get, rest_node
from tests.fanout.test_openapi import check, response_schema

MINUTE = 60 * 10**9
T0 = 1_795_000_200 * 10**9  # a whole 5 minutes


def recorded_trades(n_minutes: int) -> list[Trade]:
    rng = random.Random(7)
    out = []
    for i in range(n_minutes * 3):
        ts = T0 + i * 20 * 10**9 + rng.randrange(10**9)
        price, size = rng.randrange(9_900, 10_100), rng.randrange(1, 9)
        out.append(Trade("SIM", "X", i + 1, str(i + 1), price, size, rng.randrange(3), ts, ts))
    return out


def expected(trades: list[Trade], interval: int) -> list[dict[str, object]]:
    builder = BarBuilder((interval,))
    bars: dict[int, Bar] = {}
    for t in trades:
        for bar in builder.add(t.venue, t.symbol, t.price, t.size, t.ts_event, t.seq):
            bars[bar.start] = bar
    return [candle(INST, bars[s]) for s in sorted(bars)]


@pytest.mark.services
async def test_candles_come_from_the_database_the_recorder_wrote(database: str) -> None:
    migrate(database)
    trades = recorded_trades(30)
    conn = await asyncpg.connect(database)
    try:
        await write_batch(conn, trades, [INST])
    finally:
        await conn.close()
    node, _market, port = await rest_node(dsn=database)
    try:
        minutes = expected(trades, 60)
        assert len(minutes) == 30
        got = (await get(port, "/v1/candles/SIM/X?interval=60")).json()
        assert (got["source"], got["database_error"], got["bars"]) == ("database", None, minutes)
        check(document(), response_schema(document(), "/v1/candles/{venue}/{symbol}", 200), got)
        five = (await get(port, "/v1/candles/SIM/X?interval=300")).json()
        assert five["bars"] == expected(trades, 300) and len(five["bars"]) == 6
        ranged = await get(port, f"/v1/candles/SIM/X?start={T0 + 10 * MINUTE}&limit=5")
        assert ranged.json()["bars"] == minutes[10:15]
        latest = await get(port, f"/v1/candles/SIM/X?end={T0 + 20 * MINUTE}&limit=4")
        assert latest.json()["bars"] == minutes[16:20]
        kraken = (await get(port, "/v1/candles/KRAKEN/XBT%2FUSD")).json()
        assert (kraken["source"], kraken["bars"]) == ("database", [])
        # The candles channel starts from the same history (loaded when the stream synced).
        assert node.history is not None
        for _ in range(500):
            if ("SIM", "X") in node.history.warmed:
                break
            await asyncio.sleep(0.01)
        async with HubClient(f"ws://127.0.0.1:{port}/ws") as client:
            await client.subscribe([{"channel": "candles", "symbol": "X", "interval": 60}])
            first = await until(client.messages(), "candles")
            assert first["bars"] == minutes
        # And the ticker holds the recorded day, though the node saw none of its trades.
        ticker = (await get(port, "/v1/ticker/SIM/X")).json()
        prices = [t.price for t in trades]
        assert (ticker["trades"], ticker["seq"]) == (90, 0)
        assert ticker["volume"] == str(sum(t.size for t in trades))
        assert [ticker[k] for k in ("open", "high", "low", "last")] == [
            f"{p / 100:.2f}" for p in (prices[0], max(prices), min(prices), prices[-1])
        ]
    finally:
        await node.stop()
    plain, _market, port = await rest_node()  # the same node without a database
    try:
        got = (await get(port, "/v1/candles/SIM/X?interval=60")).json()
        assert (got["source"], got["bars"]) == ("memory", [])
    finally:
        await plain.stop()


async def test_an_unreachable_database_falls_back_to_memory_and_says_why() -> None:
    node, market, port = await rest_node(
        dsn="postgresql://postgres@127.0.0.1:1/nowhere", bars_from_trades=True
    )
    try:
        market.trade(10_000, 2, T0)
        got = (await get(port, "/v1/candles/SIM/X")).json()
        assert got["source"] == "memory" and len(got["bars"]) == 1
        assert got["database_error"].startswith("PostgreSQL")
        assert "127.0.0.1:1" in got["database_error"]
    finally:
        await node.stop()
