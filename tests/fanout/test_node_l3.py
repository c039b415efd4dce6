"""The order-level (L3) channel over real WebSocket connections, fed by the simulated
venue's matching engine: every order in queue order, proven equal to the engine's queues
and to the L2 book at the same seq; resumes replay or resend; L2-only sources refuse it."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace

from bus.local import MemorySnapshots
from client.market import HubClient, OrderMirror
from fanout.node import FanoutNode
from hub.config import FanoutConfig
from hub.events import BookUpdate, Trade
from hub.ops import bound_port
from tests.fanout.harness import OPEN, started, until
from trading.simulator import SimulatedExchange

_clock = itertools.count(1_795_000_000_000_000_000, 1_000_000)


class Venue:
    """The simulated venue feeding a node directly, as the embedded hub's bus does."""

    def __init__(self, node: FanoutNode) -> None:
        self.node = node
        self.x = SimulatedExchange("SIM", "BTC-USD", 5)
        for _ in range(3000):  # a book with queues before anyone connects
            self.x.step(next(_clock))

    def step(self, n: int) -> None:
        for _ in range(n):
            for e in self.x.step(next(_clock)):
                if isinstance(e, BookUpdate | Trade):
                    self.node.on_event(e)

    def queues(self) -> dict[tuple[int, int], list[tuple[str, int]]]:
        e = self.x.engine

        def visible(oid: int) -> int:
            state = e.order(oid)
            assert state is not None, oid
            return state.visible

        return {
            (side, price): [(str(oid), visible(oid)) for oid in e.order_ids(side, price)]
            for side in (0, 1)
            for price, _size, _n in e.depth(side)
        }


def mirror_queues(m: OrderMirror) -> dict[tuple[int, int], list[tuple[str, int]]]:
    return {
        (side, price): m.queue(side, price)
        for side in (0, 1)
        for price in sorted(m.queues[side], reverse=side == 0)
    }


async def sim_node(cfg: FanoutConfig = OPEN) -> tuple[FanoutNode, Venue, str]:
    store = MemorySnapshots()
    node = FanoutNode(cfg, store)
    server = await node.start()
    venue = Venue(node)
    await store.put_instrument(venue.x.instrument)
    await store.put(venue.x.snapshot())
    node.on_event(venue.x.instrument)
    venue.step(1)
    for _ in range(300):
        if node.streams["SIM", "BTC-USD"].synced:
            break
        await asyncio.sleep(0.01)
    return node, venue, f"ws://127.0.0.1:{bound_port(server)}/ws"


async def read_until_seq(client: HubClient, seq: int, wait: float = 10) -> None:
    async def read() -> None:
        async for _msg in client.messages():
            seqs = [m.seq for m in client.order_books.values()]
            if all(s == seq for s in [*seqs, *(b.seq for b in client.books.values())]):
                return

    await asyncio.wait_for(read(), wait)


async def test_l3_subscriber_holds_every_queue_of_the_engine() -> None:
    node, venue, url = await sim_node()
    try:
        async with HubClient(url) as client:
            answer = await client.subscribe(
                [
                    {"channel": "l3", "symbol": "BTC-USD"},
                    {"channel": "book", "symbol": "BTC-USD", "checksum": True},
                ]
            )
            assert [a["channel"] for a in answer["accepted"]] == ["l3", "book"]
            for _ in range(20):
                venue.step(100)
                await asyncio.sleep(0.005)
            await read_until_seq(client, venue.x.book_seq)
            orders = client.order_books["SIM", "BTC-USD"]
            book = client.books["SIM", "BTC-USD"]
            assert orders.snapshots == 1 and orders.updates > 50
            assert mirror_queues(orders) == venue.queues()
            assert orders.depth(0) == book.depth(0) and orders.depth(1) == book.depth(1)
            snap = venue.x.snapshot().orders or ()
            assert orders.resting() == [(s, p, n, str(oid)) for s, p, n, oid in snap]
            assert book.checksums > 0
            assert any(len(q) > 1 for q in venue.queues().values())
    finally:
        await node.stop()


async def test_l3_resume_replays_what_was_missed_or_sends_a_snapshot() -> None:
    node, venue, url = await sim_node(replace(OPEN, history_kib=32))
    try:
        async with HubClient(url) as client:
            await client.subscribe([{"channel": "l3", "symbol": "BTC-USD"}])
            venue.step(50)
            await read_until_seq(client, venue.x.book_seq)
            orders = client.order_books["SIM", "BTC-USD"]
            assert client.ws is not None and client.ws.transport is not None
            client.ws.transport.abort()  # the connection drops; the venue goes on
            venue.step(40)
            resumed = await until(client.messages(), "resumed")
            assert resumed["accepted"][0]["resume"] == "replayed"
            assert resumed["accepted"][0]["replayed"] > 0
            await read_until_seq(client, venue.x.book_seq)
            assert orders.snapshots == 1  # caught up from history, no snapshot needed
            assert mirror_queues(orders) == venue.queues()

            client.ws.transport.abort()
            left_at = orders.seq
            assert left_at is not None
            held = node.views.get("l3", "SIM", "BTC-USD")
            assert held is not None
            while next(iter(held.history))[0] <= left_at + 1:  # until the node no longer
                venue.step(100)  # holds what the client missed (32 KiB of l3 messages)
            assert held.history.bytes <= 32 * 1024
            resumed = await until(client.messages(), "resumed")
            assert resumed["accepted"][0]["resume"] == "snapshot"
            await read_until_seq(client, venue.x.book_seq)
            assert orders.snapshots == 2
            assert mirror_queues(orders) == venue.queues()
    finally:
        await node.stop()


async def test_l3_is_refused_where_the_source_has_only_levels() -> None:
    node, _market, url = await started()
    try:
        async with HubClient(url) as client:
            answer = await client.subscribe([{"channel": "l3", "symbol": "X"}])
            assert answer["accepted"] == []
            assert answer["refused"][0]["code"] == "unavailable"
            assert "l3" not in client.streams["SIM", "X"]["channels"]
    finally:
        await node.stop()
