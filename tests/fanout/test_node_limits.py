"""Hostile but well-formed clients against a real node over real sockets: views that pile
up, held history, bursts of large subscribes and slow readers. Beside each, a victim
with a checksummed book must end exact with no gap (issue 14, defects 3, 6 and 9)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Close, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from client.market import BookMirror, HubClient, connect, messages, request
from fanout.delivery import Feed
from fanout.node import FanoutNode
from hub.events import BookUpdate
from hub.ops import metrics
from tests.fanout.harness import OPEN, Market, catch_up, more_symbols, started, top, until

KEY = "hostile-key-0123456789abcdef0123456789"


@contextlib.asynccontextmanager
async def running(market: Market, n: int = 10, every: float = 0.003) -> AsyncIterator[Any]:
    """The market moves on in the background (n updates every few ms) until the yielded
    task is cancelled or the block ends."""

    async def run() -> None:
        while True:
            market.step(n)
            await asyncio.sleep(every)

    task = asyncio.create_task(run())
    try:
        yield task
    finally:
        task.cancel()


def views(node: FanoutNode) -> list[Feed]:
    """The node's book feeds that are views (a depth or checksum variant)."""
    return [f for f in node.feeds.values() if f.channel == "book" and (f.depth or f.checksum)]


def held(feed: Feed) -> int:
    return sum(len(msg) for _first, _last, msg in feed.history)


async def answer(ws: Any, ident: int) -> dict[str, Any]:
    async for msg in messages(ws):
        if msg.get("id") == ident and msg["type"] in ("subscribed", "unsubscribed"):
            return msg
    raise AssertionError("closed before the answer")


async def reach(client: HubClient, node: FanoutNode, depth: int = 0, wait: float = 10) -> None:
    """Read until the client's book is at the seq of its feed (a top-N view's last message
    may be older than the book's last update)."""
    feed = node.feeds["book", "SIM", "X", depth, True] if depth else None
    book = client.books["SIM", "X"]

    async def read() -> None:
        async for _msg in client.messages():
            if book.seq == (feed.seq if feed is not None else node.streams["SIM", "X"].seq):
                return

    if book.seq != (feed.seq if feed is not None else node.streams["SIM", "X"].seq):
        await asyncio.wait_for(read(), wait)


async def exact(victim: HubClient, node: FanoutNode, depth: int = 0) -> None:
    """The victim's checksummed book equals the node's, from one snapshot, with no gap."""
    if depth:
        await reach(victim, node, depth)
    else:
        await catch_up(victim, node)
    book = victim.books["SIM", "X"]
    assert book.snapshots == 1 and victim.reconnects == 0
    assert book.checksums == book.updates + 1
    assert book.depth(0) == top(node, 0, depth) and book.depth(1) == top(node, 1, depth)


async def test_views_are_shared_and_freed_with_their_last_subscriber() -> None:
    """Defect 3: every (depth, checksum) a client asked for stayed a feed for good."""
    node, market, url = await started()
    try:
        async with running(market) as moving, HubClient(url) as victim:
            await victim.subscribe(
                [{"channel": "book", "symbol": "X", "depth": 10, "checksum": True}]
            )
            await catch_up(victim, node)
            baseline = set(node.feeds)
            peak = 0

            async def cycle(i: int) -> None:
                nonlocal peak
                async with connect(url, max_size=None) as ws:
                    for n in range(12):
                        depth = 1 + (i * 7 + n) % 40
                        entry = {"channel": "book", "symbol": "X", "depth": depth}
                        await request(
                            ws,
                            {
                                "op": "subscribe",
                                "id": n,
                                "channels": [{**entry, "checksum": n % 2 == 0}],
                            },
                        )
                        assert (await answer(ws, n))["accepted"]
                        peak = max(peak, len(views(node)))
                        await asyncio.sleep(0.01)

            await asyncio.gather(*(cycle(i) for i in range(10)))
            for _ in range(200):
                if len(node.clients) == 1:
                    break
                await asyncio.sleep(0.01)
            # Ten connections each held one view at a time: at most eleven ever existed,
            # and all but the victim's went with their last subscriber, history and all.
            assert 1 < peak <= 11
            assert set(node.feeds) == baseline
            (left,) = views(node)
            assert (left.depth, left.checksum) == (10, True) and left.targets
            assert metrics("fanout").get_sample_value("hub_fanout_views") == 1
            assert metrics("fanout").get_sample_value("hub_fanout_history_bytes") == sum(
                held(f) for f in node.feeds.values()
            )
            moving.cancel()
            await exact(victim, node, 10)
    finally:
        await node.stop()


async def test_held_messages_cost_their_size_not_a_library_buffer() -> None:
    """Defect 3: each message in a feed's history pinned ~4 KiB of orjson's buffer."""
    node, market, _url = await started()
    try:
        market.step(10)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            market.step(2000)
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        (full,) = [f for f in node.feeds.values() if f.channel == "book" and not f.depth]
        assert len(full.history) >= 2000
        per_message = grown / 2000
        payload = held(full) / len(full.history)
        assert per_message < payload + 400, (per_message, payload)
    finally:
        await node.stop()


async def test_history_is_bounded_in_bytes_and_resumes_beyond_it_get_a_snapshot() -> None:
    node, market, url = await started(replace(OPEN, history_kib=16))
    try:
        market.step(1000)
        (full,) = [f for f in node.feeds.values() if f.channel == "book" and not f.depth]
        assert 12 * 1024 < held(full) <= 16 * 1024
        first_held = next(iter(full.history))[0]
        async with connect(url) as ws:
            ask = {"channel": "book", "symbol": "X"}
            await request(
                ws,
                {"op": "subscribe", "id": 1, "channels": [{**ask, "resume_from": first_held + 5}]},
            )
            assert (await answer(ws, 1))["accepted"][0]["resume"] == "replayed"
            await request(
                ws,
                {"op": "subscribe", "id": 2, "channels": [{**ask, "resume_from": first_held - 5}]},
            )
            assert (await answer(ws, 2))["accepted"][0]["resume"] == "snapshot"
    finally:
        await node.stop()


async def test_a_view_resumes_from_its_own_history_while_it_lives() -> None:
    node, market, url = await started()
    entry = {"channel": "book", "symbol": "X", "depth": 5, "checksum": True}
    try:
        async with HubClient(url) as keeper, HubClient(url) as mover:
            await keeper.subscribe([entry])
            await mover.subscribe([entry])
            market.step(100)
            await reach(mover, node, 5)
            assert mover.ws is not None and mover.ws.transport is not None
            mover.ws.transport.abort()  # the keeper holds the view meanwhile
            market.step(100)
            resumed = await until(mover.messages(), "resumed")
            assert resumed["accepted"][0]["resume"] == "replayed"
            await reach(mover, node, 5)
            book = mover.books["SIM", "X"]
            assert book.snapshots == 1 and book.checksums == book.updates + 1
            assert book.depth(0) == top(node, 0, 5) and book.depth(1) == top(node, 1, 5)

            await keeper.close()
            mover.ws.transport.abort()  # now nobody holds it: freed, history and all
            for _ in range(100):
                if not views(node):
                    break
                await asyncio.sleep(0.01)
            assert not views(node)
            market.step(10)
            resumed = await until(mover.messages(), "resumed")
            assert resumed["accepted"][0]["resume"] == "snapshot"
            await reach(mover, node, 5)
            assert book.snapshots == 2
            assert book.depth(0) == top(node, 0, 5) and book.depth(1) == top(node, 1, 5)
    finally:
        await node.stop()


def keys_file(tmp_path: Path) -> str:
    path = tmp_path / "keys.toml"
    path.write_text(f'[[key]]\nid = "hostile"\nkey = "{KEY}"\nmax_connections = 20\n')
    return str(path)


async def ask_view(
    stack: contextlib.AsyncExitStack, url: str, depth: int, auth: dict[str, str] | None = None
) -> dict[str, Any]:
    """On a new connection (kept open by ``stack``), subscribe X's book at ``depth``: the
    answer."""
    ws = await stack.enter_async_context(connect(url, additional_headers=auth))
    entry = {"channel": "book", "symbol": "X", "depth": depth}
    await request(ws, {"op": "subscribe", "id": 1, "channels": [entry]})
    return await answer(ws, 1)


async def test_views_are_capped_per_key_and_per_node(tmp_path: Path) -> None:
    cfg = replace(OPEN, keys=keys_file(tmp_path), max_views=6, max_views_per_key=3)
    node, market, url = await started(cfg)
    auth = {"Authorization": f"Bearer {KEY}"}
    try:
        async with running(market) as moving, HubClient(url) as victim:
            await victim.subscribe(
                [{"channel": "book", "symbol": "X", "depth": 10, "checksum": True}]
            )
            codes = []
            async with contextlib.AsyncExitStack() as stack:
                for depth in range(1, 6):  # one key, five connections, five views asked for
                    got = await ask_view(stack, url, depth, auth)
                    codes.append(got["refused"][0]["code"] if got["refused"] else "ok")
                    if got["refused"]:
                        reason = got["refused"][0]["reason"]
                        assert reason.startswith("key 'hostile' may hold at most 3 book views")
                        assert reason.endswith("(fanout.max_views_per_key)")
                assert codes == ["ok", "ok", "ok", "too_many_views", "too_many_views"]
                # A view the key already holds is shared, not counted twice.
                ws = await stack.enter_async_context(connect(url, additional_headers=auth))
                entry = {"channel": "book", "symbol": "X", "depth": 2}
                await request(ws, {"op": "subscribe", "id": 2, "channels": [entry]})
                assert (await answer(ws, 2))["accepted"]
                assert {k[3] for k in node.views.held["key 'hostile'"]} == {1, 2, 3}
                assert node.views.held["key 'hostile'"]["book", "SIM", "X", 2, False] == 2
                # The node's own cap: anonymous connections each count on their own.
                for depth in range(20, 27):
                    got = await ask_view(stack, url, depth)
                    codes.append(got["refused"][0]["code"] if got["refused"] else "ok")
                assert len(views(node)) == 6
                assert codes[5:] == ["ok"] * 2 + ["too_many_views"] * 5
                assert "fanout.max_views" in got["refused"][0]["reason"]
            moving.cancel()
            await exact(victim, node, 10)
    finally:
        await node.stop()


async def test_a_burst_of_large_subscribes_is_worked_through_in_slices() -> None:
    """Defect 6: 40 requests of 200 entries (the default rate limit's burst), each entry a
    book snapshot to encode, kept everyone else waiting while one request was worked
    through in one go. Now the node yields between slices: while one request is being
    answered the source's events go on (its snapshots show the books moving), and the
    victim's ping is answered before the burst's last request."""
    node, market, url = await started()
    symbols = await more_symbols(node, 200, levels=60)
    seq = 2

    async def ticks() -> None:
        nonlocal seq
        while True:  # every extra book moves one seq per tick
            seq += 1
            for name in symbols:
                node.on_event(BookUpdate("SIM", name, seq, 0, 0, ((0, 9_000, 1 + seq % 7),)))
            market.step(5)
            await asyncio.sleep(0.005)

    ticking = asyncio.create_task(ticks())
    try:
        async with HubClient(url) as victim:
            await victim.subscribe([{"channel": "book", "symbol": "X", "checksum": True}])
            await catch_up(victim, node)
            order: list[str] = []
            seen: dict[int, set[int]] = {}
            """Per hostile request, the seqs its snapshots were taken at."""
            async with connect(url, max_size=None, max_queue=None) as hostile:
                entries = [{"channel": "book", "symbol": name} for name in symbols]
                burst = [{"op": "subscribe", "id": n, "channels": entries} for n in range(40)]
                for message in burst:
                    await hostile.send(orjson.dumps(message).decode())

                async def hostile_reads() -> None:
                    current = -1
                    snapshots = 0
                    async for msg in messages(hostile):
                        if msg["type"] == "subscribed":
                            assert len(msg["accepted"]) == 200
                            current = msg["id"]
                            order.append(f"hostile {current}")
                        elif msg["type"] == "snapshot":
                            seen.setdefault(current, set()).add(msg["seq"])
                            snapshots += 1
                            if snapshots == 40 * 200:
                                return

                reading = asyncio.create_task(hostile_reads())
                await until_first(order)
                pong = await victim.request({"op": "ping"}, "pong")
                order.append("victim pong")
                await asyncio.wait_for(reading, 60)
            assert pong["type"] == "pong"
            assert order.index("victim pong") < order.index("hostile 39"), order
            assert sorted(seen) == list(range(40))
            spread = [len(seqs) for seqs in seen.values()]
            assert sum(1 for n in spread if n > 1) >= 30, spread
            ticking.cancel()
            await exact(victim, node)
    finally:
        ticking.cancel()
        await node.stop()


async def until_first(seen: list[str]) -> None:
    """Wait (a bounded number of loop turns) for the first entry of ``seen``."""
    for _ in range(100_000):
        if seen:
            return
        await asyncio.sleep(0)
    raise AssertionError("nothing arrived")


class SlowLink:
    """A WebSocket client on a slow link: tiny socket buffers, and it reads about ``rate``
    bytes a second (sans-I/O websockets on a raw socket, so the rate is the test's)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.proto = ClientProtocol(parse_uri(url), max_size=None)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setblocking(False)
        self.rate = 100_000
        self.events: list[Any] = []
        self.close: Close | None = None

    async def open(self, node: FanoutNode, subscribe: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.url.split("//")[1].split("/")[0].split(":")
        before = set(node.clients)
        await loop.sock_connect(self.sock, (host, int(port)))
        self.proto.send_request(self.proto.connect())
        await self._send()
        for _ in range(200):
            new = set(node.clients) - before
            if new and self.proto.state is State.OPEN:
                break
            await self._read(65536)
        (client,) = new
        self.proto.send_text(orjson.dumps(subscribe))
        await self._send()
        server_sock = client.ws.transport.get_extra_info("socket")
        server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    async def _send(self) -> None:
        for data in self.proto.data_to_send():
            if data:
                await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def _read(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, n), 0.05)
        except TimeoutError:
            return
        if data:
            self.proto.receive_data(data)
        else:
            self.proto.receive_eof()
        self.events.extend(self.proto.events_received())
        await self._send()  # pongs and the close reply

    async def messages(self, seconds: float) -> AsyncIterator[dict[str, Any]]:
        """Messages as they arrive at ``rate`` bytes a second, until closed or timed out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline and self.proto.state is not State.CLOSED:
            events, self.events = self.events, []
            for event in events:
                if getattr(event, "opcode", None) is Opcode.TEXT:
                    for msg in orjson.loads(event.data):
                        yield msg
                elif getattr(event, "opcode", None) is Opcode.CLOSE:
                    self.close = Close.parse(event.data)
            await asyncio.sleep(0.05)
            await self._read(max(1, self.rate // 20))


async def test_a_slow_reader_is_conflated_reset_then_closed_with_a_reason_it_reads() -> None:
    """Defect 9: a slowly-reading client was dropped without a word. The node's policy is
    what it gets: its book deltas conflated, its queue reset to snapshots, then a close
    1013 with the reason, which waits for it behind what its socket still holds."""
    cfg = replace(OPEN, send_buffer_kib=32, queue_limit=40, max_resets=2, slow_timeout_s=20)
    node, market, url = await started(cfg)
    closes = metrics("fanout").get_sample_value("hub_fanout_slow_disconnects_total") or 0
    resets = metrics("fanout").get_sample_value("hub_fanout_snapshot_resets_total") or 0
    loop = asyncio.get_running_loop()
    try:
        async with running(market, 30, 0.005) as moving, HubClient(url) as victim:
            await victim.subscribe([{"channel": "book", "symbol": "X", "checksum": True}])
            slow = SlowLink(url)
            channels = [
                {"channel": "book", "symbol": "X", "checksum": True},
                {"channel": "trades", "symbol": "X"},
            ]
            await slow.open(node, {"op": "subscribe", "channels": channels})
            mirror = BookMirror("0.01", "1")
            ranges = 0

            async def bursts() -> None:
                for _ in range(100):  # more trades than a lagging queue may hold
                    for _ in range(60):
                        market.trade(10_000, 1, 0)
                    await asyncio.sleep(0.3)

            trading: asyncio.Task[None] | None = None
            start = loop.time()
            try:
                async for msg in slow.messages(40):
                    if msg["type"] in ("snapshot", "book"):
                        mirror.apply(msg)  # seq ranges and checksums hold throughout
                        ranges += msg["type"] == "book" and msg["first"] < msg["seq"]
                    if trading is None and loop.time() > start + 2:
                        slow.rate = 8_000  # now really slow: the close must wait for it
                        trading = asyncio.create_task(bursts())
            finally:
                if trading is not None:
                    trading.cancel()
            assert ranges > 0 and mirror.checksums > 0
            assert (
                metrics("fanout").get_sample_value("hub_fanout_snapshot_resets_total") == resets + 2
            )
            assert slow.close is not None, "closed without a close frame"
            assert slow.close.code == 1013
            assert slow.close.reason == "slow consumer: reset 3 times in a minute"
            assert (
                metrics("fanout").get_sample_value("hub_fanout_slow_disconnects_total")
                == closes + 1
            )
            moving.cancel()
            await exact(victim, node)
    finally:
        await node.stop()


async def test_the_node_sends_no_keepalive_pings_of_its_own() -> None:
    """Defect 9: websockets' keepalive (a ping every 20 s, 20 s for the pong) dropped a
    slow reader silently, its pong stuck behind the backlog; the node's own rules
    (client_timeout_s, the slow-consumer policy) are the only ones that close."""
    node, _market, url = await started()
    try:
        async with HubClient(url) as client:
            await client.subscribe([{"channel": "book", "symbol": "X"}])
            (served,) = node.clients
            assert served.ws.ping_interval is None and served.ws.keepalive_task is None
    finally:
        await node.stop()


@pytest.mark.parametrize("size", [-(2**63), 2**63])
async def test_an_update_that_does_not_fit_the_book_resyncs_the_stream(size: int) -> None:
    """A poisoned update (a size past int64) marks the book stale and resyncs it from the
    next good snapshot instead of killing the source."""
    node, market, url = await started()
    try:
        async with HubClient(url) as victim:
            await victim.subscribe([{"channel": "book", "symbol": "X", "checksum": True}])
            market.step(20)
            await catch_up(victim, node)
            stream = node.streams["SIM", "X"]
            market.seq += 1
            node.on_event(BookUpdate("SIM", "X", market.seq, 0, 0, ((0, 9_990, size),)))
            assert not stream.synced
            market.step(5)
            await node.snapshots.put(market.snapshot())
            market.step(5)
            for _ in range(300):
                if stream.synced:
                    break
                await asyncio.sleep(0.01)
            assert stream.synced and stream.seq == market.seq
            await catch_up(victim, node)
            book = victim.books["SIM", "X"]
            assert book.snapshots == 2  # the resync snapshot replaced the book
            assert book.depth(0) == top(node, 0) and book.depth(1) == top(node, 1)
    finally:
        await node.stop()
