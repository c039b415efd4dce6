"""Candle history of a fanout node: the recorder's bars in TimescaleDB, or the node's memory.

A node given a database (``fanout.database = true``: ``postgres.dsn``, where the
recorder writes) answers candle ranges from the ``bars`` hypertable, the bars the
recorder also publishes to the candles channel, so both show the same numbers.
Without one, or while the database cannot be reached, the answer comes from the
bars the node holds in memory (its own uptime, up to 500 per interval) and says so:
``source`` is ``database`` or ``memory``.

The same history starts the candles channel: when a stream first syncs, the node
loads its latest 300 bars of every interval from the database into memory (``warm``),
so a subscriber's first ``candles`` message reaches back before the node started;
the bars the recorder publishes keep them current from then on. Its ticker is seeded
with the day's one-minute bars the same way (fanout.ticker).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import asyncpg

from fanout.stream import CANDLES_SENT, BookStream, StreamKey
from fanout.ticker import WINDOW_MINUTES
from hub.db import UNIX_EPOCH, bar_from_row, postgres_errors, redact_dsn
from hub.errors import HubError
from hub.events import BAR_INTERVALS, Bar

log = logging.getLogger("hub.fanout")

BARS_SQL = """
SELECT venue, symbol, interval_s, bucket, open, high, low, close, volume, notional, trades
FROM bars
WHERE venue = $1 AND symbol = $2 AND interval_s = $3 AND bucket >= $4 AND bucket < $5
ORDER BY bucket {order} LIMIT $6
"""
QUERY_TIMEOUT_S = 5.0
FAR_FUTURE = 2**63 - 1
"""The end of an open range (ns)."""


def ns_time(ns: int) -> datetime:
    """Integer ns since the Unix epoch as a UTC datetime (microseconds: PostgreSQL's)."""
    return UNIX_EPOCH + timedelta(microseconds=ns // 1000)


def in_range(bars: list[Bar], start: int, end: int, limit: int, newest: bool) -> list[Bar]:
    """Bars with ``start <= bar.start < end``, oldest first: the first ``limit`` of them, or
    the last ``limit`` when ``newest``."""
    chosen = [b for b in sorted(bars, key=lambda b: b.start) if start <= b.start < end]
    return chosen[-limit:] if newest else chosen[:limit]


class BarHistory:
    """Reads bars from the recorder's database through a small connection pool, made at
    the first query (a node starts whether or not the database is up)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self.error: str | None = None
        """Why the last query failed (None: it did not)."""
        self.warmed: set[StreamKey] = set()
        """Streams whose memory holds the database's latest bars."""

    async def pool(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:
                with postgres_errors(self.dsn):
                    self._pool = await asyncpg.create_pool(
                        self.dsn, min_size=0, max_size=4, timeout=QUERY_TIMEOUT_S
                    )
            return self._pool

    async def bars(
        self,
        venue: str,
        symbol: str,
        interval: int,
        start: int,
        end: int,
        limit: int,
        newest: bool = False,
    ) -> list[Bar] | None:
        """Bars of one stream and interval with ``start <= bucket < end`` (ns), oldest first:
        the first ``limit`` (the last ``limit`` when ``newest``). None when the database
        cannot answer (``error`` says why; logged once per new reason)."""
        sql = BARS_SQL.format(order="DESC" if newest else "ASC")
        try:
            pool = await self.pool()
            with postgres_errors(self.dsn):
                rows = await pool.fetch(
                    sql,
                    venue,
                    symbol,
                    interval,
                    ns_time(start),
                    ns_time(end),
                    limit,
                    timeout=QUERY_TIMEOUT_S,
                )
        except HubError as exc:
            if self.error != str(exc):
                log.warning(
                    "candle history: database query failed; answering from memory",
                    extra={"dsn": redact_dsn(self.dsn), "error": str(exc)},
                )
            self.error = str(exc)
            return None
        self.error = None
        out = [bar_from_row(r) for r in rows]
        return out[::-1] if newest else out

    async def warm(self, stream: BookStream) -> None:
        """Load the stream's latest CANDLES_SENT bars of every interval into its memory, each
        where memory has no bar of that start yet (a bar that came live is as new), and seed
        its ticker with the last day's one-minute bars. When the database cannot answer
        (logged by ``bars``) the node tries again at the stream's next sync."""
        if stream.key in self.warmed:
            return
        for interval in BAR_INTERVALS:
            wanted = max(CANDLES_SENT, WINDOW_MINUTES) if interval == 60 else CANDLES_SENT
            bars = await self.bars(
                stream.venue, stream.symbol, interval, 0, FAR_FUTURE, wanted, newest=True
            )
            if bars is None:
                return
            held = stream.candles.get(interval, {})
            for bar in bars[-CANDLES_SENT:]:
                if bar.start not in held:
                    stream.on_bar(bar)
            if interval == 60:
                stream.ticker.seed(bars)
        self.warmed.add(stream.key)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
