"""The recorder: Kafka trades, books and instruments → TimescaleDB, each stored once.

A consumer group reads the trades, instruments, bbo and depth topics; each
batch is written in one transaction (binary COPY into a staging table, then
INSERT ... ON CONFLICT DO NOTHING), and Kafka offsets are committed only
after that transaction commits. A crash between the two re-delivers the
batch, which the unique keys turn into a no-op. Undecodable or impossible
messages go to dead_letters. While the database is unreachable (a retriable
error, hub.db) the recorder stops fetching (backpressure) and retries the
same batch with backoff; any other error stops it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import Counter, Gauge, Histogram

from bus.kafka import KafkaPublisher, consumer, start_consumer, topic_names
from hub.backoff import Backoff
from hub.config import HubConfig
from hub.db import connect_async, postgres_errors
from hub.errors import BadMessage, HubError, ServiceUnavailable
from hub.events import EVENT_TYPES, Bar, BookSnapshot, Event, Instrument, TopOfBook, Trade, decode
from hub.ops import metrics, runs
from recorder import retention
from recorder.retention import Retention, set_up
from recorder.units import Announced
from recorder.writer import DeadLetter, StoredSeqs, trade_problem, write_batch

METRICS = metrics("recorder")

log = logging.getLogger("hub.recorder")

RECORDED: tuple[type[Event], ...] = (Trade, Instrument, TopOfBook, BookSnapshot)
"""The events stored; the recorder reads their topics (the event table's)."""

ROWS = Counter(
    "hub_recorder_rows_total", "Rows written (after dedupe)", ["table"], registry=METRICS
)
RECEIVED = Counter("hub_recorder_messages_total", "Messages consumed", ["kind"], registry=METRICS)
BAD = Counter(
    "hub_recorder_bad_messages_total",
    "Messages kept in dead_letters (undecodable or impossible values)",
    registry=METRICS,
)
BATCH = Histogram(
    "hub_recorder_batch_size",
    "Messages per database transaction",
    buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000),
    registry=METRICS,
)
COMMIT_SECONDS = Histogram(
    "hub_recorder_commit_seconds",
    "Database transaction time",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
    registry=METRICS,
)
PATHS = Counter(
    "hub_recorder_trade_batches_total",
    "Trade batches written, by path (fast: COPY straight into trades; careful: staged and"
    " deduplicated on the unique key)",
    ["path"],
    registry=METRICS,
)
RETRIES = Counter(
    "hub_recorder_retries_total", "Batch writes retried after a database error", registry=METRICS
)
BARS = Counter(
    "hub_recorder_bars_published_total", "Bars published back to Kafka, as stored", registry=METRICS
)
DB_UP = Gauge(
    "hub_recorder_database_up", "1 when the last database write succeeded", registry=METRICS
)
LAG = Gauge(
    "hub_recorder_consumer_lag",
    "Messages in the partition after the group's committed offset: not yet stored",
    ["topic", "partition"],
    registry=METRICS,
)

LAG_EVERY_S = 2.0


def announced(inst: Instrument, timestamp_ms: int | None, now_ns: int) -> Announced:
    """The instrument with the time its Kafka record was published (now if it has none):
    how the unit versions tell a re-read announcement from news (recorder/units.py)."""
    return Announced(
        inst, timestamp_ms * 1_000_000 if timestamp_ms and timestamp_ms > 0 else now_ns
    )


class Recorder:
    """Consume, write, then commit; retry the same batch while the database is down."""

    def __init__(self, cfg: HubConfig) -> None:
        runs("recorder")
        self.cfg = cfg
        self._conn: asyncpg.Connection | None = None
        self._consumer: Any = None
        self.db_ok = False
        self.written = 0
        self.seqs = StoredSeqs()
        self.last_error: str | None = None
        self.lag: dict[tuple[str, int], int] = {}
        self.stored: dict[tuple[str, int], int] = {}
        """Per partition: the offset after the last message stored (written and committed)."""
        self.retention = Retention(0, "apache")
        self._bars: KafkaPublisher | None = None

    def health(self) -> dict[str, Any]:
        lag = sum(self.lag.values())
        lagging = lag > self.cfg.recorder.max_lag
        return {
            "ok": self.db_ok and not lagging,
            "database": "up" if self.db_ok else "down",
            "lagging": lagging,
            "rows_written": self.written,
            "last_error": self.last_error,
            "consumer_lag": lag,
            "retention": {"days": self.retention.days, "edition": self.retention.edition},
        }

    async def _measure_lag(self) -> None:
        """Every 2 s, per partition: the broker's end offset minus the group's committed
        offset, i.e. the messages not yet stored (it keeps counting while a database outage
        holds a batch back)."""
        c = self._consumer
        while True:
            await asyncio.sleep(LAG_EVERY_S)
            tps = list(c.assignment())
            if not tps:
                continue
            try:
                ends = await c.end_offsets(tps)
            except KafkaError as exc:
                log.warning("consumer lag not measured", extra={"error": repr(exc)})
                continue
            for tp in tps:
                stored = self.stored.get((tp.topic, tp.partition))
                if stored is None:
                    try:
                        stored = await asyncio.wait_for(c.committed(tp), 2.0) or 0
                    except (KafkaError, TimeoutError) as exc:
                        log.warning("consumer lag not measured", extra={"error": repr(exc)})
                        continue
                lag = max(0, ends[tp] - stored)
                self.lag[tp.topic, tp.partition] = lag
                LAG.labels(tp.topic, str(tp.partition)).set(lag)

    async def _write_with_retry(
        self,
        conn: asyncpg.Connection | None,
        trades: list[Trade],
        instruments: list[Announced],
        dead: list[DeadLetter],
        tops: list[TopOfBook],
        snaps: list[BookSnapshot],
        bars: list[Bar] | None,
    ) -> asyncpg.Connection:
        backoff = Backoff(0.2, 5.0, "spread")
        dsn = self.cfg.postgres.dsn
        while True:
            try:
                if conn is None or conn.is_closed():
                    conn = await connect_async(dsn)
                started = time.perf_counter()
                if bars is not None:
                    bars.clear()  # a failed attempt's bars were rolled back with it
                with postgres_errors(dsn):
                    fast = self.seqs.fast
                    new = await write_batch(
                        conn, trades, instruments, dead, tops, snaps, bars, self.seqs
                    )
                if trades:
                    PATHS.labels("fast" if self.seqs.fast > fast else "careful").inc()
                COMMIT_SECONDS.observe(time.perf_counter() - started)
                ROWS.labels("trades").inc(new)
                self.written += new
                self.db_ok = True
                DB_UP.set(1)
                return conn
            except HubError as exc:
                if not exc.retriable:
                    raise
                self.db_ok = False
                DB_UP.set(0)
                self.last_error = str(exc) or type(exc).__name__
                RETRIES.inc()
                log.warning(
                    "database write failed; retrying the same batch",
                    extra={"error": self.last_error, "retry_in": round(backoff.delay, 2)},
                )
                if conn is not None and not conn.is_closed():
                    conn.terminate()
                conn = None
                await backoff.wait()

    async def _publish_bars(self, bars: list[Bar]) -> None:
        """Send the batch's bars, as stored, to ``<prefix>.bars`` before its offsets are
        committed: a crash in between re-delivers the trades, which change nothing and
        republish the bars they fall in, as stored. While Kafka refuses, consumption waits."""
        assert self._bars is not None
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                await self._bars.publish(bars)
                BARS.inc(len(bars))
                return
            except HubError as exc:
                if not exc.retriable:
                    raise
                RETRIES.inc()
                log.warning(
                    "publishing bars failed; retrying",
                    extra={"error": str(exc), "retry_in": round(backoff.delay, 2)},
                )
                await backoff.wait()

    async def start(self) -> None:
        """Connect to PostgreSQL and join the consumer group (ServiceUnavailable if not)."""
        rcfg, kcfg = self.cfg.recorder, self.cfg.kafka
        self._conn = await connect_async(self.cfg.postgres.dsn)
        with postgres_errors(self.cfg.postgres.dsn):
            self.retention = await set_up(self._conn, rcfg.retention_days)
        self.db_ok = True
        DB_UP.set(1)
        topics = topic_names(kcfg)
        self._consumer = consumer(
            kcfg,
            *dict.fromkeys(topics[EVENT_TYPES[cls].topic] for cls in RECORDED),
            group=rcfg.group,
            max_poll_interval_ms=600_000,
        )
        try:
            if rcfg.publish_bars:
                self._bars = KafkaPublisher(kcfg)
                await self._bars.start()
            await start_consumer(kcfg, self._consumer, group=rcfg.group)
        except ServiceUnavailable:
            await self._conn.close()
            if self._bars is not None:
                await self._bars.stop()
            raise
        log.info("recorder started", extra={"group": rcfg.group, "topics": list(topics.values())})

    async def run(self) -> None:
        """Consume and write until cancelled; call ``start`` first."""
        rcfg = self.cfg.recorder
        conn: asyncpg.Connection | None = self._conn
        c = self._consumer
        dropper = asyncio.create_task(retention.run(self.cfg.postgres.dsn, self.retention))
        lag = asyncio.create_task(self._measure_lag())
        try:
            while True:
                records = await c.getmany(timeout_ms=rcfg.flush_ms, max_records=rcfg.batch_size)
                got: dict[type, list[Any]] = {cls: [] for cls in RECORDED}
                dead: list[DeadLetter] = []
                now_ns = time.time_ns()  # one clock read per batch for the future-time check
                for batch in records.values():
                    for record in batch:
                        try:
                            event = decode(record.value)
                            problem = (
                                trade_problem(event, now_ns) if isinstance(event, Trade) else None
                            )
                        except BadMessage as exc:
                            event, problem = None, f"undecodable: {exc}"
                        if problem is not None:
                            BAD.inc()
                            dead.append(
                                DeadLetter(
                                    record.topic,
                                    record.partition,
                                    record.offset,
                                    problem,
                                    bytes(record.value or b""),
                                )
                            )
                            log.warning(
                                "message kept in dead_letters",
                                extra={
                                    "topic": record.topic,
                                    "partition": record.partition,
                                    "offset": record.offset,
                                    "reason": problem,
                                },
                            )
                            continue
                        kept = got.get(type(event))
                        if isinstance(event, Instrument):
                            got[Instrument].append(announced(event, record.timestamp, now_ns))
                        elif kept is not None:
                            kept.append(event)
                        RECEIVED.labels(type(event).__name__.lower()).inc()
                trades, instruments, tops, snaps = (got[cls] for cls in RECORDED)
                size = len(dead) + sum(map(len, got.values()))
                if not size:
                    continue
                BATCH.observe(size)
                bars: list[Bar] | None = [] if self._bars is not None else None
                conn = await self._write_with_retry(
                    conn, trades, instruments, dead, tops, snaps, bars
                )
                if bars:
                    await self._publish_bars(bars)
                for tp, batch in records.items():
                    if batch:
                        self.stored[tp.topic, tp.partition] = batch[-1].offset + 1
                try:
                    await c.commit()
                except (CommitFailedError, KafkaError) as exc:
                    # The rows are stored; the batch will come again and change nothing.
                    log.warning("offset commit failed after write", extra={"error": str(exc)})
        finally:
            dropper.cancel()
            lag.cancel()
            await c.stop()
            if self._bars is not None:
                await self._bars.stop()
            if conn is not None:
                await conn.close()
