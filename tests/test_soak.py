"""A short soak of the embedded hub with the order path: the simulated flow at full speed
for a fixed number of orders, a market-data client on real sockets and a trader sending
more orders than the idempotency window. Every long-lived container must stay within its
documented bound (docs/architecture.md, "Bounds"), sampled while it runs and at the end:
counts, never times. ``bench/bench_soak.py`` is the long form (RSS and latency)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import trading.simulator
from bus.local import InProcessBus, MemorySnapshots
from bus.output import FeedOutput
from client.market import HubClient
from client.orders import OrderClient
from fanout.node import FanoutNode, run_source
from fanout.sources import bus_source
from fanout.stream import CANDLES_KEPT, MAX_BUFFER, RECENT_TRADES
from hub.config import FanoutConfig, FeedConfig, OrdersConfig
from hub.ops import bound_port
from tests.test_bench import run_bench
from trading.accounts import REPORTS_KEPT
from trading.gateway import OrderPath
from trading.risk import Account, Limits
from trading.simulator import SimulatedExchange

SYMBOLS = ("BTC-USD", "ETH-USD")
SIM_ORDERS = 20_000
"""Simulated orders per symbol: the run's length."""
WINDOW = 40
"""The idempotency window of this run (``trading.accounts.CLOSED_KEPT`` is 10,000)."""
RESTING = 5
"""Orders the trader leaves open: the window never forgets them."""
KEY = "soak-trader-key-0123456789abcdef0123456789"
HISTORY_KIB = 64


class Peaks:
    """The largest size each bounded container reached, sampled while the hub runs."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def note(self, name: str, size: int) -> None:
        self.seen[name] = max(self.seen[name], size)

    def take(self, node: FanoutNode, path: OrderPath, bus: InProcessBus) -> None:
        for feed in node.feeds.values():
            self.note("history bytes per feed", feed.history.bytes)
        for client in node.clients:
            self.note("client queue", len(client.pending))
            self.note("client conflated feeds", len(client.conflated))
        for stream in node.streams.values():
            self.note("stream buffer", len(stream.buffer))
            self.note("recent trades", len(stream.recent_trades))
            for kept in stream.candles.values():
                self.note("candles per interval", len(kept))
        for queue in bus._queues:
            self.note("bus queue", queue.qsize())
        assert node.bars is not None
        self.note("bars built", len(node.bars.bars))
        for state in path.venue.state.values():
            self.note("closed orders kept", len(state.closed))
            self.note("cl_ord_ids past the open orders", len(state.orders_by_cl) - RESTING)
            self.note("reports", len(state.reports))
        self.note("open orders", sum(len(s.open_orders) for s in path.venue.state.values()))
        self.note("venue orders", len(path.venue.orders))


def names(cl: str, report: dict[str, Any]) -> bool:
    return bool(report.get("cl_ord_id") == cl)


async def trade(port: int, path: OrderPath) -> list[dict[str, Any]]:
    """Rest ``RESTING`` orders, then send three windows of IOC orders (each closes at once:
    cancelled, or filled and cancelled), each acknowledged before the next."""
    client, hello = await OrderClient.logon(f"ws://127.0.0.1:{port}/orders", KEY, max_queue=None)
    assert hello["type"] == "logon", hello
    x = path.venue.exchanges["BTC-USD"]
    price = x.instrument.tick.to_str(path.venue.reference_price("BTC-USD") * 95 // 100)
    acks = []
    try:
        orders = [(f"rest{i}", "gtc") for i in range(RESTING)]
        orders += [(f"ioc{i}", "ioc") for i in range(3 * WINDOW)]
        for cl, tif in orders:
            m = {"op": "new", "cl_ord_id": cl, "symbol": "BTC-USD", "side": "buy"}
            await client.send({**m, "price": price, "qty": "0.01", "tif": tif})
            seen = await client.until(functools.partial(names, cl), 100, wait=20)
            assert seen[-1]["type"] == "exec", seen[-1]
            acks.append(seen[-1])
    finally:
        await client.close()
    return acks


async def soak(tmp_path: Path) -> tuple[Peaks, OrderPath, FanoutNode, HubClient]:
    bus = InProcessBus()
    store = MemorySnapshots()
    feed = FeedConfig(symbols=SYMBOLS, rate=0, max_orders=SIM_ORDERS, seed=4)
    orders = OrdersConfig(
        enabled=True, port=0, journal=str(tmp_path / "orders.journal"), fsync=False
    )
    account = Account(1001, "soak", KEY, Limits(rate_per_s=100_000, max_open_orders=RESTING + 1))
    path = OrderPath(orders, feed, FeedOutput(bus, store), [account])
    path.venue.closed_kept = WINDOW
    cfg = FanoutConfig(port=0, anonymous=True, history_kib=HISTORY_KIB)
    node = FanoutNode(cfg, store, bars_from_trades=True)
    server = await node.start()
    tasks = [
        asyncio.create_task(path.run()),
        asyncio.create_task(run_source(node, lambda n: bus_source(n, bus))),
    ]
    peaks = Peaks()
    client = HubClient(f"ws://127.0.0.1:{bound_port(server)}/ws")
    try:
        for _ in range(500):
            synced = [s for s in node.streams.values() if s.synced]
            if path.port and len(synced) == len(SYMBOLS):
                break
            await asyncio.sleep(0.02)
        await client.connect()
        channels = [{"channel": c, "symbol": s} for s in SYMBOLS for c in ("book", "trades")]
        answer = await client.subscribe(channels)
        assert len(answer["accepted"]) == len(channels), answer

        async def read() -> None:
            async for _msg in client.messages():
                pass

        reading = asyncio.create_task(read())
        trading_task = asyncio.create_task(trade(path.port, path))
        x = path.venue.exchanges
        for _ in range(6000):  # the flow generated and every update applied by the node
            peaks.take(node, path, bus)
            done = all(e.orders >= SIM_ORDERS for e in x.values())
            caught_up = all(
                node.streams[e.instrument.venue, e.instrument.symbol].seq == e.book_seq
                for e in x.values()
            )
            if done and caught_up and trading_task.done():
                break
            await asyncio.sleep(0.01)
        acks = await trading_task
        assert len(acks) == RESTING + 3 * WINDOW
        for _ in range(500):  # the client has every update the node has
            mine = {k[1]: b.seq for k, b in client.books.items()}
            if mine == {k[1]: s.seq for k, s in node.streams.items()}:
                break
            await asyncio.sleep(0.01)
        peaks.take(node, path, bus)
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
    finally:
        await client.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await node.stop()
    return peaks, path, node, client


async def test_a_short_soak_keeps_every_container_within_its_bound(tmp_path: Path) -> None:
    peaks, path, node, client = await soak(tmp_path)
    seen = peaks.seen
    # It ran: the flow filled the histories past their budget and the trader the window.
    assert all(x.orders >= SIM_ORDERS for x in path.venue.exchanges.values())
    assert {k[1]: b.seq for k, b in client.books.items()} == {
        k[1]: s.seq for k, s in node.streams.items()
    }
    assert not any(b.crossed() for b in client.books.values())
    assert seen["history bytes per feed"] > HISTORY_KIB * 1024 // 2
    # The fanout node (fanout/delivery.py, fanout/stream.py) and the bus.
    assert seen["history bytes per feed"] <= HISTORY_KIB * 1024
    assert seen["client queue"] <= node.cfg.queue_limit
    assert seen["client conflated feeds"] <= len(SYMBOLS) * 2
    assert seen["stream buffer"] <= MAX_BUFFER
    assert seen["recent trades"] <= RECENT_TRADES
    assert seen["candles per interval"] <= CANDLES_KEPT
    assert seen["bars built"] <= 50_000 + 10  # BarBuilder trims past 50,000
    assert seen["bus queue"] <= 100_000  # InProcessBus's maxsize
    # The venue (trading/accounts.py): the trader sent three windows of orders.
    state = path.venue.state[1001]
    assert seen["closed orders kept"] == WINDOW == len(state.closed)
    assert seen["cl_ord_ids past the open orders"] <= WINDOW
    assert len(state.open_orders) == RESTING
    assert set(state.orders_by_cl) == {f"rest{i}" for i in range(RESTING)} | {
        f"ioc{i}" for i in range(2 * WINDOW, 3 * WINDOW)
    }
    assert seen["venue orders"] <= WINDOW + RESTING == len(path.venue.orders)
    assert seen["reports"] <= REPORTS_KEPT
    assert len(state.reports) >= RESTING + 3 * WINDOW  # an ack each, and an IOC's close


def test_the_simulator_keeps_its_resting_orders_bounded() -> None:
    bound = getattr(trading.simulator, "MAX_RESTING", None)
    if bound is None:
        pytest.skip(
            "trading.simulator exposes no MAX_RESTING: the simulator before the rewrite of "
            "issue 16 lets resting orders grow with the flow, so there is no bound to assert"
        )
    x = SimulatedExchange("SIM", "BTC-USD", 7)
    most = 0
    for i in range(200_000):
        x.step(i)
        if i % 1000 == 0:
            most = max(most, sum(n for side in (0, 1) for _p, _s, n in x.engine.depth(side)))
    assert 0 < most <= bound


def test_the_soak_benchmark_prints_start_and_end() -> None:
    stdout = run_bench("bench_soak", "--minutes", "0.5", "--speed", "2", "--symbols", "BTC-USD")
    rows = {r.split(" | ")[0]: r for r in stdout.splitlines() if r.startswith("| ")}
    for name in ("RSS, MiB", "resting orders BTC-USD", "history bytes (all feeds)"):
        assert f"| {name}" in rows
    assert "end <= 1.5x start" in rows["| event -> client p99, ms"]
    assert any(name.startswith("| RSS once the history is full") for name in rows)
    history = rows["| history bytes (all feeds)"].split(" | ")
    assert int(history[2].replace(",", "")) <= 2 * 1024 * 1024  # budget: book + l3 feeds
    assert int(rows["| resting orders BTC-USD"].split(" | ")[2].replace(",", "")) > 0
