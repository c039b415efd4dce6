"""ReliablePublisher against a private Tansu broker, in-process: publishing never stops
while the broker dies, comes back and the buffer (tiny, so it overflows) is resent.

Every publish call returns; once the broker is back the publisher is up with an empty
buffer (what was published during the resend went out too, not into a buffer nobody
drains), and the recreated topic ends with the last message of every stream.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NodeNotReadyError,
    TopicAuthorizationFailedError,
    UnknownError,
    UnknownTopicOrPartitionError,
)

from bus.kafka import consumer, ensure_topics, publish_error, start_consumer
from bus.kafka_publish import ReliablePublisher
from hub.config import KafkaConfig
from hub.events import Trade, decode
from tests.faults import PrivateBroker

pytestmark = pytest.mark.services

SYMBOLS = ("A", "B", "C")


def trade(symbol: str, seq: int) -> Trade:
    return Trade("SIM", symbol, seq, str(seq), 100, 1, 0, seq, seq)


async def last_seqs(cfg: KafkaConfig, want: dict[str, int]) -> dict[str, int]:
    """The highest trade seq per symbol in the trades topic, read until ``want`` is seen."""
    c = consumer(cfg, f"{cfg.topic_prefix}.trades", group=None)
    await start_consumer(cfg, c)
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 20
    try:
        while seen != want and time.monotonic() < deadline:
            for records in (await c.getmany(timeout_ms=300)).values():
                for r in records:
                    e = decode(r.value)
                    if isinstance(e, Trade):
                        seen[e.symbol] = max(seen.get(e.symbol, 0), e.seq)
    finally:
        await c.stop()
    return seen


def test_publishing_through_an_outage_and_its_resend(tmp_path: Path, unique: str) -> None:
    broker = PrivateBroker(tmp_path)
    cfg = KafkaConfig(
        bootstrap=broker.address,
        topic_prefix=unique,
        partitions=2,
        publish_timeout_ms=1000,
        buffer_bytes=30_000,
        retry_first_ms=50,
        retry_max_ms=300,
    )

    async def scenario() -> tuple[dict[str, object], dict[str, int], dict[str, int]]:
        broker.start()
        await ensure_topics(cfg)
        pub = ReliablePublisher(cfg)
        await pub.start()
        seq = 0
        went_down = came_back = False
        try:
            started = time.monotonic()
            while True:  # publish all the time: before, during and after the outage
                seq += 1
                await pub.publish([trade(s, seq) for s in SYMBOLS])
                elapsed = time.monotonic() - started
                if not went_down and elapsed > 1:
                    broker.kill()
                    went_down = True
                if went_down and not came_back and elapsed > 4:
                    broker.start()
                    came_back = True
                if came_back and pub.up:
                    break
                assert elapsed < 30, f"never up again: {pub.health()}"
                await asyncio.sleep(0.002)
            health = pub.health()
            final = {s: seq for s in SYMBOLS}
            return health, final, await last_seqs(cfg, final)
        finally:
            await pub.stop()

    try:
        health, final, seen = asyncio.run(scenario())
    finally:
        broker.stop()
    assert health["ok"] is True and health["buffered_messages"] == 0
    assert health.get("dropped") is None  # counted per outage; cleared once it ended
    assert seen == final


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (UnknownError(), True),  # a wedged client after a broker restart: a new one cures it
        (NodeNotReadyError(), True),
        (UnknownTopicOrPartitionError(), True),  # a memory-only broker lost its topics
        (KafkaTimeoutError(), True),
        (KafkaConnectionError(), True),
        (ConnectionRefusedError(), True),
        (MessageSizeTooLargeError(), False),
        (TopicAuthorizationFailedError(), False),
    ],
)
def test_send_errors_say_whether_retrying_helps(error: Exception, retriable: bool) -> None:
    """The retry code reads ``retriable`` from the hub's error, never a list of types."""
    cfg = KafkaConfig(bootstrap="127.0.0.1:1")
    mapped = publish_error(cfg, error)
    assert mapped.retriable is retriable
    assert "127.0.0.1:1" in str(mapped)
