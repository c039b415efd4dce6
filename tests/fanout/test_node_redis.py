"""A fanout node syncing from the real Redis snapshot store when what it holds is poisoned
(issue 14: a restarted node could not sync a symbol from a snapshot with an int64-overflowed
size, and /healthz said ok while it served nothing)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

import orjson
import pytest
import redis

from bus.redis_store import RedisSnapshots
from client.market import HubClient
from fanout import node as node_module
from fanout.node import FanoutNode
from hub.events import encode
from hub.ops import bound_port
from tests.fanout.harness import INST, OPEN, Market, catch_up, top


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


@pytest.mark.services
async def test_a_poisoned_snapshot_is_reported_on_healthz_and_retried_until_good(
    services: dict[str, str], unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_module, "SYNC_RETRY", 0.05)
    monkeypatch.setattr(node_module, "SYNC_RETRY_CAP", 0.2, raising=False)
    store = RedisSnapshots(services["redis"], unique)
    raw = redis.Redis.from_url(services["redis"])
    node = FanoutNode(replace(OPEN, port=0), store)
    server = await node.start()
    port = bound_port(server)
    market = Market(node)
    try:
        await store.put_instrument(INST)
        good = market.snapshot()
        bids = ((good.bids[0][0], -(2**63)), *good.bids[1:])
        raw.set(f"{unique}:book:SIM:X", encode(replace(good, bids=bids)))
        node.on_event(INST)
        market.step()
        async with HubClient(f"ws://127.0.0.1:{port}/ws") as victim:
            await victim.subscribe([{"channel": "book", "symbol": "X", "checksum": True}])
            for _ in range(50):  # the node finds out on its first sync attempt
                status, health = await asyncio.to_thread(healthz, port)
                if status != 200:
                    break
                await asyncio.sleep(0.05)
            assert status == 503 and health["ok"] is False
            (why,) = health["unsynced"]
            assert (why["venue"], why["symbol"]) == ("SIM", "X")
            assert (
                "-9223372036854775808" in why["reason"] and f"{unique}:book:SIM:X" in why["reason"]
            )
            assert not node.streams["SIM", "X"].synced

            market.step(20)
            await store.put(market.snapshot())  # the feed writes a good one again
            market.step(5)
            for _ in range(300):
                if node.streams["SIM", "X"].synced:
                    break
                await asyncio.sleep(0.02)
            assert node.streams["SIM", "X"].synced
            status, health = await asyncio.to_thread(healthz, port)
            assert status == 200 and health["ok"] is True and health["unsynced"] == []
            market.step(50)
            await catch_up(victim, node)
            book = victim.books["SIM", "X"]
            assert book.depth(0) == top(node, 0) and book.depth(1) == top(node, 1)
            assert book.checksums == book.updates + book.snapshots >= 50
    finally:
        await node.stop()
        await store.close()
        raw.close()
