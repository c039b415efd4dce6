"""Two ``hub recorder`` processes in one consumer group over the real Kafka (Tansu) and
TimescaleDB: they split the trade topic's partitions, one is killed with SIGKILL midway
(its last batches re-delivered to the other) and a replacement started at once joins once
the group lets the dead one go; afterwards every trade is stored exactly once and every
bar equals its trades."""

from __future__ import annotations

import asyncio
import random
import re
import time
import urllib.request
from typing import Any

import asyncpg
import pytest

from bus.kafka import KafkaPublisher
from hub.config import KafkaConfig
from hub.db import migrate
from hub.events import BAR_INTERVALS, Instrument, Trade
from tests.recorder.test_db_restart import count, wait_until
from tests.recorder.test_writer import T0, expected_bars, stored_bars

pytestmark = pytest.mark.services
SYMBOLS = [f"S{i}-USD" for i in range(12)]


def trades_of(n: int, seed: int = 5) -> list[Trade]:
    """``n`` trades over twelve streams (so they fall in several partitions), seq per stream."""
    rng = random.Random(seed)
    seqs = dict.fromkeys(SYMBOLS, 0)
    out = []
    for i in range(n):
        symbol = rng.choice(SYMBOLS)
        seqs[symbol] += 1
        ts = T0 + i * 10**7 + rng.randrange(10**7)
        out.append(
            Trade(
                "SIM",
                symbol,
                seqs[symbol],
                str(seqs[symbol]),
                rng.randrange(9_000, 11_000),
                rng.randrange(1, 90),
                rng.randrange(2),
                ts,
                ts,
            )
        )
    return out


def rows_written(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    m = re.search(r'^hub_recorder_rows_total\{table="trades"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_two_recorders_split_partitions_and_a_killed_one_loses_nothing(
    hub_process: Any, services: dict[str, str], unique: str, database: str
) -> None:
    migrate(database)
    env = {
        "HUB_KAFKA__BOOTSTRAP": services["kafka"],
        "HUB_KAFKA__TOPIC_PREFIX": unique,
        "HUB_POSTGRES__DSN": database,
        "HUB_RECORDER__BATCH_SIZE": "200",
    }
    recorders = [
        hub_process("recorder", "--group", unique, "--metrics-port", "0", env=env) for _ in range(2)
    ]
    ports = [int(r.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics").group(1)) for r in recorders]
    trades = trades_of(6000)
    kcfg = KafkaConfig(bootstrap=services["kafka"], topic_prefix=unique)

    async def produce(batch: list[Any]) -> None:
        publisher = KafkaPublisher(kcfg)
        await publisher.start()
        try:
            await publisher.publish(batch)
        finally:
            await publisher.stop()

    instruments = [Instrument("SIM", s, "0.01", "0.01") for s in SYMBOLS]
    asyncio.run(produce([*instruments, *trades[:3000]]))
    wait_until(lambda: asyncio.run(count(database)) == 3000, "the first 3000 trades", 90)
    written = [rows_written(p) for p in ports]
    assert all(w > 0 for w in written) and sum(written) == 3000, written  # both took a share

    recorders[1].proc.kill()  # no goodbye: its partitions go to the survivor
    # A replacement started at once must wait until the group lets go of the dead member
    # (its session times out), not give up as if Kafka were down.
    replacement = hub_process("recorder", "--group", unique, "--metrics-port", "0", env=env)
    asyncio.run(produce([*trades[3000:], *trades[1000:1500]]))  # and a re-delivered stretch
    replacement.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics", timeout=130)
    wait_until(lambda: asyncio.run(count(database)) == 6000, "all 6000 trades", 120)
    time.sleep(1.0)  # nothing more arrives late

    async def check() -> None:
        conn = await asyncpg.connect(database)
        try:
            rows = await conn.fetch(
                "SELECT venue, symbol, (extract(epoch FROM time) * 1000000)::bigint, seq,"
                " price_ticks, size_lots FROM trades"
            )
            assert len(rows) == 6000
            assert sorted((r[1], r[3]) for r in rows) == sorted((t.symbol, t.seq) for t in trades)
            for interval in BAR_INTERVALS:
                assert await stored_bars(conn, interval) == expected_bars(
                    [tuple(r) for r in rows], interval
                ), interval
        finally:
            await conn.close()

    asyncio.run(check())
    assert recorders[0].stop() == 0, recorders[0].stderr()
    assert replacement.stop() == 0, replacement.stderr()
