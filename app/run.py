"""Process entry points: the embedded demo and the distributed feed, fanout and recorder.

Each coroutine runs until cancelled (SIGINT/SIGTERM) and raises
ServiceUnavailable, naming the service and address, when a backing service
cannot be reached at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from functools import partial
from typing import Any

from websockets.asyncio.server import Server

from app.files import replay_opener
from app.launch import build_source
from app.workers import (
    FEED,
    RELAY,
    Siblings,
    Slot,
    Supervisor,
    demo_worker_main,
    listed,
    run_workers,
    worker_count,
)
from bus.consolidator import Consolidator
from bus.kafka import ensure_topics
from bus.kafka_publish import ReliablePublisher
from bus.local import InProcessBus, MemorySnapshots, SnapshotStore
from bus.output import FeedOutput
from bus.redis_store import RedisSnapshots
from bus.relay import HIGH_WATER as RELAY_HIGH_WATER
from bus.relay import Relay
from fanout.node import FanoutNode, run_source
from fanout.sources import bus_source, kafka_source, relay_source
from hub.config import LIVE_SOURCES, HubConfig
from hub.db import redact_dsn
from hub.ops import bound_port, serve_ops
from recorder.service import Recorder

log = logging.getLogger("hub")
LISTED_WAIT_S = 10.0
"""Longest the demo waits for its feed's first instrument before it says it runs."""
JOIN_WAIT_S = 5.0
"""Longest a fanout worker behind Kafka waits, before joining its port, for its node to
know every stream the snapshot store lists (from events on Kafka)."""
DEMO_HIGH_WATER = 1_000
"""Events the embedded node may hold unread before a self-paced source waits for it
(about 0.15 s of the demo's flow at ten times its default rate: a saturated node's
standing queue, so its added latency; 5,000 measured p50 0.4-0.9 s at 10x)."""


def announce(lines: list[str]) -> None:
    """Print what a person should open, on stdout, and flush at once."""
    for line in lines:
        print(line)
    sys.stdout.flush()


async def _gather(*coros: Coroutine[Any, Any, None]) -> None:
    """Run tasks until one fails or all are cancelled; cancel the rest either way."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


async def run_demo(cfg: HubConfig) -> None:
    """Feed, book core, in-process bus and fanout (WebSocket + page) in one process; with
    ``fanout.workers`` other than 1, the fanout in that many worker processes."""
    # A source that sets its own pace (simulator, file replay) slows to what the node
    # takes rather than queueing seconds of stale data; a live venue cannot be slowed.
    self_paced = cfg.feed.source not in LIVE_SOURCES
    workers = worker_count(cfg.fanout.workers)
    if workers > 1:
        await _demo_workers(cfg, workers, self_paced)
        return
    bus = InProcessBus(high_water=DEMO_HIGH_WATER if self_paced else 0)
    store = MemorySnapshots()
    source = build_source(cfg.feed, bus, store, cfg.orders)
    node = _demo_node(cfg, store)
    server = await node.start()
    announce = partial(_announce_demo, cfg, source.description, bound_port(server))
    try:
        await _gather(
            run_source(node, lambda n: bus_source(n, bus)),
            source.run(),
            _once_listed(store, announce),
        )
    finally:
        await node.stop()


async def _until(check: Callable[[], Awaitable[bool]], bound_s: float, every_s: float) -> None:
    """Return once ``check()`` is true, or after ``bound_s`` (polled every ``every_s``)."""
    deadline = time.monotonic() + bound_s
    while not await check() and time.monotonic() < deadline:  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(every_s)


async def _once_listed(store: SnapshotStore, then: Callable[[], None]) -> None:
    """``then()`` once the feed has stored its first instrument, or after
    ``LISTED_WAIT_S`` (a live venue that does not answer): a client that connects when
    the demo says it runs finds the streams listed rather than none."""

    async def listed() -> bool:
        return bool(await store.instruments())

    await _until(listed, LISTED_WAIT_S, 0.01)
    then()


def _demo_node(cfg: HubConfig, store: SnapshotStore, name: str = "") -> FanoutNode:
    # The embedded demo is the one place anonymous access is on by default; it has no
    # recorder, so the node makes its candles from the trades itself.
    fanout = cfg.fanout if cfg.fanout.keys else replace(cfg.fanout, anonymous=True)
    if name:
        fanout = replace(fanout, group=name)
    dsn = cfg.postgres.dsn if cfg.fanout.database else ""
    node = FanoutNode(fanout, store, bars_from_trades=True, dsn=dsn)
    node.replays.opener = replay_opener(fanout)
    return node


def _announce_demo(cfg: HubConfig, description: str, port: int, workers: int = 1) -> None:
    base = f"http://{cfg.fanout.host}:{port}"
    every = " (every process, labelled worker)" if workers > 1 else ""
    announce(
        [
            f"hub demo running: {description}",
            *([f"  fanout        {workers} worker processes on one port"] if workers > 1 else []),
            f"  live page     {base}/",
            f"  WebSocket API ws://{cfg.fanout.host}:{port}/ws",
            f"  metrics       {base}/metrics{every}",
            f"  health        {base}/healthz",
            "press Ctrl-C to stop",
        ]
    )


async def _demo_workers(cfg: HubConfig, workers: int, self_paced: bool) -> None:
    """The demo's feed here, its fanout in ``workers`` processes fed by the relay."""
    supervisor = Supervisor(cfg, workers, demo_worker_main, "demo")
    relay = Relay(supervisor.rundir / RELAY, high_water=RELAY_HIGH_WATER if self_paced else 0)
    ops = None
    try:
        source = build_source(cfg.feed, relay, relay, cfg.orders)
        await relay.start()
        # The feed's own /metrics and /healthz, which every worker adds to the port's.
        ops = await serve_ops("127.0.0.1", 0, source.health)
        listed(supervisor.rundir, FEED, {"ops_port": bound_port(ops)})
        await supervisor.start()
        announce = partial(_announce_demo, cfg, source.description, supervisor.port, workers)
        await _gather(supervisor.watch(), source.run(), _once_listed(relay.store, announce))
    finally:
        await supervisor.stop()
        await relay.stop()
        if ops is not None:
            ops.close()


async def run_demo_worker(cfg: HubConfig, slot: Slot) -> None:
    """One fanout worker of ``hub demo --workers``: a demo node fed by the feed's relay."""
    replica, held = MemorySnapshots(), asyncio.Event()
    node = _demo_node(cfg, replica, f"{cfg.fanout.group or 'demo'}-w{slot.index}")
    await _serve_worker_node(
        node,
        slot,
        run_source(node, lambda n: relay_source(n, slot.relay, replica, held)),
        held.wait(),
    )


async def _serve_worker_node(
    node: FanoutNode,
    slot: Slot,
    source: Coroutine[Any, Any, None],
    known: Coroutine[Any, Any, Any],
) -> None:
    """Run a worker's source; join the shared port once ``known`` returns (its node knows
    the streams) and serve until the source ends. The kernel hands a new connection to
    any listening worker: one that joined still empty would tell a client the port
    carries nothing."""
    task = asyncio.create_task(source)
    ops = None
    try:
        waiting = asyncio.create_task(known)
        await asyncio.wait([task, waiting], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if task.done():
            await task  # the source failed first: say why
        await node.start(reuse_port=True)
        ops = await _join_port(node, slot)
        await task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task  # its own clean-up (the consumer's, the relay connection's) first
        if ops is not None:
            ops.close()
        await node.stop()


async def _knows_stored_streams(node: FanoutNode, store: SnapshotStore) -> None:
    """Return once ``node`` has a stream for every instrument in ``store``, or after
    ``JOIN_WAIT_S`` (the store may keep instruments of a feed that no longer runs)."""
    try:
        wanted = {(i.venue, i.symbol) for i in await store.instruments()}
    except Exception as exc:  # the node reports the store on /healthz; join anyway
        log.warning("cannot read the stored instruments", extra={"error": repr(exc)})
        return

    async def known() -> bool:
        return wanted <= node.streams.keys()

    await _until(known, JOIN_WAIT_S, 0.05)


async def _join_port(node: FanoutNode, slot: Slot) -> Server:
    """A worker's own answers on a private port, for the sibling a scrape of the shared
    port hits; the port-wide answers through its siblings."""

    def health() -> dict[str, Any]:
        return {**node.health(), "pid": os.getpid()}

    ops = await serve_ops("127.0.0.1", 0, health)
    siblings = Siblings(slot)
    node.ops_hook = lambda path: siblings.answer(path, health())
    slot.ready(bound_port(ops))
    return ops


async def run_feed(cfg: HubConfig) -> None:
    """A feed source (simulator, live venue or replay) publishing to Kafka, snapshots in Redis."""
    store = RedisSnapshots(cfg.redis.url, cfg.redis.key_prefix)
    publisher = ReliablePublisher(cfg.kafka)
    try:
        # The source first: a bad source setting stops us before any connection is made.
        source = build_source(cfg.feed, publisher, store, cfg.orders, cfg.postgres.dsn, cfg.kafka)
        await store.check()
        await ensure_topics(cfg.kafka)
        await publisher.start()

        def health() -> dict[str, Any]:
            status = source.health()
            kafka = publisher.health()
            return {**status, "ok": status.get("ok", True) and kafka["ok"], "kafka": kafka}

        ops = await serve_ops(cfg.feed.metrics_host, cfg.feed.metrics_port, health)
        announce(
            [
                f"hub feed: {source.description}",
                f"  publishing to Kafka {cfg.kafka.bootstrap}, snapshots to {cfg.redis.url}",
                f"  metrics http://{cfg.feed.metrics_host}:{bound_port(ops)}/metrics",
            ]
        )
        try:
            await source.run()
        finally:
            ops.close()
    finally:
        await publisher.stop()
        await store.close()


async def run_fanout(cfg: HubConfig, slot: Slot | None = None) -> None:
    """A fanout node consuming Kafka and joining books from Redis snapshots; with
    ``fanout.workers`` other than 1, the supervisor of that many (app.workers), and with
    ``slot``, one of them."""
    workers = worker_count(cfg.fanout.workers)
    if slot is None and workers > 1:
        await run_workers(cfg, workers)
        return
    store = RedisSnapshots(cfg.redis.url, cfg.redis.key_prefix)
    await store.check()
    await ensure_topics(cfg.kafka)
    fanout = cfg.fanout
    if slot is not None:
        fanout = replace(fanout, group=f"{fanout.group or 'fanout'}-w{slot.index}")
    node = FanoutNode(fanout, store, dsn=cfg.postgres.dsn if cfg.fanout.database else "")
    node.replays.opener = replay_opener(fanout)
    source = run_source(node, lambda n: kafka_source(n, cfg.kafka))
    try:
        if slot is not None:
            await _serve_worker_node(node, slot, source, _knows_stored_streams(node, store))
            return
        port = bound_port(await node.start())
        announce(
            [
                f"hub fanout {node.name} serving ws://{cfg.fanout.host}:{port}/ws",
                f"  live page http://{cfg.fanout.host}:{port}/",
                f"  metrics   http://{cfg.fanout.host}:{port}/metrics",
            ]
        )
        try:
            await source
        finally:
            await node.stop()
    finally:
        source.close()  # never awaited when the worker stopped before its source ran
        await store.close()


async def run_consolidator(cfg: HubConfig, symbols: tuple[str, ...] = ()) -> None:
    """Consolidated books (bus.consolidator) of the venue streams on Kafka, published back
    to it, snapshots in Redis; ``symbols``: the canonical ids (none: every one)."""
    store = RedisSnapshots(cfg.redis.url, cfg.redis.key_prefix)
    publisher = ReliablePublisher(cfg.kafka)
    try:
        await store.check()
        await ensure_topics(cfg.kafka)
        await publisher.start()
        output = FeedOutput(publisher, store, measure_latency=False)
        consolidator = Consolidator(output, store, symbols)

        def health() -> dict[str, Any]:
            kafka = publisher.health()
            return {"ok": kafka["ok"], **consolidator.health(), "kafka": kafka}

        c = cfg.consolidate
        ops = await serve_ops(c.metrics_host, c.metrics_port, health)
        announce(
            [
                f"hub consolidate: {', '.join(symbols) or 'every canonical id'} across venues",
                f"  reading and publishing Kafka {cfg.kafka.bootstrap}, snapshots {cfg.redis.url}",
                f"  metrics http://{c.metrics_host}:{bound_port(ops)}/metrics",
            ]
        )
        try:
            await consolidator.run_kafka(cfg.kafka)
        finally:
            ops.close()
    finally:
        await publisher.stop()
        await store.close()


async def run_recorder(cfg: HubConfig) -> None:
    """Kafka trades into TimescaleDB."""
    await ensure_topics(cfg.kafka)
    recorder = Recorder(cfg)
    await recorder.start()
    ops = await serve_ops(cfg.recorder.metrics_host, cfg.recorder.metrics_port, recorder.health)
    announce(
        [
            f"hub recorder writing to {redact_dsn(cfg.postgres.dsn)}",
            f"  metrics http://{cfg.recorder.metrics_host}:{bound_port(ops)}/metrics",
        ]
    )
    try:
        await recorder.run()
    finally:
        ops.close()
