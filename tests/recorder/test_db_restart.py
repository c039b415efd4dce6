"""The recorder rides out a PostgreSQL stop/start mid-stream: afterwards the stored trades
and bars equal the stream exactly (its own private PostgreSQL, so other tests are untouched)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
import urllib.request
from typing import Any

import asyncpg
import pytest

from bus.kafka import KafkaPublisher
from hub.config import KafkaConfig
from hub.db import migrate
from hub.events import BAR_INTERVALS, Instrument
from tests.conftest import ROOT
from tests.recorder.test_writer import expected_bars, make_trades, stored_bars

pytestmark = pytest.mark.services
SCRIPT = ROOT / "scripts" / "services.sh"
PORT = 35633


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def lag(port: int) -> float:
    """The recorder's consumer lag summed over the trade topic's partitions."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    found = re.findall(
        r'^hub_recorder_consumer_lag\{[^}]*topic="[^"]*\.trades"[^}]*\} (\S+)$', text, re.M
    )
    return sum(float(v) for v in found)


async def count(dsn: str) -> int:
    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return -1
    try:
        return int(await conn.fetchval("SELECT count(*) FROM trades"))
    finally:
        await conn.close()


def wait_until(predicate: Any, what: str, timeout: float = 60, on_timeout: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    detail = "" if on_timeout is None else f": {on_timeout()[-3000:]}"
    raise AssertionError(f"timed out waiting for {what}{detail}")


def test_database_restart_mid_stream(
    hub_process: Any, services: dict[str, str], unique: str
) -> None:
    data = ROOT / ".cache" / f"pg-restart-{unique}"
    env_svc = dict(os.environ, HUB_SERVICES_DIR=str(data), HUB_PG_PORT=str(PORT))

    def pg(action: str) -> None:
        subprocess.run(
            [str(SCRIPT), action, "postgres"],
            env=env_svc,
            check=True,
            capture_output=True,
            timeout=120,
        )

    dsn = f"postgresql://postgres@127.0.0.1:{PORT}/hub"
    pg("up")
    try:
        migrate(dsn)
        env = {
            "HUB_KAFKA__BOOTSTRAP": services["kafka"],
            "HUB_KAFKA__TOPIC_PREFIX": unique,
            "HUB_POSTGRES__DSN": dsn,
        }
        recorder = hub_process("recorder", "--group", unique, "--metrics-port", "0", env=env)
        mport = int(recorder.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics").group(1))
        trades = make_trades(7, 2000)
        kcfg = KafkaConfig(bootstrap=services["kafka"], topic_prefix=unique)

        async def produce(batch: list[Any]) -> None:
            publisher = KafkaPublisher(kcfg)
            await publisher.start()
            try:
                await publisher.publish(batch)
            finally:
                await publisher.stop()

        asyncio.run(
            produce(
                [
                    Instrument("SIM", "BTC-USD", "0.01", "0.0001"),
                    Instrument("SIM", "ETH-USD", "0.01", "0.0001"),
                    *trades[:1000],
                ]
            )
        )
        wait_until(lambda: asyncio.run(count(dsn)) == 1000, "the first 1000 trades")
        pg("down")
        # While the database is down: new trades, re-delivered old ones, late ones.
        asyncio.run(produce([*trades[1000:1600], *trades[200:400], *trades[1600:]]))
        wait_until(lambda: metric(mport, "hub_recorder_retries_total") > 0, "a retry")
        assert metric(mport, "hub_recorder_database_up") == 0
        # Backpressure: the batch is not stored, so the lag shows it. (Tansu reports a
        # partition's end as its last produced batch's first offset + 1, so the figure is
        # smaller than real Kafka's; above zero it must be.)
        wait_until(lambda: lag(mport) > 0, "the consumer lag to show the backlog")
        pg("up")
        wait_until(lambda: asyncio.run(count(dsn)) == 2000, "all 2000 trades after the restart")
        wait_until(lambda: metric(mport, "hub_recorder_database_up") == 1, "database_up again")
        wait_until(lambda: lag(mport) == 0, "the consumer lag back to zero")

        async def check() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                rows = await conn.fetch(
                    "SELECT venue, symbol, (extract(epoch FROM time) * 1000000)::bigint, seq,"
                    " price_ticks, size_lots FROM trades"
                )
                assert sorted(r[3] for r in rows) == list(range(1, 2001))
                for interval in BAR_INTERVALS:
                    assert await stored_bars(conn, interval) == expected_bars(
                        [tuple(r) for r in rows], interval
                    )
            finally:
                await conn.close()

        asyncio.run(check())
        assert recorder.stop() == 0
    finally:
        pg("down")
        shutil.rmtree(data, ignore_errors=True)
