"""Soak benchmark: does the embedded hub stay flat over hours of demo flow?

    .venv/bin/python -m bench.bench_soak [--minutes 2] [--speed 10] [--symbols BTC-USD,ETH-USD]

Runs ``hub demo`` as its own process with the simulated flow at ``--speed`` times the
demo's default rate (``feed.rate`` 200 orders/s per symbol), so ``--minutes 12 --speed 10``
is about two hours of demo flow (the table says how much the process really generated).
A real client (``client.market.HubClient``, its own process: this one) subscribes to the
book and trades of every symbol, keeps exact books and takes, for every message that
carries ``ts_event``, receive time minus ``ts_event`` (the feed's stamp on the event) as a
latency sample.

The baseline is the same process at the end of the warm-up (``--warmup-s``, 10 % of the
run by default): latency over the ``--window-s`` seconds after it, then the demo's RSS
(``/proc/<pid>/status`` VmRSS), resting orders per symbol (counted in an ``l3`` snapshot),
history bytes (the node's ``/healthz``) and orders generated (``/metrics``). The same
figures are taken over the last window of the run. RSS and history bytes are also polled
every ``POLL_S`` through the run: the node's resume history fills to its cap (a bound, not a
leak) over minutes, so memory is judged from the first poll at which it is full. Goals (issue
16): RSS growth < 10 % once the bounded state is full, p99 at the end <= 1.5x the start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

import trading.simulator
from bench.machine import facts
from client.market import HubClient
from hub.config import FanoutConfig

ROOT = Path(__file__).resolve().parent.parent
DEMO_RATE = 200.0
"""The demo's default simulated orders per second per symbol (``feed.rate``)."""
GOAL_RSS = 1.10
GOAL_P99 = 1.5
POLL_S = 5.0
FULL = 0.98
"""History at this share of its budget counts as full."""


@dataclass
class Sample:
    """The demo process at one moment, and the latency over the window before it."""

    at_s: float
    rss: int
    history_bytes: int
    resting: dict[str, int]
    orders: dict[str, float]
    latency_ns: list[int] = field(default_factory=list)
    demo_cpu: float = 0.0
    """The demo's CPU time over the window / the window (1.0: one core busy)."""
    client_cpu: float = 0.0
    """This process's (the measuring client's), likewise: near 1.0, it measures itself."""
    synced: int = 0
    """The node's streams in sync now."""
    resyncs: int = 0
    """Gaps plus resyncs of the node's streams so far (a node behind its bus drops events)."""

    def pct(self, q: float) -> float:
        """The ``q`` quantile of the window's latency in ms (nan without samples)."""
        values = sorted(self.latency_ns)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))] / 1e6


class Demo:
    """``hub demo`` as a child process, its stdout read by a thread."""

    def __init__(self, symbols: list[str], rate: float, seed: int, log: Path) -> None:
        self._stderr = log.open("wb")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "app.cli", "demo", "--port", "0", "--seed", str(seed)),
                *("--symbols", ",".join(symbols), "--rate", f"{rate:g}"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.port = 0
        found = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                m = re.search(r"WebSocket API ws://127.0.0.1:(\d+)/ws", line)
                if m:
                    self.port = int(m.group(1))
                    found.set()

        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(60):
            self.stop()
            raise SystemExit(f"hub demo did not start; see {log}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_s(self) -> float:
        """User + system CPU seconds of the demo so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base}/healthz", timeout=30) as r:
            health: dict[str, Any] = orjson.loads(r.read())
        return health

    def orders(self) -> dict[str, float]:
        """Simulated orders generated so far per symbol (``hub_feed_orders_total``)."""
        with urllib.request.urlopen(f"{self.base}/metrics", timeout=30) as r:
            text = r.read().decode()
        found = re.findall(r'^hub_feed_orders_total\{symbol="([^"]+)"\} (\S+)$', text, re.M)
        return {symbol: float(n) for symbol, n in found}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


async def resting_orders(url: str, symbol: str) -> int:
    """Resting orders of one book now: the size of its ``l3`` snapshot."""
    async with HubClient(url, reconnect=False) as c:
        await c.subscribe([{"channel": "l3", "symbol": symbol}])
        async for msg in c.messages():
            if msg["type"] == "l3_snapshot":
                return len(msg["bids"]) + len(msg["asks"])
    raise RuntimeError(f"no l3 snapshot of {symbol}")


class Listener:
    """The measuring client: every message applied to its book, latency into the open
    window (none open: not kept)."""

    def __init__(self, client: HubClient) -> None:
        self.client = client
        self.window: list[int] | None = None
        self.messages = 0
        self.resumes = 0

    async def run(self) -> None:
        async for msg in self.client.messages():
            now = time.time_ns()
            self.messages += 1
            if msg["type"] == "resumed":
                self.resumes += 1
            ts = msg.get("ts_event")
            if self.window is not None and isinstance(ts, int) and ts > 0:
                self.window.append(now - ts)


async def sample(
    demo: Demo, listener: Listener, symbols: list[str], window_s: float, started: float
) -> Sample:
    """Latency over the next ``window_s``, then the process's figures."""
    window: list[int] = []
    listener.window = window
    t0, demo0, mine0 = time.monotonic(), demo.cpu_s(), time.process_time()
    await asyncio.sleep(window_s)
    listener.window = None
    took = time.monotonic() - t0
    demo_cpu, client_cpu = (demo.cpu_s() - demo0) / took, (time.process_time() - mine0) / took
    loop = asyncio.get_running_loop()
    health = await loop.run_in_executor(None, demo.health)
    orders = await loop.run_in_executor(None, demo.orders)
    url = f"ws://127.0.0.1:{demo.port}/ws"
    resting = {s: await resting_orders(url, s) for s in symbols}
    at = time.monotonic() - started
    streams = health["streams"]
    synced = sum(1 for st in streams if st["synced"])
    resyncs = sum(st["gaps"] + st["resyncs"] for st in streams)
    return Sample(
        *(at, demo.rss(), health["history_bytes"], resting, orders, window),
        *(demo_cpu, client_cpu, synced, resyncs),
    )


@dataclass
class Memory:
    """RSS and history bytes polled through the run: ``(t_s, rss, history_bytes)``."""

    polls: list[tuple[float, int, int]] = field(default_factory=list)

    async def poll(self, demo: Demo, started: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            health = await loop.run_in_executor(None, demo.health)
            self.polls.append((time.monotonic() - started, demo.rss(), health["history_bytes"]))
            await asyncio.sleep(POLL_S)

    def full(self, budget: int) -> tuple[float, int] | None:
        """The first poll with the history at its cap: (t_s, rss)."""
        for at, rss, history in self.polls:
            if history >= FULL * budget:
                return at, rss
        return None


async def soak(
    args: argparse.Namespace, demo: Demo, memory: Memory
) -> tuple[Sample, Sample, Listener]:
    started = time.monotonic()
    polling = asyncio.create_task(memory.poll(demo, started))
    total = args.minutes * 60
    client = HubClient(f"ws://127.0.0.1:{demo.port}/ws")
    await client.connect()
    channels = [{"channel": c, "symbol": s} for s in args.symbols for c in ("book", "trades")]
    await client.subscribe(channels)
    listener = Listener(client)
    reading = asyncio.create_task(listener.run())
    try:
        await asyncio.sleep(max(0.0, args.warmup_s - (time.monotonic() - started)))
        first = await sample(demo, listener, args.symbols, args.window_s, started)
        left = total - args.window_s - (time.monotonic() - started)
        await asyncio.sleep(max(0.0, left))
        last = await sample(demo, listener, args.symbols, args.window_s, started)
    finally:
        reading.cancel()
        polling.cancel()
        await client.close()
    crossed = [k for k, b in client.books.items() if b.crossed()]
    if crossed:
        raise SystemExit(f"the client's book crossed: {crossed}")
    return first, last, listener


def ratio(end: float, start: float) -> str:
    return f"{end / start:.2f}x" if start else "n/a"


def print_table(
    first: Sample, last: Sample, args: argparse.Namespace, budget: int, memory: Memory
) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "not met"

    full = memory.full(budget)
    p99_ok = last.pct(0.99) <= GOAL_P99 * first.pct(0.99)
    print(
        f"| measure | start (t={first.at_s:.0f} s) | end (t={last.at_s:.0f} s) | "
        "end / start | goal |"
    )
    print("|---|---|---|---|---|")
    mb = 1024 * 1024
    print(
        f"| RSS, MiB | {first.rss / mb:.1f} | {last.rss / mb:.1f} | {ratio(last.rss, first.rss)} "
        "| history still filling at the start |"
    )
    if full is None:
        print("| RSS once the history is full, MiB | never full | | | not measured |")
    else:
        at, rss = full
        peak = max(r for t, r, _ in memory.polls if t >= at)
        ok = last.rss < GOAL_RSS * rss and peak < GOAL_RSS * rss
        print(
            f"| RSS once the history is full (t={at:.0f} s) / peak after, MiB | {rss / mb:.1f} | "
            f"{last.rss / mb:.1f} / {peak / mb:.1f} | {ratio(last.rss, rss)} | "
            f"growth < {GOAL_RSS - 1:.0%}: {verdict(ok)} |"
        )
    bound = getattr(trading.simulator, "MAX_RESTING", None)
    for s in args.symbols:
        a, b = first.resting[s], last.resting[s]
        goal = "no bound in trading.simulator" if bound is None else f"<= {bound:,}"
        if bound is not None:
            goal += f": {verdict(max(a, b) <= bound)}"
        print(f"| resting orders {s} | {a:,} | {b:,} | {ratio(b, a)} | {goal} |")
    h_ok = last.history_bytes <= budget
    print(
        f"| history bytes (all feeds) | {first.history_bytes:,} | {last.history_bytes:,} | "
        f"{ratio(last.history_bytes, first.history_bytes)} | <= {budget:,}: {verdict(h_ok)} |"
    )
    print(
        f"| event -> client p50, ms | {first.pct(0.5):.2f} | {last.pct(0.5):.2f} | "
        f"{ratio(last.pct(0.5), first.pct(0.5))} | |"
    )
    print(
        f"| event -> client p99, ms | {first.pct(0.99):.2f} | {last.pct(0.99):.2f} | "
        f"{ratio(last.pct(0.99), first.pct(0.99))} | end <= {GOAL_P99}x start: "
        f"{verdict(p99_ok)} |"
    )
    print(f"| streams in sync | {first.synced} | {last.synced} | | all {len(args.symbols)} |")
    print(f"| gaps + resyncs (first sync: 1 each) | {first.resyncs} | {last.resyncs} | | |")
    print(f"| latency samples | {len(first.latency_ns):,} | {len(last.latency_ns):,} | | |")
    print(
        f"| CPU over the window: demo / client, cores | {first.demo_cpu:.2f} / "
        f"{first.client_cpu:.2f} | {last.demo_cpu:.2f} / {last.client_cpu:.2f} | | |",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0, help="wall time of the run")
    ap.add_argument("--speed", type=float, default=10.0, help="times the demo's default rate")
    ap.add_argument("--symbols", default="BTC-USD,ETH-USD,SOL-USD")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--warmup-s", type=float, help="default: 10 %% of the run, at least 10 s")
    ap.add_argument("--window-s", type=float, help="latency window (default: 5 %%, 5-30 s)")
    args = ap.parse_args()
    args.symbols = [s for s in args.symbols.split(",") if s]
    total = args.minutes * 60
    if args.warmup_s is None:
        args.warmup_s = max(10.0, total / 10)
    if args.window_s is None:
        args.window_s = min(30.0, max(5.0, total / 20))
    if args.warmup_s + 2 * args.window_s > total:
        raise SystemExit("--minutes too short for the warm-up and two latency windows")
    rate = DEMO_RATE * args.speed
    print(facts())
    log = Path(tempfile.mkdtemp(prefix="bench-soak-")) / "demo.stderr"
    demo = Demo(args.symbols, rate, args.seed, log)
    memory = Memory()
    try:
        first, last, listener = asyncio.run(soak(args, demo, memory))
        alive = demo.proc.poll() is None
    finally:
        demo.stop()
    budget = FanoutConfig().history_kib * 1024 * 2 * len(args.symbols)  # book + l3 per stream
    wall = last.at_s
    done = min(last.orders.values(), default=0.0)
    print(
        f"hub demo (embedded: simulator, in-process bus, fanout node) at {rate:g} simulated "
        f"orders/s per symbol ({args.speed:g}x the demo's {DEMO_RATE:g}); {len(args.symbols)} "
        f"symbols; client: book + trades of each, in this process; pid {os.getpid()}"
    )
    print(
        f"ran {wall / 60:.1f} min wall; generated {done:,.0f} orders per symbol = "
        f"{done / DEMO_RATE / 3600:.2f} h of demo flow at its default rate "
        f"({done / wall:,.0f}/s per symbol achieved); client messages {listener.messages:,}, "
        f"reconnects {listener.resumes}; demo {'alive' if alive else 'DIED'} at the end"
    )
    print()
    print_table(first, last, args, budget, memory)


if __name__ == "__main__":
    main()
