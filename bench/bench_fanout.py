"""Fanout benchmark: delivered updates/s and latency to many WebSocket clients on 127.0.0.1.

    .venv/bin/python -m bench.bench_fanout [--seconds 5] [--quick]

The server side runs in this process on uvloop: a synthetic feed of book
updates and trades (``--symbols`` streams at a fixed total ``--rate``, stamped
``ts_recv`` when generated) into, in turn,

* the hub's ``FanoutNode`` (shared frames per flush interval, embedded mode), and
* the baseline: a plain websockets server that sends one frame per update to
  every subscriber (``websockets.broadcast``, the message encoded once).

Scenarios: 100 and 1000 clients at 1,000 updates/s each (throughput), then
lower rates with a short flush interval (latency at a rate clients absorb).

The clients run in a separate process: N connections, each subscribed to the
book and trades of one symbol (round robin). They read with a bare asyncio
protocol (no per-frame Python work), count update messages in the bytes, and
take the newest ``ts_recv`` of each read as a latency sample: hub receive
time to the client's read. Figures are over ``--seconds`` after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import multiprocessing as mp
import os
import random
import struct
import time
from typing import Any, cast

import orjson
import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from bench.machine import facts
from bus.local import MemorySnapshots
from fanout import protocol
from fanout.node import FanoutNode
from fanout.sender import FRAMES
from hub.config import FanoutConfig
from hub.events import BookSnapshot, BookUpdate, Instrument, Trade
from hub.ops import bound_port

TICK = 1_000_000  # ticks per generator tick of 1 ms
WARMUP_S = 1.5
UPDATE_MARKS = (b'"type":"book"', b'"type":"trade"')


# --- clients (separate process) -------------------------------------------------------------


def _masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x81]) + (
        bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    )
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


class Counter(asyncio.Protocol):
    """One WebSocket connection that counts update messages and samples latency."""

    def __init__(self, request: bytes, subscribe: bytes, stats: dict[str, Any]) -> None:
        self.request = request
        self.subscribe = subscribe
        self.stats = stats
        self.handshake = b""
        self.open = False
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self.handshake += data
            end = self.handshake.find(b"\r\n\r\n")
            if end < 0:
                return
            self.open = True
            self.transport.write(_masked_text(self.subscribe))
            data = self.handshake[end + 4 :]
        stats = self.stats
        if not stats["measuring"]:
            return
        chunk = self.tail + data
        stats["updates"] += chunk.count(UPDATE_MARKS[0]) + chunk.count(UPDATE_MARKS[1])
        stats["bytes"] += len(data)
        at = data.rfind(b'"ts_recv":')
        if at >= 0:
            end = at + 10
            while end < len(data) and data[end : end + 1].isdigit():
                end += 1
            if end < len(data):
                stats["latency"].append(time.time_ns() - int(data[at + 10 : end]))
        self.tail = data[-16:]


async def _clients(port: int, n: int, symbols: int, path: str, seconds: float, out: Any) -> None:
    loop = asyncio.get_running_loop()
    stats: dict[str, Any] = {"updates": 0, "bytes": 0, "latency": [], "measuring": False}
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    transports = []
    for i in range(n):
        symbol = f"S{i % symbols}"
        sub = orjson.dumps(
            {
                "op": "subscribe",
                "channels": [
                    {"channel": "book", "symbol": symbol},
                    {"channel": "trades", "symbol": symbol},
                ],
            }
        )
        t, _ = await loop.create_connection(
            functools.partial(Counter, request, sub, stats), "127.0.0.1", port
        )
        transports.append(t)
    out.send("connected")
    await asyncio.sleep(WARMUP_S)
    stats["measuring"] = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    stats["measuring"] = False
    elapsed = time.perf_counter() - started
    for t in transports:
        t.close()
    out.send(
        {
            "updates_per_s": stats["updates"] / elapsed,
            "bytes_per_s": stats["bytes"] / elapsed,
            "latency_ns": stats["latency"],
        }
    )


def client_process(port: int, n: int, symbols: int, path: str, seconds: float, out: Any) -> None:
    uvloop.run(_clients(port, n, symbols, path, seconds, out))


# --- server side (this process) -------------------------------------------------------------


class SyntheticFeed:
    """Synthetic book updates and trades for ``symbols`` streams at ``rate`` events/s."""

    def __init__(self, symbols: int, rate: int) -> None:
        self.symbols = [f"S{i}" for i in range(symbols)]
        self.rate = rate
        self.rng = random.Random(3)
        self.seq = dict.fromkeys(self.symbols, 1)
        self.trade_seq = dict.fromkeys(self.symbols, 0)
        self.instruments = [Instrument("SIM", s, "0.01", "0.0001") for s in self.symbols]

    def snapshots(self) -> list[BookSnapshot]:
        bids = tuple((100_000 - i, 10_000) for i in range(1, 50))
        asks = tuple((100_000 + i, 10_000) for i in range(50))
        return [BookSnapshot("SIM", s, 1, 0, bids, asks) for s in self.symbols]

    def events(self, n: int) -> list[BookUpdate | Trade]:
        out: list[BookUpdate | Trade] = []
        now = time.time_ns()
        rng = self.rng
        for _ in range(n):
            symbol = rng.choice(self.symbols)
            if rng.random() < 0.1:
                self.trade_seq[symbol] += 1
                seq = self.trade_seq[symbol]
                out.append(Trade("SIM", symbol, seq, str(seq), 100_000, 5, 0, now, now))
                continue
            self.seq[symbol] += 1
            side = rng.randrange(2)
            price = 100_000 - rng.randrange(1, 40) if side == 0 else 100_000 + rng.randrange(40)
            change = ((side, price, rng.randrange(1, 50_000)),)
            out.append(BookUpdate("SIM", symbol, self.seq[symbol], now, now, change))
        return out

    async def run(self, sink: Any, seconds: float) -> None:
        """Call ``sink(events)`` every millisecond with the events due, for ``seconds``."""
        start = time.perf_counter()
        sent = 0
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed * self.rate) - sent
            if due > 0:
                sink(self.events(due))
                sent += due
            await asyncio.sleep(0.001)


async def synced_node(feed: SyntheticFeed, cfg: FanoutConfig) -> tuple[FanoutNode, int]:
    """A started node whose every book is synced from ``feed``'s snapshots; its port."""
    store = MemorySnapshots()
    for inst, snap in zip(feed.instruments, feed.snapshots(), strict=True):
        await store.put_instrument(inst)
        await store.put(snap)
    node = FanoutNode(cfg, store)
    server = await node.start()
    for inst in feed.instruments:
        node.on_event(inst)
    for e in feed.events(len(feed.symbols) * 20):
        node.on_event(e)
    for _ in range(1000):
        if len(node.streams) == len(feed.symbols) and all(s.synced for s in node.streams.values()):
            break
        await asyncio.sleep(0.01)
    return node, bound_port(server)


async def run_hub(clients: int, args: argparse.Namespace) -> dict[str, Any]:
    feed = SyntheticFeed(args.symbols, args.rate)
    cfg = FanoutConfig(port=0, anonymous=True, flush_ms=args.flush_ms, client_timeout_s=0)
    node, port = await synced_node(feed, cfg)

    def sink(events: list[BookUpdate | Trade]) -> None:
        for e in events:
            node.on_event(e)

    result = await drive(port, clients, args, feed, sink, lambda: FRAMES._value.get())
    await node.stop()
    return result


async def run_baseline(clients: int, args: argparse.Namespace) -> dict[str, Any]:
    feed = SyntheticFeed(args.symbols, args.rate)
    subscribers: dict[str, set[ServerConnection]] = {s: set() for s in feed.symbols}
    frames = [0]
    insts = {i.symbol: i for i in feed.instruments}

    async def handler(ws: ServerConnection) -> None:
        try:
            async for data in ws:
                for item in orjson.loads(data)["channels"]:
                    subscribers[item["symbol"]].add(ws)
        except ConnectionClosed:
            pass  # the bench clients drop their sockets without a close frame
        for subs in subscribers.values():
            subs.discard(ws)

    def sink(events: list[BookUpdate | Trade]) -> None:
        for e in events:
            inst = insts[e.symbol]
            if isinstance(e, Trade):
                msg = protocol.encode_trade(inst, e)
            else:
                msg = protocol.encode_book(inst, e.seq, e.seq, e.ts_event, e.ts_recv, e.changes)
            targets = subscribers[e.symbol]
            broadcast(targets, msg, text=True)
            frames[0] += len(targets)

    server = await serve(handler, "127.0.0.1", 0, compression=None, max_queue=None)
    result = await drive(bound_port(server), clients, args, feed, sink, lambda: frames[0])
    server.close()
    await server.wait_closed()
    return result


async def drive(
    port: int, clients: int, args: argparse.Namespace, feed: SyntheticFeed, sink: Any, frames: Any
) -> dict[str, Any]:
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=client_process, args=(port, clients, args.symbols, "/ws", args.seconds, child)
    )
    proc.start()
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, parent.recv) == "connected"
    feeding = asyncio.create_task(feed.run(sink, WARMUP_S + args.seconds + 0.5))
    await asyncio.sleep(WARMUP_S)
    f0, t0 = frames(), time.perf_counter()
    await asyncio.sleep(args.seconds)
    frames_per_s = (frames() - f0) / (time.perf_counter() - t0)
    result: dict[str, Any] = await loop.run_in_executor(None, parent.recv)
    await feeding
    proc.join(10)
    result["frames_per_s"] = frames_per_s
    return result


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6 if ordered else float("nan")


SCENARIOS = (
    # clients, feed events/s, flush ms, goal
    (100, 6000, 5, ""),
    (1000, 6000, 5, ">= 1 M delivered updates/s and >= 5x the baseline"),
    (100, 1000, 1, "p99 <= 2 ms"),
    (1000, 400, 2, "p99 <= 10 ms"),
)


def verdict(goal: str, r: dict[str, Any], base: dict[str, Any]) -> str:
    if not goal:
        return ""
    if goal.startswith("p99"):
        ok = pct(r["latency_ns"], 0.99) <= float(goal.split()[2])
    else:
        ok = r["updates_per_s"] >= 1e6 and r["updates_per_s"] >= 5 * base["updates_per_s"]
    return f"{goal}: {'met' if ok else 'not met'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--quick", action="store_true", help="one small scenario (for the tests)")
    ap.add_argument("--only", type=int, help="run only scenario N (0-based)")
    ap.add_argument("--flush-ms", type=int, dest="flush", help="override the flush interval")
    args = ap.parse_args()
    print(facts())
    print(
        f"{args.symbols} symbols, 10% of events trades; each client: book + trades of one "
        "symbol; clients in a separate process"
    )
    scenarios: tuple[tuple[int, int, int, str], ...] = (
        ((20, 400, 2, ""),) if args.quick else SCENARIOS
    )
    if args.only is not None:
        scenarios = (scenarios[args.only],)
    if args.flush:
        scenarios = tuple((c, r, args.flush, g) for c, r, _f, g in scenarios)
    print()
    print(
        "| clients | feed events/s (per client) | flush | server | delivered updates/s "
        "| frames/s | MB/s | p50 ms | p99 ms | p99.9 ms | vs baseline | goal |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for clients, rate, flush, goal in scenarios:
        run = argparse.Namespace(**{**vars(args), "rate": rate, "flush_ms": flush})
        base = uvloop.run(run_baseline(clients, run))
        hub = uvloop.run(run_hub(clients, run))
        for name, r in (("baseline: a frame per update", base), ("hub FanoutNode", hub)):
            lat = r["latency_ns"]
            mine = r is hub
            ratio = f"{r['updates_per_s'] / base['updates_per_s']:.1f}x" if mine else ""
            print(
                f"| {clients} | {rate:,} ({rate // args.symbols:,}) | {flush} ms | {name} | "
                f"{r['updates_per_s']:,.0f} | {r['frames_per_s']:,.0f} | "
                f"{r['bytes_per_s'] / 1e6:.1f} | {pct(lat, 0.5):.2f} | {pct(lat, 0.99):.2f} | "
                f"{pct(lat, 0.999):.2f} | {ratio} | {verdict(goal, r, base) if mine else ''} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
