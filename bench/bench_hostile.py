"""Hostile-client benchmark: what one client's abuse costs everyone else on a fanout node.

    .venv/bin/python -m bench.bench_hostile [--quick] [--seconds 6] [--memory-seconds 20]

The node runs in this process on uvloop, fed by the fanout benchmark's synthetic
feed (``--symbols`` books of 99 levels at ``--rate`` events/s). Clients run in
separate processes.

1. **Subscribe burst.** A victim subscribed to one checksummed book pings the
   node (``{"op": "ping"}``, 16 a second, within the default rate limit) and
   takes each round trip; the baseline run has nobody else, the hostile run
   adds a client that sends 40 subscribe requests of 200 full-book entries
   (the default rate limit's burst: 8,000 snapshots to encode) and reads
   everything. The table shows the victim's round trips in both, and over the
   burst itself (from its first request to its last snapshot).
2. **Cycling views.** ``--cyclers`` connections keep re-subscribing one book
   with another depth and checksum variant (a new view each time) for
   ``--memory-seconds``, then leave. The table shows the node's RSS, its book
   feeds and the bytes its histories hold before, at the end and after they left.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop
from websockets.asyncio.client import connect

from bench.bench_fanout import SyntheticFeed, synced_node
from bench.machine import facts
from fanout.node import FanoutNode
from hub.config import FanoutConfig
from hub.events import BookUpdate, Trade

PING_EVERY_S = 1 / 16
BURST = 40
ENTRIES = 200


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- clients (separate processes) -----------------------------------------------------------


async def _victim(url: str, seconds: float, out: Any) -> None:
    async with connect(url, max_size=None, max_queue=None) as ws:
        entry = {"channel": "book", "symbol": "S0", "checksum": True}
        await ws.send(orjson.dumps({"op": "subscribe", "channels": [entry]}).decode())
        sent: dict[int, float] = {}
        samples: list[tuple[float, float]] = []

        async def read() -> None:
            while True:
                data = await ws.recv(decode=False)
                if b'"pong"' not in data:
                    continue
                now = time.monotonic()
                for msg in orjson.loads(data):
                    if msg["type"] == "pong" and msg["id"] in sent:
                        at = sent.pop(msg["id"])
                        samples.append((at, now - at))

        reader = asyncio.create_task(read())
        out.send("ready")
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            n += 1
            sent[n] = time.monotonic()
            await ws.send(orjson.dumps({"op": "ping", "id": n}).decode())
            await asyncio.sleep(PING_EVERY_S)
        for _ in range(300):  # the last answers
            if not sent:
                break
            await asyncio.sleep(0.1)
        reader.cancel()
        out.send(samples)


def victim_process(url: str, seconds: float, out: Any) -> None:
    uvloop.run(_victim(url, seconds, out))


async def _hostile(url: str, symbols: list[str], out: Any) -> None:
    async with connect(url, max_size=None, max_queue=None) as ws:
        loop = asyncio.get_running_loop()
        out.send("ready")
        await loop.run_in_executor(None, out.recv)  # go
        entries = [{"channel": "book", "symbol": s} for s in symbols[:ENTRIES]]
        start = time.monotonic()
        for n in range(BURST):
            await ws.send(orjson.dumps({"op": "subscribe", "id": n, "channels": entries}).decode())
        snapshots = 0
        while snapshots < BURST * len(entries):
            snapshots += (await ws.recv(decode=False)).count(b'"type":"snapshot"')
        out.send((start, time.monotonic(), snapshots))


def hostile_process(url: str, symbols: list[str], out: Any) -> None:
    uvloop.run(_hostile(url, symbols, out))


async def _cyclers(url: str, n: int, seconds: float, out: Any) -> None:
    subscribed = 0
    cycled = 0
    leave = asyncio.Event()

    async def cycle(i: int) -> None:
        nonlocal subscribed
        async with connect(url, max_size=None, max_queue=None) as ws:
            end = time.monotonic() + seconds
            k = 0
            while time.monotonic() < end:
                k += 1
                depth = 1 + (i * 97 + k) % 1000
                entry = {"channel": "book", "symbol": "S0", "depth": depth, "checksum": k % 2 == 0}
                await ws.send(
                    orjson.dumps({"op": "subscribe", "id": k, "channels": [entry]}).decode()
                )
                while b'"subscribed"' not in await ws.recv(decode=False):
                    pass
                subscribed += 1
                await asyncio.sleep(0.06)  # within the default rate limit
            nonlocal cycled
            cycled += 1
            if cycled == n:
                out.send(subscribed)
                await asyncio.get_running_loop().run_in_executor(None, out.recv)
                leave.set()
            await leave.wait()

    await asyncio.gather(*(cycle(i) for i in range(n)))


def cycler_process(url: str, n: int, seconds: float, out: Any) -> None:
    uvloop.run(_cyclers(url, n, seconds, out))


# --- the node (this process) ----------------------------------------------------------------


async def started(args: argparse.Namespace) -> tuple[FanoutNode, SyntheticFeed, str]:
    feed = SyntheticFeed(args.symbols, args.rate)
    cfg = FanoutConfig(port=0, anonymous=True, client_timeout_s=0)
    node, port = await synced_node(feed, cfg)
    return node, feed, f"ws://127.0.0.1:{port}/ws"


def sink_for(node: FanoutNode) -> Any:
    def sink(events: list[BookUpdate | Trade]) -> None:
        for e in events:
            node.on_event(e)

    return sink


def finish(proc: Any) -> None:
    """Let a client process that sent its results go (its closing handshakes do not count).
    It blocks: run it in an executor, never on the node's event loop."""
    proc.join(2)
    if proc.is_alive():
        proc.terminate()
        proc.join(5)


async def run_in(target: Any, *args: Any) -> tuple[Any, Any]:
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=target, args=(*args, child))
    proc.start()
    return proc, parent


async def watch(stalls: list[tuple[float, float]]) -> None:
    """Record (when, how long) the node's event loop ran something else for more than 2 ms
    in a row: the lateness of a 1 ms sleep, counted in this thread's CPU time (time the
    process waited for a core does not count)."""
    while True:
        before, cpu = time.monotonic(), time.thread_time()
        await asyncio.sleep(0.001)
        busy = min(time.monotonic() - before, time.thread_time() - cpu) - 0.001
        if busy > 0.002:
            stalls.append((before, busy))


async def burst_run(args: argparse.Namespace, hostile: bool) -> dict[str, Any]:
    node, feed, url = await started(args)
    loop = asyncio.get_running_loop()
    feeding = asyncio.create_task(feed.run(sink_for(node), args.seconds + 30))
    stalls: list[tuple[float, float]] = []
    watching = asyncio.create_task(watch(stalls))
    if hostile:  # started (and connected) before the victim measures anything
        proc, hpipe = await run_in(hostile_process, url, feed.symbols)
        assert await loop.run_in_executor(None, hpipe.recv) == "ready"
    victim, vpipe = await run_in(victim_process, url, args.seconds)
    assert await loop.run_in_executor(None, vpipe.recv) == "ready"
    window = None
    if hostile:
        await asyncio.sleep(args.seconds / 4)
        hpipe.send("go")
        start, end, snapshots = await loop.run_in_executor(None, hpipe.recv)
        await loop.run_in_executor(None, finish, proc)
        window = (start, end)
    samples: list[tuple[float, float]] = await loop.run_in_executor(None, vpipe.recv)
    await loop.run_in_executor(None, finish, victim)
    feeding.cancel()
    watching.cancel()
    await node.stop()
    out: dict[str, Any] = {"all": [rtt for _at, rtt in samples]}
    out["stall"] = max((late for _at, late in stalls), default=0.0)
    if window is not None:
        out["burst_stall"] = max(
            (late for at, late in stalls if window[0] <= at <= window[1]), default=0.0
        )
        out["burst"] = [rtt for at, rtt in samples if window[0] <= at <= window[1]]
        out["burst_s"] = window[1] - window[0]
        out["snapshots"] = snapshots
    return out


def state(node: FanoutNode) -> tuple[float, int, int, int]:
    """RSS, book views (depth or checksum variants), bytes their histories hold, and bytes
    all histories hold."""
    views = [f for f in node.feeds.values() if f.channel == "book" and (f.depth or f.checksum)]

    def held(feeds: Any) -> int:
        return sum(len(msg) for f in feeds for _first, _last, msg in f.history)

    return rss_mib(), len(views), held(views), held(node.feeds.values())


async def memory_run(args: argparse.Namespace) -> list[tuple[str, tuple[float, int, int, int]]]:
    node, feed, url = await started(args)
    loop = asyncio.get_running_loop()
    feeding = asyncio.create_task(feed.run(sink_for(node), args.memory_seconds + 60))
    await asyncio.sleep(1)
    gc.collect()
    rows = [("before", state(node))]
    proc, pipe = await run_in(cycler_process, url, args.cyclers, args.memory_seconds)
    subscribed = await loop.run_in_executor(None, pipe.recv)
    rows.append(("end of cycling", state(node)))
    pipe.send("leave")
    await loop.run_in_executor(None, finish, proc)
    await asyncio.sleep(2)
    gc.collect()
    rows.append((f"2 s after they left ({subscribed} subscribes)", state(node)))
    feeding.cancel()
    await node.stop()
    return rows


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 if ordered else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--rate", type=int, default=4000)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--memory-seconds", type=float, default=20.0, dest="memory_seconds")
    ap.add_argument("--cyclers", type=int, default=10)
    ap.add_argument("--part", choices=("both", "burst", "memory"), default="both")
    ap.add_argument("--quick", action="store_true", help="small sizes (for the tests)")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.memory_seconds, args.cyclers, args.symbols = 2.0, 1.0, 3, 50
    print(facts())
    print()
    if args.part in ("both", "burst"):
        burst_table(args)
    if args.part in ("both", "memory"):
        memory_table(args)


def burst_table(args: argparse.Namespace) -> None:
    quiet = uvloop.run(burst_run(args, False))
    loud = uvloop.run(burst_run(args, True))
    print(f"Victim ping round trips (ms), {args.symbols} books, {args.rate} events/s")
    print()
    print("| run | pings | p50 | p99 | max | node loop's longest stall |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rtts, stall in (
        ("baseline: no hostile client", quiet["all"], quiet["stall"]),
        ("hostile burst, whole run", loud["all"], loud["stall"]),
        (
            f"hostile burst, during the burst ({loud['burst_s']:.2f} s)",
            loud["burst"],
            loud["burst_stall"],
        ),
    ):
        print(
            f"| {name} | {len(rtts)} | {pct(rtts, 0.5):.2f} | {pct(rtts, 0.99):.2f} | "
            f"{max(rtts) * 1e3 if rtts else float('nan'):.2f} | {stall * 1e3:.1f} |"
        )
    print()
    entries = min(ENTRIES, args.symbols)
    print(
        f"The burst: {BURST} requests x {entries} entries, {loud['snapshots']} snapshots received"
    )
    print()


def memory_table(args: argparse.Namespace) -> None:
    rows = uvloop.run(memory_run(args))
    print(
        f"Node memory, {args.cyclers} connections cycling book views for {args.memory_seconds:g} s"
    )
    print()
    print("| when | RSS MiB | views | view history bytes | all history bytes |")
    print("|---|---:|---:|---:|---:|")
    for when, (rss, views, held, total) in rows:
        print(f"| {when} | {rss:.0f} | {views} | {held:,} | {total:,} |")


if __name__ == "__main__":
    main()
