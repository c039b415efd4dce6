"""Snapshots read back from Redis are validated before anyone uses them (issue 14: a
poisoned snapshot must never be loaded into a book)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis

from bus.redis_store import BadSnapshot, RedisSnapshots, snapshot_problem
from hub.events import BookSnapshot, encode


@pytest.mark.services
async def test_redis_snapshot_load_refuses_what_the_book_cannot_hold(
    services: dict[str, str], unique: str
) -> None:
    store = RedisSnapshots(services["redis"], unique)
    raw = redis.Redis.from_url(services["redis"])
    try:
        good = BookSnapshot("SIM", "X", 7, 0, ((100, 2), (99, 1)), ((101, 3),))
        await store.put(good)
        assert await store.get("SIM", "X") == good
        for bad, why in [
            (replace(good, bids=((100, 2**63),)), "not a positive int64"),
            (replace(good, asks=((100, 3),)), "crossed"),
            (replace(good, seq=-1), "seq -1"),
        ]:
            raw.set(f"{unique}:book:SIM:X", encode(bad))
            with pytest.raises(BadSnapshot, match=why):
                await store.get("SIM", "X")
        raw.set(f"{unique}:book:SIM:X", b'{"k": "snapshot", "venue": "SIM"}')
        with pytest.raises(BadSnapshot, match=f"{unique}:book:SIM:X"):
            await store.get("SIM", "X")
    finally:
        await store.close()
        raw.close()


def test_snapshot_problems_are_named() -> None:
    good = BookSnapshot("SIM", "X", 7, 0, ((100, 2), (99, 1)), ((101, 3), (102, 1)))
    assert snapshot_problem(good) is None
    cases = [
        (replace(good, bids=((99, 1), (100, 2))), "bids not strictly descending at 1"),
        (replace(good, asks=((102, 1), (101, 3))), "asks not strictly ascending at 1"),
        (replace(good, bids=((100, 0),)), "bids[0] size 0 at price 100 is not a positive int64"),
        (replace(good, asks=((2**63, 1),)), "asks[0] price 9223372036854775808 is not an int64"),
        (replace(good, bids=((101, 1),)), "crossed: best bid 101 >= best ask 101"),
        (replace(good, seq=2**63), "seq 9223372036854775808 is not a non-negative int64"),
        (replace(good, orders=((0, 100, -5, 1),)), "order 1 size -5 is not a positive int64"),
    ]
    for snap, why in cases:
        assert snapshot_problem(snap) == why
