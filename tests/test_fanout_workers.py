"""``hub fanout --workers 2`` behind the real local Kafka (Tansu) and Redis.

Two node processes share one port through SO_REUSEPORT: clients connecting to the
one URL land on both (the port-wide /metrics says how many each holds); a worker
killed with SIGKILL is restarted by the supervisor, its clients resume on the port
(the kernel hands them to a live worker) and the restarted one joins the port only
knowing the stream; every client's book ends equal to the
feed's final snapshot in Redis, every delta on the way seq-checked and checksum-
verified; SIGTERM stops the supervisor and every worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import redis

from client.market import HubClient
from hub.events import BookSnapshot, decode
from tests.conftest import stack_env
from tests.test_fanout_cluster import read_for

pytestmark = pytest.mark.services

SYMBOL = "BTC-USD"
CLIENTS = 16


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def connections(base: str) -> dict[str, float]:
    """worker -> open connections, from the port-wide /metrics."""
    _status, body = get(f"{base}/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("hub_fanout_connections{"):
            worker = line.split('worker="', 1)[1].split('"', 1)[0]
            out[worker] = float(line.rsplit(" ", 1)[1])
    return out


def pids(base: str) -> dict[int, int]:
    status, body = get(f"{base}/healthz")
    health = json.loads(body)
    assert health["workers"] == 2, health
    return {n["worker"]: n["pid"] for n in health["nodes"] if "pid" in n} if status else {}


def test_workers_share_the_port_and_a_killed_worker_comes_back(
    hub_process: Any, unique: str, services: dict[str, str]
) -> None:
    env = {**stack_env(services, unique), "HUB_FANOUT__ANONYMOUS": "true"}
    fanout = hub_process("fanout", "--port", "0", "--workers", "2", env=env)
    port = fanout.wait_for(r"x2 serving ws://127.0.0.1:(\d+)/ws").group(1)
    url, base = f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}"
    feed = hub_process(
        "feed", "--symbols", SYMBOL, "--seed", "11", "--rate", "300", "--metrics-port", "0", env=env
    )
    feed.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics")
    channels = [{"channel": "book", "symbol": SYMBOL, "checksum": True}]

    async def connect() -> HubClient:
        client = HubClient(url, others=[url])
        deadline = time.monotonic() + 30
        while True:  # a worker lists the stream once the feed's first events arrived
            await client.connect()
            if ("SIM", SYMBOL) in client.streams:
                break
            await client.close()
            assert time.monotonic() < deadline, "no worker lists the stream"
            await asyncio.sleep(0.3)
        assert (await client.subscribe(channels))["refused"] == []
        return client

    async def scenario() -> list[HubClient]:
        clients = [await connect() for _ in range(CLIENTS)]
        nodes = {c.welcome["node"] for c in clients}
        assert nodes == {"fanout-w0", "fanout-w1"}, nodes  # 16 connections, both workers
        held = connections(base)
        assert set(held) == {"0", "1"} and sum(held.values()) == CLIENTS, held

        await asyncio.gather(*(read_for(c, 1.5, []) for c in clients))
        victim = [c for c in clients if c.welcome["node"] == "fanout-w1"]
        before = {id(c): c.books["SIM", SYMBOL].seq or 0 for c in victim}
        old = pids(base)
        os.kill(old[1], signal.SIGKILL)
        await asyncio.gather(*(read_for(c, 4.0, []) for c in clients))
        for c in victim:  # resumed on the port, past where it was
            assert (c.books["SIM", SYMBOL].seq or 0) > before[id(c)]
        deadline = time.monotonic() + 30
        while True:  # the supervisor restarts worker 1 (a new process)
            status, _ = get(f"{base}/healthz")
            now = pids(base)
            if status == 200 and now.get(1) not in (None, old[1]):
                break
            assert time.monotonic() < deadline, f"worker 1 not restarted: {now}"
            await asyncio.sleep(0.3)
        assert now[0] == old[0]  # the other worker ran on
        # Back on the port only knowing the stream: a connection that lands on the new
        # worker at once finds it listed and is accepted (it joins once its node has a
        # stream for every instrument in Redis).
        fresh = [HubClient(url) for _ in range(CLIENTS)]
        for c in fresh:
            await c.connect()
            assert ("SIM", SYMBOL) in c.streams, (c.welcome["node"], c.streams)
            assert (await c.subscribe(channels))["refused"] == []
        assert {c.welcome["node"] for c in fresh} == {"fanout-w0", "fanout-w1"}
        for c in fresh:
            await c.close()
        return clients

    async def finish() -> None:
        clients = await scenario()
        assert feed.stop() == 0, feed.stderr()
        r = redis.Redis.from_url(services["redis"])
        final = decode(r.get(f"{unique}:book:SIM:{SYMBOL}"))  # type: ignore[arg-type]
        assert isinstance(final, BookSnapshot)
        for client in clients:
            book = client.books["SIM", SYMBOL]
            deadline = time.monotonic() + 20
            while book.seq != final.seq and time.monotonic() < deadline:
                await read_for(client, 0.5, [])
            assert book.seq == final.seq, (client.url, book.seq, final.seq)
            assert book.depth(0) == list(final.bids) and book.depth(1) == list(final.asks)
            assert book.checksums > 10
            await client.close()

    asyncio.run(finish())
    assert fanout.stop() == 0, fanout.stderr()
