"""The consolidator of the distributed hub: venue streams already running on Kafka (their
instruments and snapshots in the store), a consolidator started late syncs them from the
store, and the consolidated stream it publishes back to Kafka, read from its topic alone,
rebuilds to the merge of the venue books."""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal

import pytest

from bus.consolidate import CONSOLIDATED, order_key
from bus.consolidator import Consolidator
from bus.kafka import KafkaPublisher, consumer, ensure_topics, start_consumer, topic_names
from bus.local import MemorySnapshots
from bus.output import FeedOutput
from hub.config import KafkaConfig
from hub.events import BookUpdate, Members, decode
from hub.orders import apply_orders, order_book
from orderbook_core import L2Book
from tests.bus.test_consolidator import COINBASE, KRAKEN, Venue, naive


@pytest.mark.services
async def test_a_late_consolidator_syncs_from_the_store_and_publishes_to_kafka(
    services: dict[str, str], unique: str
) -> None:
    cfg = KafkaConfig(bootstrap=services["kafka"], topic_prefix=unique, partitions=1)
    await ensure_topics(cfg)
    store = MemorySnapshots()
    venues = [Venue(COINBASE, 6_500_000, 41, seed=7), Venue(KRAKEN, 650_010, 42, seed=8)]
    feed = KafkaPublisher(cfg)  # the venue feeds, already running
    out = KafkaPublisher(cfg)
    await feed.start()
    await out.start()
    for v in venues:
        await store.put_instrument(v.inst)
        await feed.publish([v.inst, *(v.update() for _ in range(30))])
        await store.put(v.snapshot())
    consolidator = Consolidator(FeedOutput(out, store), store, ["BTC-USD"], 0.1)
    task = asyncio.create_task(consolidator.run_kafka(cfg))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # keep the venues moving until both are back in
            for v in venues:
                await feed.publish([v.update()])
                await store.put(v.snapshot())
            merged = consolidator.books.get("BTC-USD")
            states = {m.venue: m.state for m in merged.members} if merged else {}
            if states == {"COINBASE": "live", "KRAKEN": "live"}:
                break
            await asyncio.sleep(0.05)
        for v in venues:  # and some more, followed without the store
            await feed.publish([v.update() for _ in range(20)])
        followers = [consolidator.followers[v.inst.venue, v.inst.symbol] for v in venues]
        for _ in range(400):
            if [f.seq for f in followers] == [v.seq for v in venues]:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # its last batch published
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await feed.stop()
        await out.stop()

    # what the consolidated stream's topic holds rebuilds to the same merge
    c = consumer(cfg, topic_names(cfg)["book"], group=None)
    await start_consumer(cfg, c)
    book, orders, seq, members = L2Book(), order_book(), 0, None
    target = consolidator.seqs["BTC-USD"]
    try:
        deadline = time.monotonic() + 20
        while seq < target and time.monotonic() < deadline:
            for records in (await c.getmany(timeout_ms=300)).values():
                for r in records:
                    e = decode(r.value)
                    if e.venue != CONSOLIDATED:
                        continue
                    if isinstance(e, Members):
                        members = e
                    elif isinstance(e, BookUpdate):
                        assert e.seq == seq + 1 and e.epoch == consolidator.epochs["BTC-USD"]
                        seq = e.seq
                        book.apply(e.changes)
                        apply_orders(orders, e.orders or ())
    finally:
        await c.stop()
    assert seq == target and members is not None
    unit = Decimal("1e-8")
    got: dict[tuple[int, Decimal], dict[str, Decimal]] = {}
    for side in (0, 1):
        for price, total, _n in orders.depth(side):
            cell = got.setdefault((side, price * unit), {})
            for oid in orders.order_ids(side, price):
                size = orders.order(oid)
                assert size is not None
                cell[members.members[order_key(oid)[0]][0]] = size[2] * unit
            assert dict(book.depth(side))[price] == total
    assert got == naive(venues)
