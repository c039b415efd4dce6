"""Kill -9 the feed process in the middle of a stream of orders and start it again, against
the real Kafka and Redis: every acknowledged order and fill is still there and reported
the same, nothing is repeated, an unacknowledged order is either wholly there or absent,
and the public stream in Kafka has exactly one version of every seq."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from bus.kafka import consumer, start_consumer
from client.orders import OrderClient, messages
from hub.config import KafkaConfig
from hub.events import BookUpdate, Trade, decode
from tests.conftest import stack_env

pytestmark = pytest.mark.services


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def logon(port: int) -> tuple[OrderClient, dict[str, Any]]:
    for _ in range(150):
        try:
            return await OrderClient.logon(f"ws://127.0.0.1:{port}/orders", "demo-key-1")
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("order entry never came up")


class Trader:
    """Sends orders (some marketable, some cancelled) and keeps every answer."""

    def __init__(self, client: OrderClient) -> None:
        self.ws = client.ws
        self.sent: list[str] = []
        self.reports: list[dict[str, Any]] = []
        self.acked: dict[str, dict[str, Any]] = {}

    async def read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                for m in messages(raw):
                    if m.get("type") == "exec":
                        self.reports.append(m)
                        self.acked.setdefault(m["cl_ord_id"], m)

    async def send(self, stop: asyncio.Event) -> None:
        rng = random.Random(4)
        i = 0
        with contextlib.suppress(ConnectionClosed):
            while not stop.is_set():
                i += 1
                cl = f"o{i}"
                side = rng.choice(("buy", "sell"))
                # around 65000: about a third cross the spread and trade with the flow
                offset = rng.randrange(-30, 15) * (1 if side == "sell" else -1)
                m: dict[str, Any] = {
                    "op": "new",
                    "cl_ord_id": cl,
                    "symbol": "BTC-USD",
                    "side": side,
                    "price": f"{65000 + offset}.00",
                    "qty": "0.01",
                }
                self.sent.append(cl)
                await self.ws.send(orjson.dumps(m).decode())
                if i % 2 == 0 and self.acked:  # keep well under the open-order limit
                    victim = rng.choice(sorted(self.acked))
                    await self.ws.send(
                        orjson.dumps({"op": "cancel", "orig_cl_ord_id": victim}).decode()
                    )
                await asyncio.sleep(0.008)  # under the account's message rate limit


async def trade_until_killed(port: int, feed: Any) -> Trader:
    ws, hello = await logon(port)
    assert hello["type"] == "logon" and hello["last_seq"] == 0
    trader = Trader(ws)
    stop = asyncio.Event()
    reader = asyncio.create_task(trader.read())
    sender = asyncio.create_task(trader.send(stop))
    deadline = time.monotonic() + 60
    while len(trader.acked) < 200:
        assert time.monotonic() < deadline, f"only {len(trader.acked)} acks: {trader.reports[-3:]}"
        await asyncio.sleep(0.02)
    feed.proc.kill()  # SIGKILL, orders still in flight
    feed.proc.wait()
    await asyncio.wait_for(asyncio.gather(reader, sender, return_exceptions=True), 10)
    stop.set()
    return trader


async def after_restart(port: int) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    client, hello = await logon(port)
    await client.send({"op": "resend", "from_seq": 1})
    resent = (await client.until(lambda m: m["type"] == "resend_done", limit=100_000))[:-1]
    statuses = {}
    for cl in ("o1", "o101", "o199"):
        await client.send({"op": "status", "orig_cl_ord_id": cl})
        statuses[cl] = await client.recv(10)
    await client.close()
    return hello, resent, statuses


async def public_stream(bootstrap: str, prefix: str) -> dict[str, dict[int, list[Any]]]:
    """Every copy of every seq in the book and trade topics (the restart republishes)."""
    cfg = KafkaConfig(bootstrap=bootstrap)
    out: dict[str, dict[int, list[Any]]] = {"book": {}, "trades": {}}
    for kind in out:
        c = consumer(cfg, f"{prefix}.{kind}", group=None)
        await start_consumer(cfg, c)
        quiet = 0
        try:
            while quiet < 4:
                batch = await c.getmany(timeout_ms=500)
                quiet = 0 if batch else quiet + 1
                for records in batch.values():
                    for r in records:
                        e = decode(r.value)
                        if isinstance(e, BookUpdate | Trade):
                            out[kind].setdefault(e.seq, []).append(e)
        finally:
            await c.stop()
    return out


@pytest.mark.parametrize(("log", "checkpoint_every"), [("file", 0), ("file", 150), ("kafka", 0)])
def test_sigkill_mid_stream_loses_and_repeats_nothing(
    hub_process: Any,
    unique: str,
    services: dict[str, str],
    tmp_path: Path,
    log: str,
    checkpoint_every: int,
) -> None:
    port = free_port()
    journal = tmp_path / "orders.journal"
    args = (
        "feed",
        "--orders",
        "--orders-log",
        log,
        "--journal",
        str(journal),
        "--orders-port",
        str(port),
        "--symbols",
        "BTC-USD",
        "--rate",
        "100",
        "--metrics-port",
        "0",
    )
    env = {
        **stack_env(services, unique),
        "HUB_ORDERS__CHECKPOINT_EVERY": str(checkpoint_every),
    }
    feed = hub_process(*args, env=env)
    before = asyncio.run(trade_until_killed(port, feed))
    assert feed.proc.returncode == -9

    again = hub_process(*args, env=env)
    hello, resent, statuses = asyncio.run(after_restart(port))
    time.sleep(1.0)  # the restarted venue republishes its replay and goes on trading
    assert again.stop() == 0
    stream = asyncio.run(public_stream(services["kafka"], unique))

    # Every report the trader saw before the crash is there, identical, in the same place.
    seen = before.reports
    assert seen and [r["seq"] for r in seen] == list(range(1, len(seen) + 1))
    assert resent[: len(seen)] == seen
    assert hello["last_seq"] == len(resent) >= len(seen)
    assert [r["seq"] for r in resent] == list(range(1, len(resent) + 1))
    fills = [(r["order_id"], r["cum_qty"]) for r in resent if r["last_qty"] != "0.00000"]
    assert len(fills) == len(set(fills)) > 0, "no fill is reported twice"
    # Unacknowledged orders: wholly present (accepted first, in order) or absent.
    unacked = [cl for cl in before.sent if cl not in before.acked]
    later = {r["cl_ord_id"] for r in resent[len(seen) :]}
    for cl in unacked:
        mine = [r for r in resent if r["cl_ord_id"] == cl]
        assert not mine or mine[0]["exec_type"] == "accepted"
        assert not mine or cl in later
    for cl, status in statuses.items():
        assert status["type"] == "status" and status["cl_ord_id"] == cl
    assert journal.exists() == (log == "file")
    checkpoint = journal.with_name("orders.journal.checkpoint")
    assert checkpoint.exists() == (checkpoint_every > 0)  # the restart came from one
    # The public stream: gap-free seqs, and a republished seq is the very same event.
    for kind, by_seq in stream.items():
        assert sorted(by_seq) == list(range(1, len(by_seq) + 1)), kind
        assert any(len(copies) > 1 for copies in by_seq.values()), "the replay republished"
        for seq, copies in by_seq.items():
            assert all(c == copies[0] for c in copies), (kind, seq, copies)
    assert len(stream["trades"]) > 10
