"""One feed process, whatever its source: the simulator, the hub's own venue (the order
path, trading/), a live venue or a file replay.

``build_source`` turns ``[feed]`` (and ``[orders]``) configuration into a
``FeedSource``: a coroutine that runs until cancelled (a replay keeps serving
its final books after the file ends) and a health check. Every source
(simulator, live venue, replay) publishes through ``FeedOutput``, which also
stores each book's snapshot every ``snapshot_interval_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from bus.local import Publisher, SnapshotStore
from bus.output import FEED_STATS, FeedOutput
from feedhandler.files.pacing import Pacer, TimeSlice
from feedhandler.files.sources import Source, batches_of
from feedhandler.venues import VENUES
from feedhandler.venues.base import instrument_from
from feedhandler.venues.runner import LiveRunner
from hub.config import LIVE_SOURCES, FeedConfig, KafkaConfig, OrdersConfig
from hub.errors import BadInput
from hub.events import Status
from hub.ops import metrics
from trading.feed import Feed

METRICS = metrics("feed")

log = logging.getLogger("hub.feed")
BAD_RECORDS = Counter(
    "hub_feed_bad_records_total",
    "Replay records skipped as malformed or inconsistent",
    ["source"],
    registry=METRICS,
)


@dataclass
class FeedSource:
    description: str
    run: Callable[[], Coroutine[Any, Any, None]]
    health: Callable[[], dict[str, Any]]


async def _snapshot_loop(output: FeedOutput, interval_ms: int) -> None:
    while True:
        await asyncio.sleep(interval_ms / 1000)
        await output.store_snapshots()


async def _with_snapshots(
    output: FeedOutput, cfg: FeedConfig, work: Coroutine[Any, Any, None]
) -> None:
    """Run ``work`` while storing snapshots; store the final ones when it ends."""
    snapshots = asyncio.create_task(_snapshot_loop(output, cfg.snapshot_interval_ms))
    try:
        await work
    finally:
        snapshots.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await snapshots
        await output.store_snapshots()


def build_source(
    cfg: FeedConfig,
    publisher: Publisher,
    store: SnapshotStore,
    orders: OrdersConfig | None = None,
    postgres_dsn: str = "",
    kafka: KafkaConfig | None = None,
) -> FeedSource:
    if orders is not None and orders.enabled:
        return _order_path(cfg, orders, publisher, store, postgres_dsn, kafka)
    if cfg.source == "sim":
        feed = Feed(cfg, publisher, store)
        return FeedSource(
            f"{', '.join(cfg.symbols)} on the simulated exchange", feed.run, feed.health
        )
    if cfg.source in LIVE_SOURCES:
        return _live(cfg, publisher, store)
    return _replay(cfg, publisher, store)


def _order_path(
    cfg: FeedConfig,
    orders: OrdersConfig,
    publisher: Publisher,
    store: SnapshotStore,
    postgres_dsn: str,
    kafka: KafkaConfig | None,
) -> FeedSource:
    """The simulated exchange as the hub's own venue: traders' orders and the simulated
    flow through risk, matching and the journal (trading/)."""
    from trading.gateway import OrderPath

    output = FeedOutput(publisher, store, measure_latency=False)
    dsn = postgres_dsn if orders.record else ""
    path = OrderPath(orders, cfg, output, postgres_dsn=dsn, kafka=kafka)
    log_text = f"log {path.journal.path}"
    return FeedSource(
        f"{', '.join(cfg.symbols)} on the hub's own venue; order entry "
        f"ws://{orders.host}:{orders.port}/orders, {log_text}",
        lambda: _with_snapshots(output, cfg, path.run()),
        lambda: {**path.health(), **output.health()},
    )


def _live(cfg: FeedConfig, publisher: Publisher, store: SnapshotStore) -> FeedSource:
    spec = VENUES[cfg.source]
    parser = spec.parser()
    output = FeedOutput(publisher, store, instrument_from(parser))
    symbols = list(cfg.symbols)
    runner = LiveRunner(
        parser,
        spec.ws_url(cfg.url or spec.url, symbols),
        symbols,
        output,
        rest=cfg.rest_url or spec.rest,
        lifetime=spec.lifetime,
    )
    FEED_STATS.add(runner)

    def health() -> dict[str, Any]:
        stale = runner.stale_for(time.monotonic())
        too_long = sorted(s for s, seconds in stale.items() if seconds >= cfg.stale_alarm_s)
        return {
            "ok": runner.connected and not too_long,
            "venue": spec.name,
            "connected": runner.connected,
            "connections": runner.connections,
            "stale": sorted(stale),
            "stale_too_long": too_long,
            **output.health(),
        }

    return FeedSource(
        f"{', '.join(symbols)} live from {spec.name} ({runner.url})",
        lambda: _with_snapshots(output, cfg, runner.run()),
        health,
    )


def _replay(cfg: FeedConfig, publisher: Publisher, store: SnapshotStore) -> FeedSource:
    path = Path(cfg.file)
    try:
        path.open("rb").close()  # a missing file stops the feed at start, not as one bad record
    except OSError as exc:
        raise BadInput(f"feed.file {path}: {exc.strerror or exc}") from exc
    bad = {"records": 0}  # a count, not the texts: a damaged file may hold millions

    def on_error(text: str) -> None:
        BAD_RECORDS.labels(cfg.source).inc()
        bad["records"] += 1
        if bad["records"] <= 20 or bad["records"] % 1000 == 0:
            log.warning("bad replay record skipped", extra={"file": str(path), "why": text[:200]})

    batches, instrument_for = batches_of(Source(cfg.source, path, cfg.file), cfg.symbols, on_error)
    output = FeedOutput(publisher, store, instrument_for, measure_latency=False)
    state = {"records": 0, "done": False}
    # An ITCH batch is ITCH_BATCH messages (a few ms of work): yield after each one; the
    # other formats' batches are one record each: yield every 2 ms of work.
    slicer = TimeSlice(every=1 if cfg.source == "itch" else 256)

    async def play() -> None:
        pacer = Pacer(cfg.speed)
        for ts, events in batches:
            state["records"] += 1
            wait = pacer.delay(ts)
            if wait > 0:
                await asyncio.sleep(wait)
            elif slicer.due():
                await asyncio.sleep(0)  # let HTTP, WebSocket, snapshots and consumers run
            await output.publish(events)
        ts = time.time_ns()
        await output.publish(
            [Status(v, s, "closed", "replay finished", ts, ts) for v, s in output.streams]
        )
        state["done"] = True
        log.info(
            "replay finished; books are final",
            extra={"file": str(path), "records": state["records"], "bad_records": bad["records"]},
        )

    async def run() -> None:
        await _with_snapshots(output, cfg, play())
        await asyncio.Event().wait()  # keep serving the final books until stopped

    def health() -> dict[str, Any]:
        return {
            "ok": True,
            "file": str(path),
            "records": state["records"],
            "finished": state["done"],
            "loop_yields": slicer.yields,
            "bad_records": bad["records"],
            **output.health(),
        }

    return FeedSource(f"replay of {path} ({cfg.source}, speed {cfg.speed})", run, health)
