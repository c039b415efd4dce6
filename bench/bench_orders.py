"""Order path benchmark: order -> acknowledgement round trip over WebSocket on 127.0.0.1.

    .venv/bin/python -m bench.bench_orders [--rate 10000] [--seconds 5]

Starts ``hub demo --orders`` (embedded mode: in-process bus, local journal) as a
separate process, twice: with the journal fsynced at every group commit, and
without fsync. One client connection sends immediate-or-cancel limit orders
that cannot trade (each is accepted, then its remainder cancelled, so nothing
accumulates) at ``--rate`` orders per second, paced every millisecond, and
times each order from its send to its ``accepted`` report, once the server has settled
(its start-up garbage collection, app/gc_schedule.py, is behind it). Beside it, the same
orders through the venue in-process (risk checks + matching + reports, no I/O):
the cost of the matching stage alone. Figures are percentiles of all orders of
a run after a one-second warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from app.gc_schedule import SETTLE_S
from bench.machine import facts
from client.orders import messages

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key-1-0123456789abcdef012345"
ACCOUNTS = """
[defaults]
rate_per_s = 0
max_open_orders = 1000000

[[account]]
id = 1001
name = "bench"
key = "{KEY}"
"""
RESTING = 1_000
"""Open orders of the account in the second in-process row: a check must not walk them."""


def order(i: int) -> bytes:
    return orjson.dumps(
        {
            "op": "new",
            "cl_ord_id": f"b{i}",
            "symbol": "BTC-USD",
            "side": "buy",
            "price": "60000.00",  # below every ask: accepted, then the IOC remainder cancelled
            "qty": "0.01",
            "tif": "ioc",
        }
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_process(n: int, resting: int = 0) -> list[int]:
    """ns per order through check + apply, no I/O; ``resting``: buy orders the account
    has open below the market the whole time (a quoting trader's book)."""
    from trading.messages import Sim
    from trading.risk import Account, Limits
    from trading.simulator import SimulatedExchange
    from trading.venue import Original, Reject, TradingVenue

    venue = TradingVenue(
        {"BTC-USD": SimulatedExchange("SIM", "BTC-USD", 1)},
        [
            Account(
                1001,
                "bench",
                "bench-key-1-0123456789abcdef012345",
                Limits(rate_per_s=0, max_open_orders=10**6),
            )
        ],
    )
    venue.apply(Sim("BTC-USD", 2000, 1))
    for i in range(resting):
        price = f"{60000 + i % 500}.00"  # below every ask, inside the price collar
        rest = {"op": "new", "cl_ord_id": f"r{i}", "symbol": "BTC-USD", "side": "buy"}
        cmd = venue.check(1001, rest | {"price": price, "qty": "0.01"}, i)
        assert not isinstance(cmd, Reject | Original), cmd
        venue.apply(cmd)
    out = []
    for i in range(n):
        message = orjson.loads(order(i))
        started = time.perf_counter_ns()
        cmd = venue.check(1001, message, i)
        assert not isinstance(cmd, Reject | Original), cmd
        venue.apply(cmd)
        out.append(time.perf_counter_ns() - started)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def drive(port: int, rate: int, seconds: float, spawned: float = 0.0) -> dict[str, Any]:
    """Connect, wait until the server has settled (``spawned``: its start, perf_counter
    seconds), then send at ``rate`` for ``seconds``."""
    from websockets.asyncio.client import connect

    for _ in range(200):
        try:
            ws = await connect(
                f"ws://127.0.0.1:{port}/orders",
                additional_headers={"Authorization": f"Bearer {KEY}"},
                max_queue=None,
            )
            break
        except OSError:
            await asyncio.sleep(0.05)
    else:
        raise RuntimeError("order entry never came up")
    await ws.recv()  # logon
    # Its one-time start-up collection (app.gc_schedule) is not the steady state measured.
    await asyncio.sleep(max(0.0, spawned + SETTLE_S + 0.5 - time.perf_counter()))
    sent: dict[str, int] = {}
    latencies: list[float] = []
    warm_until = time.perf_counter_ns() + 1_000_000_000
    total = int(rate * seconds)
    done = asyncio.Event()

    async def reader() -> None:
        acked = 0
        async for raw in ws:
            at = time.perf_counter_ns()
            for m in messages(raw):
                if m.get("exec_type") != "accepted":
                    continue
                t0 = sent.pop(m["cl_ord_id"])
                if t0 >= warm_until:
                    latencies.append((at - t0) / 1000)
                acked += 1
                if acked == total:
                    done.set()
                    return

    task = asyncio.create_task(reader())
    started = time.perf_counter()
    per_ms = rate / 1000
    i = 0
    while i < total:
        due = int((time.perf_counter() - started) * 1000 * per_ms) + 1
        while i < min(due, total):
            sent[f"b{i}"] = time.perf_counter_ns()
            await ws.send(order(i).decode())
            i += 1
        await asyncio.sleep(0.001)
    send_seconds = time.perf_counter() - started
    await asyncio.wait_for(done.wait(), 60)
    task.cancel()
    await ws.close()
    return {"latencies_us": latencies, "sent_per_s": total / send_seconds}


def run_mode(fsync: bool, rate: int, seconds: float, gc_schedule: bool = True) -> dict[str, Any]:
    """One server run; ``gc_schedule`` False: Python's own collection schedule (the
    same-run baseline of app/gc_schedule.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        accounts = Path(tmp) / "accounts.toml"
        accounts.write_text(ACCOUNTS.replace("{KEY}", KEY))
        port = free_port()
        spawned = time.perf_counter()
        # The one setting the command line has no flag for; everything else is a flag.
        env = {**os.environ, "HUB_ORDERS__FSYNC": "true" if fsync else "false"}
        if not gc_schedule:
            env["HUB_GC_FULL_EVERY_S"] = "0"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "demo",
                "--orders",
                "--journal",
                str(Path(tmp) / "orders.journal"),
                "--accounts",
                str(accounts),
                "--orders-port",
                str(port),
                "--port",
                "0",
                "--symbols",
                "BTC-USD",
                "--rate",
                "50",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            import uvloop

            gc.disable()  # the client's own collections are not the server's latency
            try:
                return uvloop.run(drive(port, rate, seconds, spawned))
            finally:
                gc.enable()
        finally:
            proc.terminate()
            proc.wait(15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--rates", default="1000,10000", help="orders per second to run at, comma-separated"
    )
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    print(facts())
    matching = [ns / 1000 for ns in in_process(20_000)]
    quoting = [ns / 1000 for ns in in_process(20_000, resting=RESTING)]
    rows: list[tuple[str, list[float], float | None, float | None]] = [
        ("in-process: risk + matching + reports, no I/O", matching, None, None),
        (f"the same with {RESTING:,} of the account's orders resting", quoting, None, None),
    ]
    for rate in rates:
        for fsync in (False, True):
            r = run_mode(fsync, rate, args.seconds)
            name = f"WebSocket round trip at {rate:,}/s, journal " + (
                "fdatasync'd" if fsync else "without fsync"
            )
            limit = (3000.0 if fsync else 1000.0) if rate >= 10_000 else None
            rows.append((name, r["latencies_us"], r["sent_per_s"], limit))
        if rate >= 10_000:
            r = run_mode(False, rate, args.seconds, gc_schedule=False)
            name = f"baseline: the same at {rate:,}/s without fsync, Python's own GC schedule"
            rows.append((name, r["latencies_us"], r["sent_per_s"], None))
    print()
    print("| stage | orders/s sent | p50 us | p99 us | p99.9 us | goal | met |")
    print("|---|---|---|---|---|---|---|")
    for name, values, sent, limit in rows:
        p99 = percentile(values, 0.99)
        goal = "" if limit is None else f"p99 <= {limit:.0f} us"
        met = "" if limit is None else ("met" if p99 <= limit else "not met")
        shown = "" if sent is None else f"{sent:,.0f}"
        print(
            f"| {name} | {shown} | {statistics.median(values):.1f} | {p99:.1f} | "
            f"{percentile(values, 0.999):.1f} | {goal} | {met} |"
        )


if __name__ == "__main__":
    main()
