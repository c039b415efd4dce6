"""Two fanout nodes behind the real local Kafka (Tansu) and Redis.

A trader on node A (API key, checksummed book and the order-level book) loses
A to SIGKILL and resumes on node B from the last seq it applied; A restarts and
serves correct books again. When the feed stops, every client's L2 and L3 books
equal the final snapshot in Redis, and every delta on the way was seq-checked
and checksum-verified.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from client.market import HubClient
from hub.events import BookSnapshot, decode
from tests.conftest import stack_env

pytestmark = pytest.mark.services

SYMBOL = "BTC-USD"
KEY = "cluster-test-key-0123456789abcdef01234"


async def read_for(client: HubClient, seconds: float, seen: list[dict[str, Any]]) -> None:
    stream = client.messages()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            seen.append(await asyncio.wait_for(anext(stream), deadline - time.monotonic()))
        except TimeoutError:
            return


async def read_until_seq(client: HubClient, seq: int, seconds: float = 30) -> None:
    book, orders = client.books["SIM", SYMBOL], client.order_books["SIM", SYMBOL]

    async def read() -> None:
        async for _msg in client.messages():
            if book.seq == seq and orders.seq == seq:
                return

    if book.seq != seq or orders.seq != seq:
        try:
            await asyncio.wait_for(read(), seconds)
        except TimeoutError:
            raise AssertionError(
                f"{client.url}: book at seq {book.seq}, order book at {orders.seq}, final {seq}"
            ) from None


def test_client_moves_to_another_node_and_a_restarted_node_catches_up(
    hub_process: Any, unique: str, services: dict[str, str], tmp_path: Path
) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[key]]\nid = "trader"\nkey = "{KEY}"\n')
    env = {
        **stack_env(services, unique),
        "HUB_FANOUT__KEYS": str(keys),
    }

    def node(name: str) -> tuple[Any, str]:
        proc = hub_process("fanout", "--port", "0", env={**env, "HUB_FANOUT__GROUP": name})
        port = proc.wait_for(r"serving ws://127.0.0.1:(\d+)/ws").group(1)
        return proc, f"ws://127.0.0.1:{port}/ws"

    node_a, url_a = node("a")
    node_b, url_b = node("b")
    feed = hub_process(
        "feed", "--symbols", SYMBOL, "--seed", "7", "--rate", "400", "--metrics-port", "0", env=env
    )
    feed.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics")
    channels: list[dict[str, Any]] = [
        {"channel": "book", "symbol": SYMBOL, "checksum": True},
        {"channel": "trades", "symbol": SYMBOL},
        {"channel": "l3", "symbol": SYMBOL},
    ]

    async def scenario() -> tuple[HubClient, HubClient]:
        mover = HubClient(url_a, token=KEY, others=[url_b])
        deadline = time.monotonic() + 30
        while True:  # the node lists the stream once the feed's first events arrived
            await mover.connect()
            if ("SIM", SYMBOL) in mover.streams:
                break
            await mover.close()
            assert time.monotonic() < deadline
            await asyncio.sleep(0.3)
        assert mover.welcome["node"] == "a" and mover.welcome["key"] == "trader"
        answer = await mover.subscribe(channels)
        assert answer["refused"] == []
        seen: list[dict[str, Any]] = []
        await read_for(mover, 2.0, seen)
        before = mover.books["SIM", SYMBOL].seq
        assert before is not None and before > 0
        node_a.proc.kill()  # no goodbye: the client finds out from the dead socket
        await read_for(mover, 3.0, seen)
        assert mover.url == url_b and mover.welcome["node"] == "b"
        resumed = [m for m in seen if m["type"] == "resumed"]
        assert len(resumed) == 1
        (book,) = [a for a in resumed[0]["accepted"] if a["channel"] == "book"]
        assert book["resume"] in ("replayed", "snapshot")
        assert (mover.books["SIM", SYMBOL].seq or 0) > before

        # Node A comes back (new process, same stream) and serves a correct book again.
        _restarted, url_a2 = node("a")
        newcomer = HubClient(url_a2, token=KEY, reconnect=False)
        deadline = time.monotonic() + 30
        while True:
            await newcomer.connect()
            if ("SIM", SYMBOL) in newcomer.streams:
                break
            await newcomer.close()
            assert time.monotonic() < deadline
            await asyncio.sleep(0.3)
        await newcomer.subscribe(channels)
        await read_for(newcomer, 2.0, [])
        return mover, newcomer

    async def finish() -> tuple[HubClient, HubClient]:
        mover, newcomer = await scenario()
        assert feed.stop() == 0, feed.stderr()
        r = redis.Redis.from_url(services["redis"])
        final = decode(r.get(f"{unique}:book:SIM:{SYMBOL}"))  # type: ignore[arg-type]
        assert isinstance(final, BookSnapshot)
        for client in (mover, newcomer):
            await read_until_seq(client, final.seq)
            book = client.books["SIM", SYMBOL]
            assert book.depth(0) == list(final.bids) and book.depth(1) == list(final.asks)
            assert book.checksums > 100  # every delta on the way was verified
            assert final.orders is not None
            resting = client.order_books["SIM", SYMBOL].resting()
            assert resting == [(s, p, n, str(oid)) for s, p, n, oid in final.orders]
            await client.close()
        return mover, newcomer

    mover, newcomer = asyncio.run(finish())
    assert mover.reconnects == 1
    assert newcomer.books["SIM", SYMBOL].snapshots == 1
    assert node_b.stop() == 0, node_b.stderr()
