"""Execution reports land in the real PostgreSQL off the hot path: one row per report,
positions and fills as views, and a restart's replay writes nothing twice."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import asyncpg
import orjson
import pytest
from websockets.asyncio.client import connect

from bus.local import InProcessBus, MemorySnapshots
from bus.output import FeedOutput
from hub.config import FeedConfig, OrdersConfig
from trading.gateway import OrderPath
from trading.risk import Account

pytestmark = pytest.mark.services
ACCOUNTS = [Account(1001, "alice", "alice-key-1"), Account(1002, "bob", "bob-key-12")]


async def session(path: OrderPath, database: str, trade: bool) -> tuple[int, dict[int, str]]:
    task = asyncio.create_task(path.run())
    try:
        while not path.port:  # noqa: ASYNC110 - polling the server's start
            await asyncio.sleep(0.01)
        if trade:
            alice = await connect(
                f"ws://127.0.0.1:{path.port}/orders",
                additional_headers={"Authorization": "Bearer alice-key-1"},
                max_queue=None,  # reports pile up unread; the close must still get through
            )
            bob = await connect(
                f"ws://127.0.0.1:{path.port}/orders",
                additional_headers={"Authorization": "Bearer bob-key-12"},
                max_queue=None,
            )
            await alice.recv()
            await bob.recv()
            for i in range(20):
                sell = {"op": "new", "cl_ord_id": f"s{i}", "symbol": "BTC-USD", "side": "sell"}
                await alice.send(orjson.dumps(sell | {"price": "64990.00", "qty": "0.01"}).decode())
                buy = {"op": "new", "cl_ord_id": f"b{i}", "symbol": "BTC-USD", "side": "buy"}
                await bob.send(orjson.dumps(buy | {"price": "64990.00", "qty": "0.004"}).decode())
            await asyncio.sleep(0.3)
            await alice.close()
            await bob.close()
        assert path.store is not None
        for _ in range(300):
            if not path.store.backlog and path.store.written:
                break
            await asyncio.sleep(0.02)
        conn = await asyncpg.connect(database)
        try:
            count = await conn.fetchval("SELECT count(*) FROM executions")
            positions = {
                r["account"]: str(r["position"])
                for r in await conn.fetch("SELECT account, position FROM positions")
            }
        finally:
            await conn.close()
        return count, positions
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_reports_orders_fills_and_positions_in_postgres(tmp_path: Path, database: str) -> None:
    feed = FeedConfig(symbols=("BTC-USD",), rate=0.001)
    orders = OrdersConfig(enabled=True, port=0, journal=str(tmp_path / "j"), record=True)

    def path() -> OrderPath:
        output = FeedOutput(InProcessBus(), MemorySnapshots())
        return OrderPath(orders, feed, output, ACCOUNTS, postgres_dsn=database)

    first = path()
    count, positions = asyncio.run(session(first, database, trade=True))
    reports = sum(s.seq for s in first.venue.state.values())
    assert count == reports > 40
    lots = {a: first.venue.state[a].positions["BTC-USD"] for a in (1001, 1002)}
    assert lots == {1001: -8000, 1002: 8000}  # 20 x 0.004 BTC in lots of 0.00001
    assert positions == {1001: "-0.08000", 1002: "0.08000"}

    again = path()  # a restart: the replay re-sends every report, nothing lands twice
    count_again, positions_again = asyncio.run(session(again, database, trade=False))
    assert (count_again, positions_again) == (count, positions)

    async def views() -> tuple[int, int, Decimal]:
        conn = await asyncpg.connect(database)
        try:
            fills = await conn.fetchval("SELECT count(*) FROM fills")
            open_orders = await conn.fetchval("SELECT count(*) FROM orders WHERE open")
            sold = await conn.fetchval("SELECT sum(qty) FROM fills WHERE account = 1001")
            return fills, open_orders, sold
        finally:
            await conn.close()

    fills, open_orders, sold = asyncio.run(views())
    every = [r for a in (1001, 1002) for r in first.venue.state[a].reports]
    assert fills == sum(r["last_qty"] != "0.00000" for r in every) >= 40
    assert sold == Decimal("0.08")
    # 0.08 of alice's 20 x 0.01 sold: 8 sells filled, 12 still resting
    assert open_orders == len(first.venue.state[1001].open_orders) == 12


def test_report_time_is_the_exact_microsecond_of_its_ns_never_rounded_through_float() -> None:
    from datetime import UTC, datetime

    from trading.store import utc

    last = 1_700_000_000_999_999_999  # as a float of seconds this rounds up to :21
    assert utc(last) == datetime(2023, 11, 14, 22, 13, 20, 999_999, tzinfo=UTC)
    assert utc(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert utc(2**63 - 1) == datetime(2262, 4, 11, 23, 47, 16, 854_775, tzinfo=UTC)
