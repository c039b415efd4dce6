"""What the recorder stored in TimescaleDB, as a replay source: ``db:VENUE:SYMBOL``.

A node with a database (``fanout.database = true``) replays a stream's recorded trades
(the ``trades`` hypertable) and its periodic top-of-book snapshots (``book_snapshots``:
the top 10 levels the feed publishes every ``feed.snapshot_interval_ms``) in event time,
each trade and snapshot with the units that applied at its time (``instrument_versions``:
an ``Instrument`` event whenever a new version starts, so a tick-size change is never
applied to rows before it). Rows are read through a server-side cursor in a transaction,
a few thousand at a time, so a long range never sits in memory and the node's event loop
only waits for the database between batches.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from fanout.history import ns_time
from hub.errors import BadInput
from hub.events import BookSnapshot, Event, Instrument, Trade

PREFIX = "db:"
PREFETCH = 2000
VERSIONS_SQL = """
SELECT CASE WHEN valid_from = '-infinity' THEN NULL
            ELSE (extract(epoch FROM valid_from) * 1000000)::bigint * 1000 END AS from_ns,
       tick_size, lot_size, canonical, kind, base, quote, settle, expiry, strike,
       option_right, contract_size, inverse
FROM instrument_versions WHERE venue = $1 AND symbol = $2 ORDER BY valid_from
"""
EXISTS_SQL = "SELECT 1 FROM instrument_versions WHERE venue = $1 AND symbol = $2 LIMIT 1"
TRADES_SQL = """
SELECT ts_event, ts_recv, seq, trade_id, price_ticks, size_lots, side, epoch
FROM trades WHERE venue = $1 AND symbol = $2 AND time >= $3 AND time <= $4
ORDER BY time, epoch, seq
"""
BOOKS_SQL = """
SELECT (extract(epoch FROM time) * 1000000)::bigint * 1000 AS ts, seq, epoch,
       bid_ticks, bid_lots, ask_ticks, ask_lots
FROM book_snapshots WHERE venue = $1 AND symbol = $2 AND time >= $3 AND time <= $4
ORDER BY time, epoch, seq
"""
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)
PoolFor = Callable[[], Awaitable[asyncpg.Pool]]


def is_recorded(text: str) -> bool:
    return text.startswith(PREFIX)


def parse_recorded(text: str) -> tuple[str, str]:
    """``db:VENUE:SYMBOL`` -> (venue, symbol); BadInput naming it otherwise."""
    venue, _, symbol = text[len(PREFIX) :].partition(":")
    if not venue or not symbol:
        raise BadInput(f"source {text!r}: write db:VENUE:SYMBOL (e.g. db:SIM:BTC-USD)")
    return venue, symbol


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _instrument(venue: str, symbol: str, row: asyncpg.Record) -> Instrument:
    return Instrument(
        venue,
        symbol,
        _text(row["tick_size"]),
        _text(row["lot_size"]),
        row["canonical"],
        row["kind"],
        row["base"],
        row["quote"],
        row["settle"],
        row["expiry"],
        row["strike"],
        row["option_right"],
        row["contract_size"],
        row["inverse"],
    )


def _when(ns: int | None, default: datetime) -> datetime:
    if ns is None:
        return default
    try:
        return ns_time(ns)
    except OverflowError:
        return LATEST


class Versions:
    """The instrument versions of one stream (the first from -infinity), handed out as
    time passes their starts."""

    def __init__(self, versions: list[tuple[int | None, Instrument]]) -> None:
        self.versions = versions
        self.current = -1

    def due(self, at: int) -> Iterator[Instrument]:
        """The version in force at ``at``, when it is not the one handed out last (rows
        before the first version take it: its units are the earliest known)."""
        i = max(self.current, 0)
        while i + 1 < len(self.versions) and (self.versions[i + 1][0] or 0) <= at:
            i += 1
        if i != self.current:
            self.current = i
            yield self.versions[i][1]


async def check_recorded(pool: asyncpg.Pool, text: str) -> None:
    """BadInput naming ``text`` unless it is a stream the database holds."""
    venue, symbol = parse_recorded(text)
    if await pool.fetchval(EXISTS_SQL, venue, symbol) is None:
        raise BadInput(f"source {text}: the database holds no stream {venue} {symbol}")


async def recorded_events(
    pool: asyncpg.Pool,
    text: str,
    start_ns: int | None,
    end_ns: int | None,
    trades: bool = True,
    books: bool = True,
) -> AsyncIterator[Event]:
    """One recorded stream's trades and book snapshots in event time, its units first."""
    venue, symbol = parse_recorded(text)
    low, high = _when(start_ns, EARLIEST), _when(end_ns, LATEST)
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        rows = await conn.fetch(VERSIONS_SQL, venue, symbol)
        if not rows:
            raise BadInput(f"source {text}: the database holds no stream {venue} {symbol}")
        versions = Versions([(r["from_ns"], _instrument(venue, symbol, r)) for r in rows])
        streams: list[AsyncIterator[tuple[int, Event]]] = []
        if trades:
            streams.append(_trades(conn, venue, symbol, low, high))
        if books:
            streams.append(_books(conn, venue, symbol, low, high))
        async for at, event in _merged(streams):
            for inst in versions.due(at):
                yield inst
            yield event


async def _trades(
    conn: asyncpg.Connection, venue: str, symbol: str, low: datetime, high: datetime
) -> AsyncIterator[tuple[int, Event]]:
    async for r in conn.cursor(TRADES_SQL, venue, symbol, low, high, prefetch=PREFETCH):
        trade = Trade(
            venue,
            symbol,
            r["seq"],
            r["trade_id"],
            r["price_ticks"],
            r["size_lots"],
            r["side"],
            r["ts_event"],
            r["ts_recv"],
            r["epoch"],
        )
        yield r["ts_event"], trade


async def _books(
    conn: asyncpg.Connection, venue: str, symbol: str, low: datetime, high: datetime
) -> AsyncIterator[tuple[int, Event]]:
    async for r in conn.cursor(BOOKS_SQL, venue, symbol, low, high, prefetch=PREFETCH):
        bids = tuple(zip(r["bid_ticks"], r["bid_lots"], strict=True))
        asks = tuple(zip(r["ask_ticks"], r["ask_lots"], strict=True))
        snap = BookSnapshot(venue, symbol, r["seq"], r["ts"], bids, asks, epoch=r["epoch"])
        yield r["ts"], snap


async def _merged(
    streams: list[AsyncIterator[tuple[int, Event]]],
) -> AsyncIterator[tuple[int, Event]]:
    """(time, event) streams, each in time order, as one in time order."""
    heap: list[tuple[int, int, Event]] = []
    for i, s in enumerate(streams):
        first = await anext(s, None)
        if first is not None:
            heap.append((first[0], i, first[1]))
    heapq.heapify(heap)
    while heap:
        at, i, event = heapq.heappop(heap)
        yield at, event
        nxt = await anext(streams[i], None)
        if nxt is not None:
            heapq.heappush(heap, (nxt[0], i, nxt[1]))


def event_time(event: Event) -> int:
    """When an event happened: its event time, else its receive time; 0 for an instrument
    (which sorts before the rest of its own stream)."""
    return getattr(event, "ts_event", 0) or getattr(event, "ts_recv", 0)


async def as_async(events: Iterable[Event]) -> AsyncIterator[Event]:
    for e in events:
        yield e


async def merged(streams: list[AsyncIterator[Event]]) -> AsyncIterator[Event]:
    """Event streams (each in event time, instruments in front of their streams) as one."""

    async def timed(s: AsyncIterator[Event]) -> AsyncIterator[tuple[int, Event]]:
        async for e in s:
            yield event_time(e), e

    try:
        if len(streams) == 1:
            async for e in streams[0]:
                yield e
        else:
            async for _at, e in _merged([timed(s) for s in streams]):
                yield e
    finally:  # a replay stopped early gives its database connection back now
        for s in streams:
            with contextlib.suppress(Exception):
                await s.aclose()  # type: ignore[attr-defined]
