"""Events travel on the topic the event table names, keyed by their stream, as the exact
bytes the golden test pins; an object that is not an event is never sent."""

from __future__ import annotations

import time

import pytest

from bus.kafka import KafkaPublisher, consumer, ensure_topics, start_consumer, topic_names
from hub.config import KafkaConfig
from hub.events import EVENT_TYPES, Trade
from tests.hub.test_events import GOLDEN


def test_topic_names_come_from_the_table() -> None:
    assert topic_names(KafkaConfig(topic_prefix="md")) == {
        "instruments": "md.instruments",
        "book": "md.book",
        "trades": "md.trades",
        "depth": "md.depth",
        "bbo": "md.bbo",
        "bars": "md.bars",
    }


async def test_records_route_each_event_and_refuse_anything_else() -> None:
    publisher = KafkaPublisher(KafkaConfig(topic_prefix="md"))
    records = publisher.records([e for e, _ in GOLDEN])
    assert records == [
        (f"md.{EVENT_TYPES[type(e)].topic}", f"{e.venue}:{e.symbol}".encode(), data)
        for e, data in GOLDEN
    ]
    assert {topic for topic, _, _ in records} == set(publisher.topics.values())
    with pytest.raises(TypeError, match="not an event: dict"):
        publisher.records([GOLDEN[0][0], {"k": "trade"}])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not an event: str"):
        publisher.records(["trade"])  # type: ignore[list-item]
    assert Trade in EVENT_TYPES


@pytest.mark.services
async def test_every_event_reaches_its_topic_as_its_golden_bytes(
    services: dict[str, str], unique: str
) -> None:
    cfg = KafkaConfig(bootstrap=services["kafka"], topic_prefix=unique, partitions=1)
    await ensure_topics(cfg)
    publisher = KafkaPublisher(cfg)
    await publisher.start()
    try:
        await publisher.publish([e for e, _ in GOLDEN])
    finally:
        await publisher.stop()
    want = sorted(
        (f"{unique}.{EVENT_TYPES[type(e)].topic}", f"{e.venue}:{e.symbol}".encode(), data)
        for e, data in GOLDEN
    )
    c = consumer(cfg, *topic_names(cfg).values(), group=None)
    await start_consumer(cfg, c)
    got: list[tuple[str, bytes, bytes]] = []
    deadline = time.monotonic() + 20
    try:
        while len(got) < len(want) and time.monotonic() < deadline:
            for records in (await c.getmany(timeout_ms=300)).values():
                got += [(r.topic, r.key, r.value) for r in records]
    finally:
        await c.stop()
    assert sorted(got) == want
