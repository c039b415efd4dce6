"""Execution reports into PostgreSQL, off the hot path.

The committer hands every durable report to ``ExecutionStore.put`` (never
blocking); a background task writes them in batches with ``ON CONFLICT DO
NOTHING`` on (venue, account, seq), so the writes are idempotent: after a
restart the replayed reports are written again and only the missing ones
land. A database outage holds the backlog in memory (bounded) and retries;
the order path never waits for the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge

from hub.backoff import Backoff
from hub.db import connect_async, postgres_errors, redact_dsn
from hub.errors import HubError
from hub.ops import metrics
from trading.messages import ExecReport
from trading.risk import Account

METRICS = metrics("orders")

log = logging.getLogger("hub.orders")
ROWS = Counter(
    "hub_orders_db_rows_total", "Execution reports written to PostgreSQL", registry=METRICS
)
BACKLOG = Gauge(
    "hub_orders_db_backlog", "Execution reports waiting for PostgreSQL", registry=METRICS
)
DB_ERRORS = Counter(
    "hub_orders_db_errors_total", "Failed PostgreSQL writes (retried)", registry=METRICS
)
BACKLOG_LIMIT = 1_000_000
"""Reports held for PostgreSQL while it is down (about 800 bytes each: some 800 MB at the
bound). Past it a report is dropped from the backlog (counted in ``dropped``): the journal
has it, and a restart writes again each account's last ``REPORTS_KEPT`` reports."""
BATCH = 2000

INSERT = """
INSERT INTO executions (venue, account, seq, time, cl_ord_id, order_id, symbol, exec_type,
    side, order_type, price, last_qty, last_price, leaves_qty, cum_qty, reason, position,
    ts_event)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
ON CONFLICT (venue, account, seq) DO NOTHING
"""


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(ns: int) -> datetime:
    """Epoch nanoseconds as a UTC datetime, exactly to the microsecond (rounded down, as
    PostgreSQL's timestamptz holds it): integer arithmetic, never a float."""
    return EPOCH + timedelta(microseconds=ns // 1000)


def row(venue: str, r: ExecReport) -> tuple[Any, ...]:
    def dec(text: str | None) -> Decimal | None:
        return None if text is None else Decimal(text)

    return (
        venue,
        r["account"],
        r["seq"],
        utc(r["ts"]),
        r["cl_ord_id"],
        int(r["order_id"]),
        r["symbol"],
        r["exec_type"],
        r["side"],
        r["order_type"],
        dec(r["price"]),
        Decimal(r["last_qty"]),
        dec(r["last_price"]),
        Decimal(r["leaves_qty"]),
        Decimal(r["cum_qty"]),
        r["reason"],
        Decimal(r["position"]),
        r["ts"],
    )


class ExecutionStore:
    def __init__(self, dsn: str, venue: str, accounts: list[Account]) -> None:
        self.dsn = dsn
        self.venue = venue
        self.accounts = accounts
        self.backlog: deque[ExecReport] = deque()
        self.written = 0
        self.dropped = 0
        self._wake = asyncio.Event()

    def put(self, report: ExecReport) -> None:
        if len(self.backlog) >= BACKLOG_LIMIT:
            self.dropped += 1  # the journal still has it: the next restart writes it
            return
        self.backlog.append(report)
        BACKLOG.set(len(self.backlog))
        self._wake.set()

    async def _connect(self) -> asyncpg.Connection:
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                conn = await connect_async(self.dsn)
                with postgres_errors(self.dsn):
                    await conn.executemany(
                        "INSERT INTO accounts (venue, id, name) VALUES ($1, $2, $3)"
                        " ON CONFLICT (venue, id) DO UPDATE SET name = EXCLUDED.name",
                        [(self.venue, a.id, a.name) for a in self.accounts],
                    )
                return conn
            except HubError as exc:
                self._failed("PostgreSQL unavailable for executions; retrying", exc)
                await backoff.wait()

    def _failed(self, what: str, exc: HubError) -> None:
        """Count and log a failed attempt. Executions are retried even when the database
        refused them (``retriable`` false): the gateway migrated the schema at start, so a
        refusal is an operator's to fix, and the journal keeps every report until then."""
        DB_ERRORS.inc()
        level = logging.WARNING if exc.retriable else logging.ERROR
        log.log(level, what, extra={"dsn": redact_dsn(self.dsn), "error": str(exc)})

    async def run(self) -> None:
        """Write the backlog in batches until cancelled (then what is queued stays queued:
        the journal has it)."""
        conn = await self._connect()
        try:
            while True:
                if not self.backlog:
                    self._wake.clear()
                    await self._wake.wait()
                batch = [self.backlog[i] for i in range(min(BATCH, len(self.backlog)))]
                try:
                    with postgres_errors(self.dsn):
                        async with conn.transaction():
                            await conn.executemany(INSERT, [row(self.venue, r) for r in batch])
                except HubError as exc:
                    self._failed("execution write failed; retrying", exc)
                    await conn.close()
                    conn = await self._connect()
                    continue
                for _ in batch:
                    self.backlog.popleft()
                self.written += len(batch)
                ROWS.inc(len(batch))
                BACKLOG.set(len(self.backlog))
        finally:
            await conn.close()
