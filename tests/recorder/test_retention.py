"""Retention on the real local TimescaleDB (the Apache-2 edition): the recorder's own
drop_chunks removes raw trades older than the limit, keeps newer ones and every bar."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from hub.db import migrate
from hub.events import Instrument, Trade
from recorder.retention import drop_old, edition, set_up
from recorder.writer import write_batch

pytestmark = pytest.mark.services
DAY = 86_400 * 10**9


def test_old_trade_chunks_are_dropped_and_bars_stay(database: str) -> None:
    migrate(database)
    now = time.time_ns()
    ages = [40, 40, 35, 2, 0]  # days
    trades = [
        Trade("SIM", "BTC-USD", i + 1, str(i + 1), 100 + i, 5, 0, now - d * DAY, now - d * DAY)
        for i, d in enumerate(ages)
    ]

    async def scenario() -> None:
        conn = await asyncpg.connect(database)
        try:
            inst = [Instrument("SIM", "BTC-USD", "0.01", "0.0001")]
            assert await write_batch(conn, trades, inst) == 5
            bars_before = await conn.fetchval("SELECT count(*) FROM bars")
            license_ = await conn.fetchval("SHOW timescaledb.license")
            assert await edition(conn) == license_
            plan = await set_up(conn, 30)
            assert (plan.days, plan.edition) == (30, license_)
            if license_ != "apache":  # the full edition: the database's own policy does it
                jobs = await conn.fetchval(
                    "SELECT count(*) FROM timescaledb_information.jobs"
                    " WHERE proc_name = 'policy_retention' AND hypertable_name = 'trades'"
                )
                assert jobs == 1
                return
            assert await drop_old(conn, 30) == 2  # the two chunks wholly older than 30 d
            assert await drop_old(conn, 30) == 0  # nothing more to drop
            seqs = [r[0] for r in await conn.fetch("SELECT seq FROM trades ORDER BY seq")]
            assert seqs == [4, 5]
            assert await conn.fetchval("SELECT count(*) FROM bars") == bars_before > 0
        finally:
            await conn.close()

    asyncio.run(scenario())
