"""Issue 14, defect 8: ``hub feed`` survives a Kafka broker restart.

A private Tansu broker (memory only: a restart loses every topic and message)
carries a real ``hub feed`` to a real ``hub fanout`` node, and a client with a
checksummed book reads from the node. The broker is SIGKILLed for longer than
the producer's own request timeout, then started again, empty, on the same port.
The feed must stay up, say so on /healthz (503 while the broker is gone, 200
after), buffer what it publishes meanwhile and send it when the broker is back
(the recreated topic holds a gap-free run of seqs up to the final one); the
client ends with the exact final book, every delta seq-checked and
checksum-verified. A second test fills a tiny publish buffer: messages are
dropped and counted, and the consumer still ends exact by resyncing.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from bus.kafka import consumer, start_consumer
from client.market import HubClient
from hub.config import KafkaConfig
from hub.events import BookSnapshot, BookUpdate, decode
from tests.conftest import stack_env
from tests.faults import PrivateBroker, health, metric, metric_sum

pytestmark = pytest.mark.services

SYMBOL = "BTC-USD"
RATE = 150


async def wait_until(check: Any, seconds: float, what: str) -> Any:
    """Poll ``check`` (sync, run in a thread) until it returns a true value."""
    deadline = time.monotonic() + seconds
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def topic_seqs(bootstrap: str, topic: str, last: int) -> list[int]:
    """Book seqs of SYMBOL in a topic, from its beginning until ``last`` is seen."""
    cfg = KafkaConfig(bootstrap=bootstrap)
    c = consumer(cfg, topic, group=None)
    await start_consumer(cfg, c)
    seqs: list[int] = []
    deadline = time.monotonic() + 20
    try:
        while last not in seqs and time.monotonic() < deadline:
            for records in (await c.getmany(timeout_ms=300)).values():
                for r in records:
                    e = decode(r.value)
                    if isinstance(e, BookUpdate) and e.symbol == SYMBOL:
                        seqs.append(e.seq)
    finally:
        await c.stop()
    return seqs


class Scenario:
    """Broker, node, feed and a reading client; the broker goes away for ``outage_s``."""

    def __init__(
        self, hub_process: Any, unique: str, services: dict[str, str], tmp_path: Path
    ) -> None:
        self.broker = PrivateBroker(tmp_path)
        self.unique = unique
        self.redis_url = services["redis"]
        self.env = {
            **stack_env(services, unique, kafka=self.broker.address),
            "HUB_KAFKA__PARTITIONS": "2",
            "HUB_FANOUT__ANONYMOUS": "true",
            "HUB_KAFKA__PUBLISH_TIMEOUT_MS": "1500",
            "HUB_KAFKA__RETRY_MAX_MS": "500",
        }
        self.hub_process = hub_process
        self.seen: list[str] = []

    def start(self, max_orders: int, **env: str) -> tuple[Any, int, str]:
        self.broker.start()
        node = self.hub_process("fanout", "--port", "0", env=self.env)
        port = node.wait_for(r"serving ws://127.0.0.1:(\d+)/ws").group(1)
        url = f"ws://127.0.0.1:{port}/ws"
        feed = self.hub_process(
            "feed",
            "--symbols",
            SYMBOL,
            "--seed",
            "5",
            "--rate",
            str(RATE),
            "--max-orders",
            str(max_orders),
            "--metrics-port",
            "0",
            env={**self.env, **env},
        )
        ops = int(feed.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics").group(1))
        return feed, ops, url

    async def client(self, url: str) -> HubClient:
        client = HubClient(url)
        deadline = time.monotonic() + 30
        while True:  # the node lists the stream once the feed's first events arrived
            await client.connect()
            if ("SIM", SYMBOL) in client.streams:
                break
            await client.close()
            assert time.monotonic() < deadline, "the node never listed the stream"
            await asyncio.sleep(0.3)
        answer = await client.subscribe([{"channel": "book", "symbol": SYMBOL, "checksum": True}])
        assert answer["refused"] == []
        return client

    async def read(self, client: HubClient) -> None:
        """Read for ever; a gap or checksum mismatch the node let through raises here."""
        async for msg in client.messages():
            self.seen.append(msg["type"])

    def final_snapshot(self, ops: int, max_orders: int) -> BookSnapshot:
        """The book once the feed generated every order, as it stored it in Redis."""
        r = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + 60
        while True:
            _, body = health(ops)
            stream = body["streams"][SYMBOL]
            raw = r.get(f"{self.unique}:book:SIM:{SYMBOL}")
            snap = decode(raw) if isinstance(raw, bytes) else None
            if (
                stream["orders"] >= max_orders
                and isinstance(snap, BookSnapshot)
                and snap.seq == stream["book_seq"]
            ):
                return snap
            assert time.monotonic() < deadline, f"the feed never finished: {body}"
            time.sleep(0.2)


async def through_outage(
    sc: Scenario, feed: Any, ops: int, url: str, outage_s: float, max_orders: int
) -> tuple[HubClient, BookSnapshot]:
    client = await sc.client(url)
    reader = asyncio.create_task(sc.read(client))
    book = client.books["SIM", SYMBOL]
    await wait_until(lambda: (book.seq or 0) > 50, 20, "the client's first updates")

    def feed_health() -> tuple[int, dict[str, Any]]:
        assert feed.proc.poll() is None, f"the feed exited:\n{feed.stderr()}"
        return health(ops)

    _, before = health(ops)
    assert before["streams"][SYMBOL]["orders"] < max_orders, "the flow ended before the kill"
    sc.broker.kill()
    killed = time.monotonic()
    _, down = await wait_until(
        lambda: (s := feed_health())[0] == 503 and s, 20, "/healthz to report the broker down"
    )
    assert down["ok"] is False and down["kafka"]["ok"] is False, down
    await asyncio.sleep(max(0.0, outage_s - (time.monotonic() - killed)))
    assert feed.proc.poll() is None, f"the feed exited while the broker was down:\n{feed.stderr()}"
    sc.broker.start()
    await wait_until(lambda: feed_health()[0] == 200, 30, "/healthz to be ok again")

    final = await asyncio.to_thread(sc.final_snapshot, ops, max_orders)
    deadline = time.monotonic() + 30
    while book.seq != final.seq:
        assert not reader.done(), reader
        assert time.monotonic() < deadline, f"client stuck at {book.seq}, final {final.seq}"
        await asyncio.sleep(0.1)
    assert not reader.done(), reader
    reader.cancel()
    await client.close()
    return client, final


def test_feed_survives_broker_restart_and_loses_nothing(
    hub_process: Any, unique: str, services: dict[str, str], tmp_path: Path
) -> None:
    sc = Scenario(hub_process, unique, services, tmp_path)
    max_orders = RATE * 30  # generation outlasts the outage and the recovery
    try:
        feed, ops, url = sc.start(max_orders)
        # Longer than the producer's 15 s request timeout, which killed the feed before.
        client, final = asyncio.run(through_outage(sc, feed, ops, url, 17, max_orders))
        book = client.books["SIM", SYMBOL]
        assert book.depth(0) == list(final.bids) and book.depth(1) == list(final.asks)
        assert book.checksums > 100  # every delta on the way was verified
        assert feed.proc.poll() is None, feed.stderr()

        assert metric(ops, "hub_kafka_outages_total") >= 1
        assert metric(ops, "hub_kafka_publish_retries_total") >= 1
        assert metric(ops, "hub_kafka_resent_total") > 0
        assert metric_sum(ops, "hub_kafka_dropped_total") == 0
        assert metric(ops, "hub_kafka_connected") == 1
        status, body = health(ops)
        assert status == 200 and body["kafka"] == {
            "ok": True,
            "buffered_messages": 0,
            "buffered_bytes": 0,
        }

        # The restarted broker lost everything before it; from the outage on, nothing is
        # missing: the recreated topic holds every seq from its first to the final one.
        seqs = asyncio.run(topic_seqs(sc.broker.address, f"{unique}.book", final.seq))
        assert seqs and seqs[-1] == final.seq
        distinct = sorted(set(seqs))
        assert distinct == list(range(distinct[0], final.seq + 1))
        assert distinct[0] < final.seq - RATE * 5  # the buffered outage is in it
        assert feed.stop() == 0, feed.stderr()
    finally:
        sc.broker.stop()


def test_full_publish_buffer_drops_counted_and_consumers_resync(
    hub_process: Any, unique: str, services: dict[str, str], tmp_path: Path
) -> None:
    sc = Scenario(hub_process, unique, services, tmp_path)
    max_orders = RATE * 16
    try:
        feed, ops, url = sc.start(max_orders, HUB_KAFKA__BUFFER_BYTES="20000")
        client, final = asyncio.run(through_outage(sc, feed, ops, url, 5, max_orders))
        book = client.books["SIM", SYMBOL]
        assert book.depth(0) == list(final.bids) and book.depth(1) == list(final.asks)
        assert sc.seen.count("snapshot") >= 2  # subscribe, then the resync after the loss
        assert metric_sum(ops, "hub_kafka_dropped_total") > 0
        assert feed.proc.poll() is None, feed.stderr()
        assert feed.stop() == 0, feed.stderr()
    finally:
        sc.broker.stop()


def test_a_stream_quiet_after_its_drops_still_shows_the_gap(
    hub_process: Any, unique: str, services: dict[str, str], tmp_path: Path
) -> None:
    """The flow ends during the outage and the tiny buffer overflows, so the stream's
    newest messages are dropped and nothing follows them: once the broker is back the
    newest one is sent after the buffer, and a consumer reading the topic sees the
    final seq (a gap before it: it resyncs from the snapshot store)."""
    sc = Scenario(hub_process, unique, services, tmp_path)
    max_orders = RATE * 3
    try:
        sc.broker.start()
        feed = hub_process(
            "feed", "--symbols", SYMBOL, "--seed", "5", "--rate", str(RATE),
            "--max-orders", str(max_orders), "--metrics-port", "0",
            env={**sc.env, "HUB_KAFKA__BUFFER_BYTES": "20000"},
        )  # fmt: skip
        ops = int(feed.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics").group(1))
        sc.broker.kill()
        final = sc.final_snapshot(ops, max_orders)  # generated while the broker is down
        assert health(ops)[0] == 503
        sc.broker.start()
        deadline = time.monotonic() + 30
        while health(ops)[0] != 200:
            assert time.monotonic() < deadline, "/healthz never ok again"
            time.sleep(0.2)
        seqs = asyncio.run(topic_seqs(sc.broker.address, f"{unique}.book", final.seq))
        assert seqs and seqs[-1] == final.seq
        assert len(set(seqs)) < final.seq  # some were dropped: the gap consumers resync
        assert metric_sum(ops, "hub_kafka_dropped_total") > 0
        assert feed.stop() == 0, feed.stderr()
    finally:
        sc.broker.stop()
