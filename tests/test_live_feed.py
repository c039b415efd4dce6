"""``hub feed --source kraken`` as a real process against a local mock Kraken, publishing to
the real Kafka (Tansu) and Redis: a dropped connection becomes stale → resynced status
events in the stream, the published updates stay gap-free and rebuild the venue's book,
Redis holds that book at the last seq, and /metrics counts per venue and symbol."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.request
from typing import Any

import pytest
import redis

from bus.kafka import consumer, start_consumer
from bus.redis_store import RedisSnapshots
from hub.config import KafkaConfig
from hub.events import BookSnapshot, BookUpdate, Instrument, Status, decode
from orderbook_core import L2Book
from orderbook_core.types import F_SNAPSHOT
from testing.mock_venue import MockKrakenV2
from tests.conftest import CAPTURES, stack_env

pytestmark = pytest.mark.services
CAPTURE = CAPTURES / "kraken-v2-book10_BTC-USD_2023-08.jsonl.zst"


class VenueThread:
    """Runs a mock venue on its own event loop, beside the synchronous test."""

    def __init__(self, venue: MockKrakenV2) -> None:
        self.venue = venue
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def start(self) -> int:
        return asyncio.run_coroutine_threadsafe(self.venue.start(), self.loop).result(10)

    def wait_done(self, timeout: float) -> None:
        async def wait() -> None:
            await asyncio.wait_for(self.venue.done.wait(), timeout)

        asyncio.run_coroutine_threadsafe(wait(), self.loop).result(timeout + 1)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.venue.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def read_stream(bootstrap: str, topic: str, want: list[tuple[int, int]]) -> dict[str, Any]:
    """Rebuild BTC/USD from the book topic until it equals ``want`` (bids+asks as one list)."""
    c = consumer(KafkaConfig(bootstrap=bootstrap), topic, group=None)
    await start_consumer(KafkaConfig(bootstrap=bootstrap), c)
    book, seqs, states, flagged = L2Book(), [], [], []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    e = decode(r.value)
                    if isinstance(e, BookUpdate):
                        seqs.append(e.seq)
                        book.apply(e.changes)
                        if e.flags & F_SNAPSHOT:
                            flagged.append(e.seq)
                    elif isinstance(e, Status):
                        states.append(e.state)
            bids, asks = book.snapshot()
            if bids + asks == want and "resynced" in states:
                break
    finally:
        await c.stop()
    return {"book": book.snapshot(), "seqs": seqs, "states": states, "flagged": flagged}


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if m and ",".join(sorted(m.group(1).split(","))) == want:
            return float(m.group(2))
    raise AssertionError(f"{name}{{{want}}} not in /metrics")


def test_live_kraken_feed_through_kafka_and_redis(
    hub_process: Any, unique: str, services: dict[str, str]
) -> None:
    venue = MockKrakenV2(CAPTURE, drop_after=150, skip_while_away=40)
    thread = VenueThread(venue)
    port = thread.start()
    env = {
        **stack_env(services, unique),
        "HUB_FEED__SNAPSHOT_INTERVAL_MS": "50",
    }
    try:
        feed = hub_process(
            "feed",
            "--source",
            "kraken",
            "--url",
            f"ws://127.0.0.1:{port}",
            "--symbols",
            "BTC/USD",
            "--metrics-port",
            "0",
            env=env,
        )
        metrics_port = int(feed.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics").group(1))
        thread.wait_done(60)
        truth = venue.truth.books["BTC/USD"].book.snapshot()
        seen = asyncio.run(read_stream(services["kafka"], f"{unique}.book", truth[0] + truth[1]))
        ops = f"http://127.0.0.1:{metrics_port}"
        text = urllib.request.urlopen(f"{ops}/metrics").read().decode()
        health = urllib.request.urlopen(f"{ops}/healthz").read()
    finally:
        thread.stop()

    assert seen["book"] == truth
    assert seen["seqs"] == list(range(1, len(seen["seqs"]) + 1)), "published updates gap-free"
    assert seen["states"] == ["stale", "resynced"]
    assert len(seen["flagged"]) == 2 and seen["flagged"][0] == 1  # first sync and the resync

    r = redis.Redis.from_url(services["redis"])
    deadline = time.monotonic() + 10
    while True:
        raw = r.get(f"{unique}:book:KRAKEN:BTC/USD")
        snap = decode(raw) if isinstance(raw, bytes) else None
        if isinstance(snap, BookSnapshot) and snap.seq == seen["seqs"][-1]:
            break
        assert time.monotonic() < deadline, f"Redis snapshot stuck at {snap}"
        time.sleep(0.1)
    assert (list(snap.bids), list(snap.asks)) == truth
    inst = asyncio.run(_instruments(services["redis"], unique))
    assert inst == [
        Instrument(
            "KRAKEN", "BTC/USD", "0.1", "0.00000001", "BTC-USD", "spot", "BTC", "USD"
        )  # the pair's canonical listing rides on its Instrument event
    ]

    labels = {"venue": "KRAKEN", "symbol": "BTC/USD"}
    assert metric(text, "hub_feed_connections_total", venue="KRAKEN") == 2
    assert metric(text, "hub_feed_checksums_ok_total", **labels) > 400
    assert metric(text, "hub_feed_checksums_failed_total", **labels) == 0
    assert metric(text, "hub_feed_resyncs_total", **labels) == 1
    assert metric(text, "hub_feed_book_live", **labels) == 1
    assert metric(text, "hub_feed_events_total", kind="status", **labels) == 2
    assert metric(text, "hub_feed_events_total", kind="book", **labels) == len(seen["seqs"])
    assert 0 <= metric(text, "hub_feed_snapshot_age_seconds", **labels) < 120
    assert b'"status":"resynced"' in health


async def _instruments(url: str, prefix: str) -> list[Instrument]:
    store = RedisSnapshots(url, prefix)
    try:
        return await store.instruments()
    finally:
        await store.close()
