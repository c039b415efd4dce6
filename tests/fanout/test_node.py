"""A fanout node over real WebSocket connections, fed events directly (no services).

Books are proven equal with the protocol's own tools: the client's mirror
checks every seq range and checksum, and the final mirror is compared with
the node's book (or with an independent top-N cut of it).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from dataclasses import replace
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bus.local import MemorySnapshots
from client.market import BookMirror, ChecksumMismatch, HubClient, connect, messages, request
from fanout import node as node_module
from fanout.node import FanoutNode
from hub.config import FanoutConfig
from hub.events import Bar, BookSnapshot, BookUpdate, Status
from orderbook_core.types import checksum as book_checksum
from tests.fanout.harness import INST, OPEN, catch_up, started, top, until


class FlakyStore(MemorySnapshots):
    """A snapshot store whose first reads fail, as Redis does while restarting."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def get(self, venue: str, symbol: str) -> BookSnapshot | None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("store restarting")
        return await super().get(venue, symbol)


async def test_sync_survives_store_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_module, "SYNC_RETRY", 0.01)
    store = FlakyStore(failures=3)
    await store.put_instrument(INST)
    await store.put(BookSnapshot("SIM", "X", 5, 0, ((100, 2),), ((101, 3),)))
    node = FanoutNode(FanoutConfig(), store)
    node.on_event(BookUpdate("SIM", "X", 6, 0, 0, ((0, 100, 7),)))
    stream = node.streams["SIM", "X"]
    for _ in range(200):
        if stream.synced:
            break
        await asyncio.sleep(0.01)
    assert stream.synced and store.failures == 0
    assert stream.seq == 6
    assert stream.book.depth(0) == [(100, 7)] and stream.book.depth(1) == [(101, 3)]
    await node.stop()


async def test_full_and_top_n_books_with_checksums_equal_the_node() -> None:
    node, market, url = await started()
    try:
        async with (
            HubClient(url) as full,
            HubClient(url) as top5,
            HubClient(url) as plain,
        ):
            a = await full.subscribe([{"channel": "book", "symbol": "X", "checksum": True}])
            b = await top5.subscribe(
                [{"channel": "book", "symbol": "X", "depth": 5, "checksum": True}]
            )
            await plain.subscribe([{"channel": "book", "symbol": "X"}])
            assert a["accepted"][0]["checksum"] and b["accepted"][0]["depth"] == 5
            for _ in range(40):
                market.step(50)
                await asyncio.sleep(0.002)
            for c in (full, top5, plain):
                await catch_up(c, node)
        mirror_full, mirror_top = full.books["SIM", "X"], top5.books["SIM", "X"]
        assert mirror_full.depth(0) == top(node, 0) and mirror_full.depth(1) == top(node, 1)
        assert mirror_top.depth(0) == top(node, 0, 5) and mirror_top.depth(1) == top(node, 1, 5)
        assert plain.books["SIM", "X"].depth(0) == top(node, 0)
        # Every delta carried a checksum the mirrors verified; the top-5 view skips updates
        # beyond its levels, so it needed fewer messages for the same 2000 updates.
        assert mirror_full.checksums == mirror_full.updates + 1 >= 2000
        assert 0 < mirror_top.updates < mirror_full.updates
        assert mirror_top.checksums == mirror_top.updates + 1
        assert plain.books["SIM", "X"].checksums == 0
    finally:
        await node.stop()


def test_checksum_mismatch_is_detected() -> None:
    mirror = BookMirror("0.01", "1")
    snap = {"type": "snapshot", "seq": 1, "bids": [["1.00", "2"]], "asks": [["1.01", "3"]]}
    mirror.apply({**snap, "checksum": book_checksum([(100, 2)], [(101, 3)])})
    with pytest.raises(ChecksumMismatch):
        mirror.apply(
            {
                "type": "book",
                "first": 2,
                "seq": 2,
                "bids": [["1.00", "5"]],
                "asks": [],
                "checksum": book_checksum([(100, 2)], [(101, 3)]),
            }
        )


async def test_resume_replays_from_history_or_sends_a_snapshot() -> None:
    node, market, url = await started(replace(OPEN, history_kib=48))
    try:
        async with HubClient(url) as client:
            await client.subscribe([{"channel": "book", "symbol": "X"}])
            market.step(100)
            await catch_up(client, node)
            left_at = client.books["SIM", "X"].seq
            assert left_at is not None
            assert client.ws is not None
            await client.ws.close()
            market.step(120)  # within the node's history
            stream = client.messages()
            resumed = await until(stream, "resumed")
            assert resumed["accepted"][0]["resume"] == "replayed"
            assert resumed["accepted"][0]["replayed"] == 120
            await catch_up(client, node)
            book = client.books["SIM", "X"]
            assert book.snapshots == 1 and book.seq == left_at + 120
            assert book.depth(0) == top(node, 0) and book.depth(1) == top(node, 1)

            await client.ws.close()
            market.step(1000)  # far more than the history holds
            resumed = await until(stream, "resumed")
            assert resumed["accepted"][0]["resume"] == "snapshot"
            await catch_up(client, node)
            assert book.snapshots == 2
            assert book.depth(0) == top(node, 0) and book.depth(1) == top(node, 1)
    finally:
        await node.stop()


async def test_identical_clients_share_one_frame_per_flush() -> None:
    node, market, url = await started()
    try:
        clients = [HubClient(url) for _ in range(5)]
        for c in clients:
            await c.connect()
            await c.subscribe(
                [{"channel": "book", "symbol": "X"}, {"channel": "bbo", "symbol": "X"}]
            )
        market.step(10)
        for c in clients:
            await catch_up(c, node)
        assert len(node.out.groups) == 1
        (group,) = node.out.groups.values()
        assert len(group.members) == 5 and not node.out.private
        market.step(200)
        for c in clients:
            await catch_up(c, node)
            assert c.books["SIM", "X"].depth(0) == top(node, 0)
        for c in clients:
            await c.close()
    finally:
        await node.stop()


async def slow_socket(node: FanoutNode, url: str) -> ClientConnection:
    """A connection that reads almost nothing: tiny socket buffers at both ends (a slow
    link; otherwise the kernel would absorb megabytes first), one frame queued."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    before = set(node.clients)
    ws = await connect(url, sock=sock, max_queue=1, max_size=None)
    for _ in range(100):
        new = set(node.clients) - before
        if new:
            break
        await asyncio.sleep(0.01)
    (client,) = new
    server_sock = client.ws.transport.get_extra_info("socket")
    server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return ws


async def test_slow_client_is_conflated_while_others_get_every_update() -> None:
    cfg = replace(OPEN, send_buffer_kib=16, slow_timeout_s=60, queue_limit=1_000_000)
    node, market, url = await started(cfg)
    try:
        async with HubClient(url) as fast:
            await fast.subscribe([{"channel": "book", "symbol": "X", "checksum": True}])
            slow = await slow_socket(node, url)
            await request(
                slow,
                {
                    "op": "subscribe",
                    "channels": [{"channel": "book", "symbol": "X", "checksum": True}],
                },
            )
            mirror = BookMirror("0.01", "1")
            for _ in range(60):
                market.step(100)
                await asyncio.sleep(0.005)
            await catch_up(fast, node)
            assert fast.books["SIM", "X"].updates == 6000  # the fast client got every delta
            clients = [c for c in node.clients if c.lagging]
            assert len(clients) == 1  # the slow one, and only it
            # Now the slow client reads everything that is there: conflated ranges, exact book.
            ranges = 0
            async for msg in messages(slow):
                if msg["type"] in ("snapshot", "book"):
                    mirror.apply(msg)
                    ranges += msg["type"] == "book" and msg["first"] < msg["seq"]
                if mirror.seq == node.streams["SIM", "X"].seq:
                    break
            assert ranges > 0 and mirror.updates < 6000
            assert mirror.depth(0) == top(node, 0) and mirror.depth(1) == top(node, 1)
            await slow.close()
    finally:
        await node.stop()


async def test_client_that_never_reads_is_disconnected_with_a_reason() -> None:
    cfg = replace(OPEN, send_buffer_kib=16, slow_timeout_s=0.5)
    node, market, url = await started(cfg)
    try:
        slow = await slow_socket(node, url)
        await request(slow, {"op": "subscribe", "channels": [{"channel": "book", "symbol": "X"}]})
        for _ in range(800):  # the close handshake waits close_timeout (2 s) for the client
            market.step(20)
            await asyncio.sleep(0.01)
            if not node.clients:
                break
        assert not node.clients
        with pytest.raises(ConnectionClosed) as closed:
            async for _ in messages(slow):
                pass
        assert closed.value.rcvd is None or closed.value.rcvd.code == 1013
    finally:
        await node.stop()


async def test_trades_bbo_candles_and_status_channels() -> None:
    node, market, url = await started(bars_from_trades=True)
    try:
        async with HubClient(url) as client:
            answer = await client.subscribe(
                [
                    {"channel": "trades", "symbol": "X"},
                    {"channel": "bbo", "symbol": "X"},
                    {"channel": "candles", "symbol": "X", "interval": 1},
                    {"channel": "status", "symbol": "X"},
                    {"channel": "l3", "symbol": "X"},
                    {"channel": "candles", "symbol": "X", "interval": 7},
                ]
            )
            assert [a["channel"] for a in answer["accepted"]] == [
                "trades",
                "bbo",
                "candles",
                "status",
            ]
            assert [r["code"] for r in answer["refused"]] == ["unavailable", "bad_request"]
            base = 1_795_000_000_000_000_000
            trades = [market.trade(10_000 + i % 3, 1 + i, base + i * 300_000_000) for i in range(8)]
            node.on_event(Status("SIM", "X", "halted", "venue halt", 0, 0))
            market.step(300)
            seen: dict[str, list[dict[str, Any]]] = {}
            stream = client.messages()

            async def read() -> None:
                async for msg in stream:
                    seen.setdefault(msg["type"], []).append(msg)
                    if (
                        len(seen.get("trade", [])) == 8
                        and seen.get("status", [])[-1:]
                        and (seen["status"][-1]["state"] == "halted")
                        and len(seen.get("candle", [])) == 8
                    ):
                        return

            await asyncio.wait_for(read(), 5)
            assert [t["price"] for t in seen["trade"]] == ["100.00", "100.01", "100.02"] * 2 + [
                "100.00",
                "100.01",
            ]
            # Candles: the last message of each 1 s bucket equals the bar of its trades.
            last: dict[int, dict[str, Any]] = {}
            for c in seen["candle"]:
                last[c["start"]] = c
            for start, c in last.items():
                mine = [t for t in trades if t.ts_event // 10**9 * 10**9 == start]
                assert c["open"] == f"{mine[0].price / 100:.2f}"
                assert c["close"] == f"{mine[-1].price / 100:.2f}"
                assert c["high"] == f"{max(t.price for t in mine) / 100:.2f}"
                assert c["volume"] == str(sum(t.size for t in mine))
                assert c["trades"] == len(mine)
            assert seen["status"][0]["reason"] == "subscribe"
            # Best bid/offer: one message per change, the last one the node's book's top.
            best = node.streams["SIM", "X"].book
            want = [
                [f"{level[0] / 100:.2f}", str(level[1])]
                for level in (best.best_bid(), best.best_ask())
                if level is not None
            ]
            bbos = seen.get("bbo", [])

            async def more() -> None:
                async for msg in stream:
                    if msg["type"] == "bbo":
                        bbos.append(msg)
                        if [msg["bid"], msg["ask"]] == want:
                            return

            if not bbos or [bbos[-1]["bid"], bbos[-1]["ask"]] != want:
                await asyncio.wait_for(more(), 5)
            pairs = [(m["bid"], m["ask"]) for m in bbos]
            assert len(pairs) > 1 and all(a != b for a, b in itertools.pairwise(pairs))
            assert [m["seq"] for m in bbos] == sorted({m["seq"] for m in bbos})
    finally:
        await node.stop()


async def test_candles_from_kafka_bars_are_exact_decimals() -> None:
    node, _market, url = await started()
    try:
        bar = Bar(
            "SIM", "X", 60, 1_795_000_020_000_000_000, 10001, 10007, 9998, 10003, 12, 120_030, 4
        )
        node.on_event(bar)
        async with HubClient(url) as client:
            await client.subscribe([{"channel": "candles", "symbol": "X", "interval": 60}])
            msg = await until(client.messages(), "candles")
            assert msg["bars"] == [
                {
                    "start": 1_795_000_020_000_000_000,
                    "open": "100.01",
                    "high": "100.07",
                    "low": "99.98",
                    "close": "100.03",
                    "volume": "12",
                    "notional": "1200.3",
                    "trades": 4,
                }
            ]
            node.on_event(replace(bar, close=10005, trades=5, volume=13, notional=130_035))
            update = await until(client.messages(), "candle")
            assert (update["close"], update["trades"], update["notional"]) == (
                "100.05",
                5,
                "1300.35",
            )
    finally:
        await node.stop()


async def test_venue_status_reaches_book_subscribers_in_order() -> None:
    node, market, url = await started()
    try:
        async with connect(url) as ws:
            await request(ws, {"op": "subscribe", "channels": [{"channel": "book", "symbol": "X"}]})
            stream = messages(ws)
            await until(stream, "snapshot")
            seq = node.streams["SIM", "X"].seq
            node.on_event(Status("SIM", "X", "stale", "checksum", 0, 1))
            market.step()
            node.on_event(Status("SIM", "X", "resynced", "snapshot", 0, 2))
            seen: list[tuple[str, object]] = []
            async for msg in stream:
                seen.append((msg["type"], msg.get("state") or msg.get("seq")))
                if len(seen) == 3:
                    break
            assert seen == [("status", "stale"), ("book", seq + 1), ("status", "resynced")]
    finally:
        await node.stop()
