"""Retention of raw trades, on either TimescaleDB edition.

Bars are small and stay; raw trades older than ``recorder.retention_days`` go.
With the full (Timescale License) edition the database does it itself: a
retention policy, plus native compression of chunks older than a week. The
Apache-2 edition has neither policies nor compression, so the recorder drops
whole chunks itself with ``drop_chunks`` once an hour.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg
from prometheus_client import Counter

from hub.db import connect_async, postgres_errors
from hub.errors import HubError
from hub.ops import metrics

METRICS = metrics("recorder")

log = logging.getLogger("hub.recorder")
DROPPED = Counter(
    "hub_recorder_chunks_dropped_total", "Trade chunks dropped by retention", registry=METRICS
)
EVERY_S = 3600.0
COMPRESS_AFTER = "7 days"


@dataclass(frozen=True)
class Retention:
    days: int
    edition: str
    """apache or timescale (the ``timescaledb.license`` setting)."""


async def edition(conn: asyncpg.Connection) -> str:
    value: str = await conn.fetchval("SELECT current_setting('timescaledb.license', true)")
    return value or "apache"


async def set_up(conn: asyncpg.Connection, days: int) -> Retention:
    """Install the policies where the edition has them; return what the recorder must do."""
    found = await edition(conn)
    if days and found == "timescale":
        await conn.execute(
            "ALTER TABLE trades SET (timescaledb.compress,"
            " timescaledb.compress_segmentby = 'venue, symbol')"
        )
        await conn.execute(
            f"SELECT add_compression_policy('trades', INTERVAL '{COMPRESS_AFTER}',"
            " if_not_exists => true)"
        )
        await conn.execute(
            "SELECT add_retention_policy('trades', make_interval(days => $1),"
            " if_not_exists => true)",
            days,
        )
        log.info("retention and compression policies set", extra={"days": days})
    return Retention(days, found)


async def drop_old(conn: asyncpg.Connection, days: int) -> int:
    """Drop the trade chunks wholly older than ``days``; return how many went."""
    dropped = await conn.fetch(
        "SELECT drop_chunks('trades', older_than => now() - make_interval(days => $1))", days
    )
    DROPPED.inc(len(dropped))
    if dropped:
        log.info("old trade chunks dropped", extra={"chunks": len(dropped), "days": days})
    return len(dropped)


async def run(dsn: str, retention: Retention) -> None:
    """The Apache edition's retention task: drop old chunks every hour until cancelled."""
    if not retention.days or retention.edition == "timescale":
        return
    while True:
        try:
            with postgres_errors(dsn):
                conn = await connect_async(dsn)
                try:
                    await drop_old(conn, retention.days)
                finally:
                    await conn.close()
        except HubError as exc:
            log.warning("retention run failed; next hour", extra={"error": repr(exc)})
        await asyncio.sleep(EVERY_S)
