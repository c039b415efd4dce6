"""The embedded hub: one process, no services, live books over the public protocol."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import orjson

from client.market import BookMirror, HubClient, connect, messages, mirror_for, request
from tests.test_fanout_cluster import read_for
from trading.simulator import SimulatedExchange


async def collect(url: str, symbol: str, deltas: int) -> tuple[BookMirror, int]:
    async with connect(url) as ws:
        mirror = await mirror_for(ws, symbol)
        assert mirror is not None
        await request(
            ws,
            {
                "op": "subscribe",
                "id": 2,
                "channels": [
                    {"channel": "book", "symbol": symbol},
                    {"channel": "trades", "symbol": symbol},
                    {"channel": "book", "symbol": "NOPE"},
                    {"channel": "orderbook", "symbol": symbol},
                ],
            },
        )
        trades = 0
        async for msg in messages(ws):
            if msg["type"] == "subscribed":
                assert [a["channel"] for a in msg["accepted"]] == ["book", "trades"]
                assert [r["code"] for r in msg["refused"]] == ["unknown_symbol", "unknown_channel"]
            elif msg["type"] in ("snapshot", "book"):
                mirror.apply(msg)
                assert not mirror.crossed()
                if mirror.updates >= deltas:
                    return mirror, trades
            elif msg["type"] == "trade":
                trades += 1
    raise AssertionError("connection closed early")


def test_demo_serves_exact_books_page_and_ops(hub_process: Any) -> None:
    demo = hub_process(
        "demo", "--port", "0", "--symbols", "BTC-USD,ETH-USD", "--seed", "3", "--rate", "400"
    )
    port = int(demo.wait_for(r"WebSocket API ws://127.0.0.1:(\d+)/ws").group(1))
    mirror, trades = asyncio.run(collect(f"ws://127.0.0.1:{port}/ws", "ETH-USD", 300))
    assert trades > 0
    assert mirror.snapshots == 1
    # Rebuild the simulator to the same seq: the client's book must equal it exactly.
    x = SimulatedExchange("SIM", "ETH-USD", 3)
    while x.book_seq < (mirror.seq or 0):
        x.step(0)
    assert mirror.depth(0) == [(p, s) for p, s, _n in x.engine.depth(0)]
    assert mirror.depth(1) == [(p, s) for p, s, _n in x.engine.depth(1)]

    base = f"http://127.0.0.1:{port}"
    health = orjson.loads(urllib.request.urlopen(f"{base}/healthz").read())
    assert health["ok"] is True
    assert {s["symbol"] for s in health["streams"] if s["synced"]} == {"BTC-USD", "ETH-USD"}
    metrics = urllib.request.urlopen(f"{base}/metrics").read().decode()
    assert "hub_fanout_frames_sent_total" in metrics
    assert "hub_feed_orders_total" in metrics
    # Collections on the schedule (app/gc_schedule.py), each pause timed by generation.
    young = re.search(r'python_gc_pause_seconds_count\{generation="0"\} (\d+)', metrics)
    assert young is not None and float(young.group(1)) > 0
    page = urllib.request.urlopen(f"{base}/").read().decode()
    assert "<title>mdhub" in page and "/app.js" in page
    assert demo.stop() == 0


def test_hub_subscribe_prints_a_verified_live_view(hub_process: Any) -> None:
    demo = hub_process("demo", "--port", "0", "--symbols", "BTC-USD", "--rate", "300")
    port = int(demo.wait_for(r"WebSocket API ws://127.0.0.1:(\d+)/ws").group(1))
    url = f"ws://127.0.0.1:{port}/ws"
    view = hub_process(
        "subscribe",
        "BTC-USD",
        "--url",
        url,
        "--depth",
        "5",
        "--count",
        "60",
        "--channel",
        "book",
        "--channel",
        "trades",
        "--channel",
        "bbo",
    )
    assert view.wait(30) == 0, view.stderr()
    lines = view.output
    assert lines[0].startswith("subscribed: book, trades, bbo")
    books = [x for x in lines if x.startswith(("snapshot", "book "))]
    assert books and all(x.rstrip().endswith("checksum ok") for x in books)
    counts = [re.search(r"levels (\d+)/(\d+)", x).groups() for x in books]  # type: ignore[union-attr]
    assert all(int(b) <= 5 and int(a) <= 5 for b, a in counts)  # a top-5 book
    assert any(x.startswith("trade #") for x in lines) or any(x.startswith("bbo") for x in lines)
    orders = hub_process("subscribe", "BTC-USD", "--url", url, "--count", "20", "--channel", "l3")
    assert orders.wait(30) == 0, orders.stderr()
    assert orders.output[0].startswith("subscribed: l3")
    l3 = [x for x in orders.output if x.startswith("l3 ")]
    assert l3[0].startswith("l3 snapshot") and len(l3) > 5
    queued = [re.search(r"orders (\d+)", x) for x in l3]
    assert all(m is not None and int(m.group(1)) > 0 for m in queued)
    named = ("subscribe", "btc-usd", "--venue", "sim", "--channel", "book", "--count", "1")
    by_name = hub_process(*named, "--url", url)  # any case, venue given
    assert by_name.wait(30) == 0, by_name.stderr()
    assert by_name.output[0].rstrip() == "subscribed: book on SIM BTC-USD"
    missing = hub_process("subscribe", "NOPE", "--url", url, "--count", "1")
    assert missing.wait(30) == 1
    assert "refused unknown_symbol" in "".join(missing.output)
    down = hub_process("subscribe", "BTC-USD", "--url", "ws://127.0.0.1:1/ws")
    assert down.wait(30) == 3 and "cannot connect" in down.stderr()
    assert demo.stop() == 0


def test_demo_workers_share_the_port_fed_by_the_relay(hub_process: Any) -> None:
    """``hub demo --workers 2``: the feed in one process, two nodes on one port fed by its
    relay (bus.relay). Clients land on both; a worker killed with SIGKILL is restarted and
    its clients resume on the port; every client's book is exactly the simulator's at its
    seq (checksums verified on the way); the port's /metrics and /healthz include the
    feed's; Ctrl-C stops them all, each once."""
    symbol, seed = "ETH-USD", 5
    demo = hub_process(
        "demo", "--port", "0", "--workers", "2", "--symbols", symbol, "--seed", str(seed),
        "--rate", "300",
    )  # fmt: skip
    port = int(demo.wait_for(r"WebSocket API ws://127.0.0.1:(\d+)/ws").group(1))
    url, base = f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}"

    def health() -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
                return r.status, orjson.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())

    async def connect() -> HubClient:
        client = HubClient(url, others=[url])
        await client.connect()
        channels = [{"channel": "book", "symbol": symbol, "checksum": True}]
        assert (await client.subscribe(channels))["refused"] == []
        return client

    async def scenario() -> list[HubClient]:
        clients = [await connect() for _ in range(12)]
        assert {c.welcome["node"] for c in clients} == {"demo-w0", "demo-w1"}
        await asyncio.gather(*(read_for(c, 1.5, []) for c in clients))
        status, before = health()
        assert status == 200 and before["ok"] and before["feed"]["ok"], before
        old = {n["worker"]: n["pid"] for n in before["nodes"]}
        victims = [c for c in clients if c.welcome["node"] == "demo-w1"]
        seqs = {id(c): c.books["SIM", symbol].seq or 0 for c in victims}
        os.kill(old[1], signal.SIGKILL)
        await asyncio.gather(*(read_for(c, 4.0, []) for c in clients))
        for c in victims:  # resumed on the port (worker 0), past where it was
            assert (c.books["SIM", symbol].seq or 0) > seqs[id(c)]
        deadline = time.monotonic() + 30
        while True:  # restarted, and synced from the snapshots the relay sends first
            status, now = health()
            pids = {n["worker"]: n.get("pid") for n in now["nodes"]}
            if status == 200 and pids.get(1) not in (None, old[1]):
                break
            assert time.monotonic() < deadline, f"worker 1 not back: {now}"
            await asyncio.sleep(0.3)
        assert pids[0] == old[0]
        assert all(s["synced"] for n in now["nodes"] for s in n["streams"]), now
        late = await connect()  # a client of the restarted worker, if it lands there
        await read_for(late, 1.5, [])
        await asyncio.gather(*(read_for(c, 0.5, []) for c in clients))
        return [*clients, late]

    clients = asyncio.run(scenario())
    metrics = urllib.request.urlopen(f"{base}/metrics").read().decode()
    assert 'hub_relay_workers{worker="feed"} 2.0' in metrics
    assert re.search(r'hub_feed_orders_total\{.*worker="feed"', metrics)
    for worker in ("0", "1"):
        assert re.search(rf'hub_fanout_connections\{{.*worker="{worker}"', metrics)
    x = SimulatedExchange("SIM", symbol, seed)
    for client in sorted(clients, key=lambda c: c.books["SIM", symbol].seq or 0):
        book = client.books["SIM", symbol]
        assert book.checksums > 10
        while x.book_seq < (book.seq or 0):
            x.step(0)
        assert book.depth(0) == [(p, s) for p, s, _n in x.engine.depth(0)]
        assert book.depth(1) == [(p, s) for p, s, _n in x.engine.depth(1)]
    # Ctrl-C in a terminal reaches every process of the group: each stops once, cleanly.
    _status, now = health()
    for pid in [demo.proc.pid, *(n["pid"] for n in now["nodes"])]:
        os.kill(pid, signal.SIGINT)
    assert demo.proc.wait(20) == 0, demo.stderr()
    assert "forced exit" not in demo.stderr()
    assert demo.stderr().count('"msg":"stopped by signal"') == 3, demo.stderr()
