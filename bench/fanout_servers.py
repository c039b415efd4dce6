"""The server side of bench.bench_fanout: the synthetic feed and the two servers it feeds.

Each server runs as ``workers`` processes sharing one port through SO_REUSEPORT, like
``hub fanout --workers N`` (the port held by ``app.workers.reserve_port``, every worker's
listening socket joining its group). Each worker runs its own server fed by its own copy
of the deterministic synthetic feed: the same seed, started at the same wall-clock
instant, paced at the same rate, for the same fixed number of events. That copy stands
in for each worker being a Kafka consumer of the same streams (as ``hub fanout
--workers`` workers are): every worker sees the same events and ends on the same books,
whichever worker the kernel gave a client.

* hub: the hub's ``FanoutNode`` in embedded mode (books synced from a snapshot store).
* baseline: a naive websockets server: it keeps each book (to answer a subscription with
  a snapshot) and sends one frame per update to every subscriber
  (``websockets.broadcast``, the message encoded once). Its work is bounded like the
  hub's: the feed offers a fixed count of events, and a connection whose unsent bytes pass
  the hub's ``send_buffer_kib`` is dropped as slow (counted), so its latency never
  includes an unbounded backlog; a feed ``FEED_GRACE_S`` behind its schedule stops.
"""

from __future__ import annotations

import asyncio
import random
import resource
import time
from typing import Any

import orjson
import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from bus.local import MemorySnapshots
from fanout import protocol
from fanout.node import FanoutNode
from fanout.sender import FRAMES, SLOW
from hub.config import FanoutConfig
from hub.events import BookSnapshot, BookUpdate, Instrument, Trade
from hub.ops import bound_port

Books = dict[str, tuple[dict[int, int], dict[int, int]]]

FEED_GRACE_S = 10.0
"""The work bound in time: a server whose feed is this far behind its schedule has the
rest of the events withheld (the table says so): no run waits on a saturated server."""
SWEEP_S = 0.05
"""How often the baseline checks its connections' unsent bytes against the bound."""


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (10,000 connections need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class SyntheticFeed:
    """Synthetic book updates and trades for ``symbols`` streams at ``rate`` events/s;
    deterministic (seeded): the n-th event is the same in every copy. It keeps the books
    its updates build (``books``), the book every client must end with."""

    def __init__(self, symbols: int, rate: int) -> None:
        self.symbols = [f"S{i}" for i in range(symbols)]
        self.rate = rate
        self.rng = random.Random(3)
        self.seq = dict.fromkeys(self.symbols, 1)
        self.trade_seq = dict.fromkeys(self.symbols, 0)
        self.instruments = [Instrument("SIM", s, "0.01", "0.0001") for s in self.symbols]
        self.sent = 0
        bids = {100_000 - i: 10_000 for i in range(1, 50)}
        asks = {100_000 + i: 10_000 for i in range(50)}
        self.books: Books = {s: (dict(bids), dict(asks)) for s in self.symbols}

    def snapshots(self) -> list[BookSnapshot]:
        return [
            BookSnapshot(
                "SIM",
                s,
                1,
                0,
                tuple(sorted(self.books[s][0].items(), reverse=True)),
                tuple(sorted(self.books[s][1].items())),
            )
            for s in self.symbols
        ]

    def events(self, n: int, due_ns: int | None = None) -> list[BookUpdate | Trade]:
        """The next ``n`` events, stamped now, or (``due_ns``) each at its own place in the
        schedule: the first at due_ns, then one every 1/rate s."""
        out: list[BookUpdate | Trade] = []
        base = time.time_ns() if due_ns is None else due_ns
        step = 0.0 if due_ns is None else 1e9 / self.rate
        rng = self.rng
        for k in range(n):
            now = base + int(k * step)
            symbol = rng.choice(self.symbols)
            if rng.random() < 0.1:
                self.trade_seq[symbol] += 1
                seq = self.trade_seq[symbol]
                out.append(Trade("SIM", symbol, seq, str(seq), 100_000, 5, 0, now, now))
                continue
            self.seq[symbol] += 1
            side = rng.randrange(2)
            price = 100_000 - rng.randrange(1, 40) if side == 0 else 100_000 + rng.randrange(40)
            size = rng.randrange(1, 50_000)
            self.books[symbol][side][price] = size
            out.append(
                BookUpdate("SIM", symbol, self.seq[symbol], now, now, ((side, price, size),))
            )
        self.sent += n
        return out

    async def run(
        self, sink: Any, seconds: float, total: int | None = None, start_at: float | None = None
    ) -> None:
        """Call ``sink(events)`` every millisecond with the events due, for ``seconds`` or
        until ``total`` events were sent; paced from the wall-clock ``start_at`` (waited
        for) when given, so copies in other processes send the same events at once, and
        then each event is stamped with the time it was due, not when a busy loop got to
        it (no coordinated omission: a server that falls behind shows it as latency)."""
        if start_at is not None:
            await asyncio.sleep(max(0.0, start_at - time.time()))
        start = time.time()
        limit = total if total is not None else 1 << 62
        sent = 0
        while (elapsed := time.time() - start) < seconds and sent < limit:
            # At most 50 ms of events per call: a server that falls behind still meets
            # the deadline within one call.
            due = min(int(elapsed * self.rate), limit, sent + max(1, self.rate // 20)) - sent
            if due > 0:
                due_ns = None if start_at is None else int(start * 1e9 + sent * 1e9 / self.rate)
                sink(self.events(due, due_ns))
                sent += due
            await asyncio.sleep(0.001)


async def synced_node(
    feed: SyntheticFeed, cfg: FanoutConfig, reuse_port: bool = False
) -> tuple[FanoutNode, int]:
    """A started node whose every book is synced from ``feed``'s snapshots; its port."""
    store = MemorySnapshots()
    for inst, snap in zip(feed.instruments, feed.snapshots(), strict=True):
        await store.put_instrument(inst)
        await store.put(snap)
    node = FanoutNode(cfg, store)
    server = await node.start(reuse_port=reuse_port)
    for inst in feed.instruments:
        node.on_event(inst)
    for e in feed.events(len(feed.symbols) * 20):
        node.on_event(e)
    for _ in range(1000):
        if len(node.streams) == len(feed.symbols) and all(s.synced for s in node.streams.values()):
            break
        await asyncio.sleep(0.01)
    return node, bound_port(server)


# --- one worker process ---------------------------------------------------------------------


class Baseline:
    """The naive server's state: books, subscribers, frames sent, connections dropped."""

    def __init__(self, feed: SyntheticFeed, bound: int) -> None:
        self.insts = {i.symbol: i for i in feed.instruments}
        self.books: Books = {s: (dict(b), dict(a)) for s, (b, a) in feed.books.items()}
        self.seq = dict(feed.seq)
        self.subscribers: dict[str, set[ServerConnection]] = {s: set() for s in feed.symbols}
        self.connections: set[ServerConnection] = set()
        self.bound = bound
        self.frames = 0
        self.dropped = 0

    def snapshot(self, symbol: str) -> bytes:
        bids, asks = self.books[symbol]
        return protocol.encode_snapshot(
            self.insts[symbol],
            sorted(bids.items(), reverse=True),
            sorted(asks.items()),
            self.seq[symbol],
            0,
            "subscribe",
        )

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.add(ws)
        try:
            async for data in ws:
                for item in orjson.loads(data)["channels"]:
                    symbol = item["symbol"]
                    if item["channel"] == "book":
                        broadcast([ws], self.snapshot(symbol), text=True)
                    self.subscribers[symbol].add(ws)
        except ConnectionClosed:
            pass  # the bench clients drop their sockets without a close frame
        self.connections.discard(ws)
        for subs in self.subscribers.values():
            subs.discard(ws)

    def sink(self, events: list[BookUpdate | Trade]) -> None:
        for e in events:
            inst = self.insts[e.symbol]
            if isinstance(e, Trade):
                msg = protocol.encode_trade(inst, e)
            else:
                for side, price, size in e.changes:
                    levels = self.books[e.symbol][side]
                    if size:
                        levels[price] = size
                    else:
                        levels.pop(price, None)
                self.seq[e.symbol] = e.seq
                msg = protocol.encode_book(inst, e.seq, e.seq, e.ts_event, e.ts_recv, e.changes)
            targets = self.subscribers[e.symbol]
            broadcast(targets, msg, text=True)
            self.frames += len(targets)

    async def sweep(self) -> None:
        """The work bound: drop a connection whose unsent bytes pass ``bound``."""
        while True:
            await asyncio.sleep(SWEEP_S)
            for ws in list(self.connections):
                if ws.transport.get_write_buffer_size() > self.bound:
                    self.dropped += 1
                    self.connections.discard(ws)
                    for subs in self.subscribers.values():
                        subs.discard(ws)
                    ws.transport.abort()


async def _worker(kind: str, port: int, p: dict[str, Any], conn: Any) -> None:
    loop = asyncio.get_running_loop()
    feed = SyntheticFeed(p["symbols"], p["rate"])
    cfg = FanoutConfig(
        port=port,
        anonymous=True,
        flush_ms=p["flush_ms"],
        client_timeout_s=0,
        max_connections=p["clients"] + 100,
    )
    frames: Any
    dropped: Any
    if kind == "hub":
        node, _ = await synced_node(feed, cfg, reuse_port=True)

        def sink(events: list[BookUpdate | Trade]) -> None:
            for e in events:
                node.on_event(e)

        def frames() -> float:
            return float(FRAMES._value.get())

        def dropped() -> float:
            return float(SLOW._value.get())

    else:
        feed.events(len(feed.symbols) * 20)  # the same events the hub's sync consumed
        base = Baseline(feed, cfg.send_buffer_kib * 1024)
        sink = base.sink
        server = await serve(
            base.handler,
            "127.0.0.1",
            port,
            reuse_port=True,
            compression=None,
            max_queue=None,
            ping_interval=None,
        )
        sweeping = asyncio.create_task(base.sweep())

        def frames() -> float:
            return base.frames

        def dropped() -> float:
            return base.dropped

    conn.send("ready")
    start_at: float = await loop.run_in_executor(None, conn.recv)
    feed_s = p["feed_s"]
    feeding = asyncio.create_task(feed.run(sink, feed_s + FEED_GRACE_S, p["total"], start_at))
    await asyncio.sleep(max(0.0, start_at + p["warmup_s"] - time.time()))
    f0, t0, cpu = frames(), time.perf_counter(), time.process_time()
    await asyncio.sleep(p["seconds"])
    elapsed = time.perf_counter() - t0
    frames_per_s = (frames() - f0) / elapsed
    cpu = (time.process_time() - cpu) / elapsed
    await feeding
    conn.send(
        {
            "frames_per_s": frames_per_s,
            "cpu": cpu,
            "events": feed.sent,
            "dropped": dropped(),
            "books": feed.books,
            "seq": feed.seq,
            "trade_seq": feed.trade_seq,
        }
    )
    await loop.run_in_executor(None, conn.recv)  # "stop": the clients took their books
    if kind == "hub":
        await node.stop()
    else:
        sweeping.cancel()
        server.close()


def server_process(kind: str, port: int, params: dict[str, Any], conn: Any) -> None:
    """One worker ("hub" or "baseline") on the shared ``port``, driven through ``conn``."""
    raise_fd_limit()
    uvloop.run(_worker(kind, port, params, conn))
