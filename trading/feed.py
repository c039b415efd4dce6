"""The feed process: runs the simulated exchange and publishes what it produces.

Publishes every event through a ``Publisher`` (the in-process bus or Kafka)
and, after the events it covers are acknowledged, the latest snapshot of
each book to a ``SnapshotStore`` (memory or Redis).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from bus.local import Publisher, SnapshotStore
from bus.output import EVENTS, KINDS, TopTracker, publish_depth, top_levels
from hub.config import FeedConfig
from hub.events import BookUpdate, Event
from trading.simulator import SimulatedExchange

log = logging.getLogger("hub.feed")

ORDERS = Counter("hub_feed_orders_total", "Simulated orders executed", ["symbol"])
SEQ = Gauge("hub_feed_book_seq", "Last book seq published", ["venue", "symbol"])
PUBLISH_SECONDS = Histogram(
    "hub_feed_publish_seconds",
    "Time to publish one batch until acknowledged",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
SNAPSHOTS = Counter("hub_feed_snapshots_total", "Book snapshots stored")
SNAPSHOT_ERRORS = Counter("hub_feed_snapshot_errors_total", "Failed snapshot-store writes")

STEP_INTERVAL = 0.01
MAX_BATCH = 2000


class Feed:
    """Paces the simulated exchanges and publishes their events."""

    def __init__(self, cfg: FeedConfig, publisher: Publisher, snapshots: SnapshotStore) -> None:
        self.cfg = cfg
        self.publisher = publisher
        self.snapshots = snapshots
        self.exchanges = {s: SimulatedExchange(cfg.venue, s, cfg.seed) for s in cfg.symbols}
        self.published = 0
        self.done = asyncio.Event()
        self.tops = TopTracker()

    def health(self) -> dict[str, object]:
        return {
            "ok": True,
            "published": self.published,
            "streams": {
                s: {"book_seq": x.book_seq, "trade_seq": x.trade_seq, "orders": x.orders}
                for s, x in self.exchanges.items()
            },
        }

    async def _publish(self, events: list[Event]) -> None:
        started = time.perf_counter()
        await self.publisher.publish(events)
        PUBLISH_SECONDS.observe(time.perf_counter() - started)
        self.published += len(events)
        counts = collections.Counter((e.venue, e.symbol, KINDS[type(e)]) for e in events)
        for labels, n in counts.items():
            EVENTS.labels(*labels).inc(n)

    async def store_snapshots(self, exchanges: Iterable[SimulatedExchange]) -> None:
        """Store each book's snapshot; a store outage is logged and retried next interval."""
        depth = []
        for x in exchanges:
            SEQ.labels(x.instrument.venue, x.instrument.symbol).set(x.book_seq)
            snap = x.snapshot()
            depth.append(top_levels(snap))
            try:
                await self.snapshots.put(snap)
            except Exception as exc:
                SNAPSHOT_ERRORS.inc()
                log.warning(
                    "snapshot store write failed; books keep flowing, retry next interval",
                    extra={"symbol": x.instrument.symbol, "error": repr(exc)},
                )
                break
            SNAPSHOTS.inc()
        await publish_depth(self.publisher, depth)

    async def run(self) -> None:
        """Run until cancelled; with ``max_orders`` set, stop generating after that many."""
        instruments = [x.instrument for x in self.exchanges.values()]
        for inst in instruments:
            await self.snapshots.put_instrument(inst)
        await self.publisher.publish(instruments)
        await self.store_snapshots(self.exchanges.values())
        log.info(
            "feed started",
            extra={
                "venue": self.cfg.venue,
                "symbols": list(self.exchanges),
                "rate": self.cfg.rate,
                "seed": self.cfg.seed,
            },
        )
        started = time.monotonic()
        last_snapshot = started
        while True:
            now = time.monotonic()
            batch: list[Event] = []
            for symbol, x in self.exchanges.items():
                target = paced_target(now - started, self.cfg.rate, self.cfg.max_orders)
                n = min(target - x.orders, MAX_BATCH)
                for _ in range(max(0, n)):
                    events = x.step(time.time_ns())
                    batch.extend(events)
                    if events and isinstance(events[-1], BookUpdate):
                        top = self.tops.after(events[-1], x.engine.best_bid(), x.engine.best_ask())
                        if top is not None:
                            batch.append(top)
                ORDERS.labels(symbol).inc(max(0, n))
            if batch:
                await self._publish(batch)
            if now - last_snapshot >= self.cfg.snapshot_interval_ms / 1000:
                await self.store_snapshots(self.exchanges.values())
                last_snapshot = now
            if self._finished() and not self.done.is_set():
                await self.store_snapshots(self.exchanges.values())
                log.info(
                    "max_orders reached; books are final", extra={"orders": self.cfg.max_orders}
                )
                self.done.set()
            await asyncio.sleep(STEP_INTERVAL if batch or self._finished() else 0.001)

    def _finished(self) -> bool:
        return self.cfg.max_orders > 0 and all(
            x.orders >= self.cfg.max_orders for x in self.exchanges.values()
        )


def paced_target(elapsed: float, rate: float, max_orders: int) -> int:
    """Orders per symbol the simulated flow should have generated after ``elapsed`` seconds
    at ``rate`` per second (0: as fast as possible), capped at ``max_orders`` (0: none)."""
    limit = max_orders or (1 << 62)
    if rate <= 0:
        return limit
    return min(limit, int(elapsed * rate))
