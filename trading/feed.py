"""The simulated exchange without traders (``feed.source = sim``, orders off): its order
flow paced at ``feed.rate`` and published through the hub's one publishing path,
``bus.output.FeedOutput``.

With order entry on, the order path (``trading/gateway.py``) runs the same exchanges and
publishes through a ``FeedOutput`` too; both start the same way (``publish_start``) and
pace the flow the same way (``paced_target``), so the two differ only in what drives the
engines, never in what the public sees of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from bus.local import Publisher, SnapshotStore
from bus.output import FeedOutput
from hub.config import FeedConfig
from hub.events import Event, new_epoch
from hub.ops import metrics
from trading.simulator import SimulatedExchange

METRICS = metrics("feed")

log = logging.getLogger("hub.feed")

ORDERS = Counter("hub_feed_orders_total", "Simulated orders executed", ["symbol"], registry=METRICS)
SEQ = Gauge("hub_feed_book_seq", "Last book seq published", ["venue", "symbol"], registry=METRICS)
PUBLISH_SECONDS = Histogram(
    "hub_feed_publish_seconds",
    "Time to publish one batch until acknowledged",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=METRICS,
)

STEP_INTERVAL = 0.01
MAX_BATCH = 2000
"""Most simulated orders per symbol in one batch (the order path's ``Sim`` commands too)."""


async def publish_start(output: FeedOutput, exchanges: Iterable[SimulatedExchange]) -> None:
    """Announce each symbol's instrument and store its book as it stands now (empty, or as
    a checkpoint restored it), before any event of it is published; each exchange learns
    its stream's epoch (its trade ids name it)."""
    xs = list(exchanges)
    await output.publish([x.instrument for x in xs])
    for x in xs:
        output.prime(x.snapshot())
        x.epoch = output.streams[x.instrument.venue, x.instrument.symbol].epoch
    await output.store_snapshots()


async def continued_epoch(
    checkpoint: dict[str, Any] | None,
    replays: bool,
    journal: Path | None,
    output: FeedOutput,
    exchanges: Iterable[SimulatedExchange],
) -> int:
    """The epoch of the order path's public streams: it continues them exactly, so a
    restart keeps the one its checkpoint or log was written under: the checkpoint's, else
    the one a file ``journal`` keeps beside it (``<journal>.epoch``), else the one of its
    books in the snapshot store (a Kafka log). A fresh log (no checkpoint, nothing to
    ``replay``), or one whose epoch is nowhere to be found, starts a new one."""
    continued = checkpoint is not None or replays
    saved = checkpoint["state"].get("epoch") if checkpoint is not None else None
    path = None if journal is None else journal.with_name(journal.name + ".epoch")
    if not isinstance(saved, int) and continued and path is not None and path.exists():
        text = path.read_text().strip()
        saved = int(text) if text.isdigit() else None
    if not isinstance(saved, int) and continued:
        saved = await _stored_epoch(output, exchanges)
    epoch = saved if isinstance(saved, int) and saved > 0 and continued else new_epoch()
    if path is not None:
        path.write_text(f"{epoch}\n")
    return epoch


async def _stored_epoch(output: FeedOutput, exchanges: Iterable[SimulatedExchange]) -> int | None:
    """The epoch of the exchanges' books in the snapshot store (None: none, or several)."""
    epochs = set()
    for x in exchanges:
        try:
            snap = await output.snapshots.get(x.instrument.venue, x.instrument.symbol)
        except Exception as exc:
            log.warning("snapshot store unreadable: a new epoch", extra={"error": repr(exc)})
            return None
        if snap is not None and snap.epoch > 0:
            epochs.add(snap.epoch)
    return epochs.pop() if len(epochs) == 1 else None


def paced_target(elapsed: float, rate: float, max_orders: int) -> int:
    """Orders per symbol the simulated flow should have generated after ``elapsed`` seconds
    at ``rate`` per second (0: as fast as possible), capped at ``max_orders`` (0: none)."""
    limit = max_orders or (1 << 62)
    if rate <= 0:
        return limit
    return min(limit, int(elapsed * rate))


class Feed:
    """Paces the simulated exchanges and publishes their events."""

    def __init__(self, cfg: FeedConfig, publisher: Publisher, snapshots: SnapshotStore) -> None:
        self.cfg = cfg
        self.output = FeedOutput(publisher, snapshots, measure_latency=False)
        self.exchanges = {s: SimulatedExchange(cfg.venue, s, cfg.seed) for s in cfg.symbols}
        self.done = asyncio.Event()

    def health(self) -> dict[str, object]:
        return {
            "ok": True,
            "published": self.output.published,
            "snapshot_errors": self.output.snapshot_errors,
            "streams": {
                s: {"book_seq": x.book_seq, "trade_seq": x.trade_seq, "orders": x.orders}
                for s, x in self.exchanges.items()
            },
        }

    async def _publish(self, events: list[Event]) -> None:
        started = time.perf_counter()
        await self.output.publish(events)
        PUBLISH_SECONDS.observe(time.perf_counter() - started)

    async def _store_snapshots(self) -> None:
        for x in self.exchanges.values():
            SEQ.labels(x.instrument.venue, x.instrument.symbol).set(x.book_seq)
        await self.output.store_snapshots()

    async def run(self) -> None:
        """Run until cancelled; with ``max_orders`` set, stop generating after that many."""
        await publish_start(self.output, self.exchanges.values())
        log.info(
            "feed started",
            extra={
                "venue": self.cfg.venue,
                "symbols": list(self.exchanges),
                "rate": self.cfg.rate,
                "seed": self.cfg.seed,
            },
        )
        try:
            await self._run_paced()
        finally:  # a stop stores the books as last published, not as the last interval saw them
            await self._store_snapshots()

    async def _run_paced(self) -> None:
        started = time.monotonic()
        last_snapshot = started
        while True:
            now = time.monotonic()
            target = paced_target(now - started, self.cfg.rate, self.cfg.max_orders)
            batch: list[Event] = []
            for symbol, x in self.exchanges.items():
                n = max(0, min(target - x.orders, MAX_BATCH))
                for _ in range(n):
                    batch += x.step(time.time_ns())
                ORDERS.labels(symbol).inc(n)
            if batch:
                await self._publish(batch)
            if now - last_snapshot >= self.cfg.snapshot_interval_ms / 1000:
                await self._store_snapshots()
                last_snapshot = now
            if self._finished() and not self.done.is_set():
                await self._store_snapshots()
                log.info(
                    "max_orders reached; books are final", extra={"orders": self.cfg.max_orders}
                )
                self.done.set()
            await asyncio.sleep(STEP_INTERVAL if batch or self._finished() else 0.001)

    def _finished(self) -> bool:
        return self.cfg.max_orders > 0 and all(
            x.orders >= self.cfg.max_orders for x in self.exchanges.values()
        )
