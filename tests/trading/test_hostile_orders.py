"""Issue 14, defects 1 and 2 against the real process: ``hub demo --orders`` started on a
journal an unbounded venue left behind (two buys of 2**62 lots at one price), then the
same two orders and numbers past int64 sent over the real /orders WebSocket. The process
stays up, a checksummed victim subscriber stays exact with no gap, and after a restart
the acknowledged order id is the same and cancellable by it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from client.market import HubClient
from client.orders import OrderClient
from tests.conftest import stack_env
from tests.trading.venues import old_new
from trading.journal import Journal
from trading.messages import Sim
from trading.simulator import SimulatedExchange

POISON = "46116860184273.87904"  # 2**62 lots of 0.00001 BTC
FIRST_ID = 10**12
KEY = ("SIM", "BTC-USD")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def poisoned_journal(path: Path, seed: int) -> int:
    """The journal of a venue without int64 bounds after the attack; returns the price."""
    x = SimulatedExchange("SIM", "BTC-USD", seed)
    for _ in range(300):
        x.step(1)
    bid = x.engine.best_bid()
    assert bid is not None
    px = bid[0] * 95 // 100
    j = Journal(path)
    j.append(Sim("BTC-USD", 300, 1))
    j.append(old_new(1001, "p1", px, 2**62))
    j.append(old_new(1002, "p2", px, 2**62))
    j.commit_now()
    j.close()
    return px


async def logon(port: int, key: str) -> OrderClient:
    for _ in range(300):
        with contextlib.suppress(OSError):
            client, hello = await OrderClient.logon(f"ws://127.0.0.1:{port}/orders", key)
            assert hello["type"] == "logon", hello
            return client
        await asyncio.sleep(0.05)
    raise AssertionError("order entry never came up")


def get(url: str) -> bytes:
    body: bytes = urllib.request.urlopen(url, timeout=5).read()
    return body


async def quiet(orders_port: int) -> None:
    """Wait until the simulated flow (--max-orders) has stopped moving the book."""
    last = None
    for _ in range(200):
        health = orjson.loads(
            await asyncio.to_thread(get, f"http://127.0.0.1:{orders_port}/healthz")
        )
        if health["books"] == last:
            return
        last = health["books"]
        await asyncio.sleep(0.3)
    raise AssertionError("the book never stopped moving")


async def victim(url: str, seen: dict[str, Any], token: str | None) -> None:
    """A subscriber with checksummed top-10 and the order-by-order book, until cancelled;
    any gap, checksum or order mismatch raises out of here."""
    async with HubClient(url, token=token, reconnect=False) as hub:
        for _ in range(100):  # a node lists the stream once the feed's first events arrived
            if KEY in hub.streams:
                break
            await hub.close()
            await asyncio.sleep(0.3)
            await hub.connect()
        await hub.subscribe(
            [
                {"channel": "book", "symbol": "BTC-USD", "depth": 10, "checksum": True},
                {"channel": "l3", "symbol": "BTC-USD"},
            ]
        )
        seen["client"] = hub
        async for msg in hub.messages():
            if msg["type"] == "book":
                seen["updates"] = seen.get("updates", 0) + 1
                for side in (0, 1):
                    assert all(0 < s < 2**63 for _p, s in hub.books[KEY].depth(side))


async def answer(client: OrderClient, cl: str) -> dict[str, Any]:
    """The first report or refusal naming ``cl``."""
    return (await client.until(lambda m: m.get("cl_ord_id") == cl))[-1]


async def attack(
    url: str, orders_port: int, price: str, token: str | None = None, fresh_url: str = ""
) -> dict[str, Any]:
    """The hostile orders over /orders while a victim watches ``url``; at the end a fresh
    subscriber (on ``fresh_url``, another node, if given) must see the victim's book."""
    seen: dict[str, Any] = {}
    watcher = asyncio.create_task(victim(url, seen, token))
    one, two = await logon(orders_port, "demo-key-1"), await logon(orders_port, "demo-key-2")
    answers = {}
    for client, cl in ((one, "x1"), (two, "x2")):
        await client.send({"op": "new", "cl_ord_id": cl, "symbol": "BTC-USD", "side": "buy",
                           "price": price, "qty": POISON})  # fmt: skip
        answers[cl] = await answer(client, cl)
    for cl, extra in (
        ("big", {"qty": "99999999999999.99999"}),
        ("stop", {"type": "stop_limit", "stop_price": "99999999999999999.99", "qty": "0.01"}),
    ):
        m = {"op": "new", "cl_ord_id": cl, "symbol": "BTC-USD", "side": "buy", "price": price}
        await one.send(m | {"qty": "0.01"} | extra)
        answers[cl] = await answer(one, cl)
    await one.send({"op": "new", "cl_ord_id": "g1", "symbol": "BTC-USD", "side": "buy",
                    "price": price, "qty": "0.01"})  # fmt: skip
    answers["g1"] = await answer(one, "g1")
    await one.send({"op": "replace", "orig_cl_ord_id": "g1", "qty": "0"})
    answers["zero"] = (await one.until(lambda m: m.get("type") == "reject"))[-1]
    metrics = await asyncio.to_thread(get, f"http://127.0.0.1:{orders_port}/metrics")
    await quiet(orders_port)
    async with HubClient(fresh_url or url, token=token, reconnect=False) as fresh:
        await fresh.subscribe([{"channel": "book", "symbol": "BTC-USD"}])
        async for msg in fresh.messages():
            if msg["type"] == "snapshot":
                break
        final = fresh.books[KEY]
    mirror = seen["client"].books[KEY]
    for _ in range(300):  # the victim catches up with the last update
        if watcher.done() or (mirror.seq or 0) >= (final.seq or 0):
            break
        await asyncio.sleep(0.05)
    if watcher.done():
        watcher.result()  # a gap or mismatch: raise it here
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    seen["exact"] = (mirror.seq, mirror.depth(0)[:10], mirror.depth(1)[:10]) == (
        final.seq,
        final.depth(0)[:10],
        final.depth(1)[:10],
    )
    seen["checksums"] = mirror.checksums
    await one.close()
    await two.close()
    return {"answers": answers, "metrics": metrics, **seen}


async def after_restart(orders_port: int) -> list[dict[str, Any]]:
    one = await logon(orders_port, "demo-key-1")
    await one.send({"op": "status", "order_id": str(FIRST_ID + 2)})
    status = (await one.until(lambda m: m.get("type") in ("status", "reject")))[-1]
    await one.send({"op": "cancel", "order_id": str(FIRST_ID + 2)})
    cancelled = (await one.until(lambda m: m.get("type") in ("exec", "reject")))[-1]
    await one.close()
    return [status, cancelled]


def test_hostile_sizes_leave_the_venue_up_and_a_victim_exact(
    hub_process: Any, tmp_path: Path
) -> None:
    journal = tmp_path / "orders.journal"
    px = poisoned_journal(journal, seed=3)
    price = SimulatedExchange("SIM", "BTC-USD", 3).instrument.tick.to_str(px)
    orders_port = free_port()
    args = ["demo", "--port", "0", "--symbols", "BTC-USD", "--seed", "3", "--rate", "300"]
    args += ["--max-orders", "900", "--orders", "--orders-port", str(orders_port)]
    args += ["--journal", str(journal)]
    demo = hub_process(*args)
    port = int(demo.wait_for(r"WebSocket API ws://127.0.0.1:(\d+)/ws").group(1))
    seen = asyncio.run(attack(f"ws://127.0.0.1:{port}/ws", orders_port, price))
    assert demo.proc.poll() is None, demo.stderr()
    answers = seen["answers"]
    assert answers["x1"]["reason"] == "max_qty" and answers["x2"]["reason"] == "max_qty"
    assert answers["big"]["reason"] == "bad_field" and "qty" in answers["big"]["text"]
    assert answers["stop"]["reason"] == "bad_field" and "stop_price" in answers["stop"]["text"]
    # The journal's two refused orders kept ids ...0 and ...1: the first new order is ...2.
    assert answers["g1"]["exec_type"] == "accepted"
    assert answers["g1"]["order_id"] == str(FIRST_ID + 2)
    assert answers["zero"]["reason"] == "bad_field"
    assert b'hub_orders_replay_refused_total{reason="size_limit"} 2.0' in seen["metrics"]
    assert seen["exact"] and seen["checksums"] > 0 and seen["updates"] > 10
    assert demo.stop() == 0
    assert demo.stderr().count("journaled command refused on replay") == 2
    again = hub_process(*args)
    again.wait_for(r"WebSocket API ws://127.0.0.1:(\d+)/ws")
    status, cancelled = asyncio.run(after_restart(orders_port))
    assert status["type"] == "status" and status["open"] and status["cl_ord_id"] == "g1"
    assert cancelled["exec_type"] == "cancelled" and cancelled["order_id"] == str(FIRST_ID + 2)
    assert again.stop() == 0


def test_hostile_sizes_leave_hub_feed_and_two_fanout_nodes_exact(
    hub_process: Any, tmp_path: Path, services: dict[str, str], unique: str
) -> None:
    """The distributed layout: ``hub feed --orders`` (Kafka, Redis) replaying the same
    poisoned journal and taking the same orders, with two fanout nodes; the victim reads
    node a, the final snapshot comes from node b, and every process stays up."""
    token = "victim-key-0123456789abcdef0123456789"
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[key]]\nid = "victim"\nkey = "{token}"\n')
    env = {
        **stack_env(services, unique),
        "HUB_FANOUT__KEYS": str(keys),
    }
    nodes = []
    for name in ("a", "b"):
        proc = hub_process("fanout", "--port", "0", env={**env, "HUB_FANOUT__GROUP": name})
        port = proc.wait_for(r"serving ws://127.0.0.1:(\d+)/ws").group(1)
        nodes.append((proc, f"ws://127.0.0.1:{port}/ws"))
    journal = tmp_path / "orders.journal"
    px = poisoned_journal(journal, seed=3)
    price = SimulatedExchange("SIM", "BTC-USD", 3).instrument.tick.to_str(px)
    orders_port = free_port()
    feed = hub_process(
        *("feed", "--symbols", "BTC-USD", "--seed", "3", "--rate", "300", "--max-orders", "900"),
        *("--orders", "--orders-port", str(orders_port), "--journal", str(journal)),
        *("--metrics-port", "0"),
        env=env,
    )
    feed.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics")
    seen = asyncio.run(attack(nodes[0][1], orders_port, price, token, fresh_url=nodes[1][1]))
    for proc in (feed, nodes[0][0], nodes[1][0]):
        assert proc.proc.poll() is None, proc.stderr()
    answers = seen["answers"]
    assert answers["x1"]["reason"] == "max_qty" and answers["big"]["reason"] == "bad_field"
    assert answers["g1"]["order_id"] == str(FIRST_ID + 2)
    assert b'hub_orders_replay_refused_total{reason="size_limit"} 2.0' in seen["metrics"]
    assert seen["exact"] and seen["checksums"] > 0 and seen["updates"] > 10
    for proc in (feed, nodes[0][0], nodes[1][0]):
        assert proc.stop() == 0
