"""Order entry over real WebSocket connections: logon, acknowledgements only once durable,
drop copy, resend after reconnecting, refusals, flooding, and market data from the same log."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bus.local import InProcessBus, MemorySnapshots
from bus.output import FeedOutput
from client.orders import OrderClient, messages
from hub.config import FeedConfig, OrdersConfig
from hub.events import BookUpdate, Event, Trade
from trading import checkpoint
from trading.checkpoint import TakenState
from trading.gateway import OrderPath
from trading.journal import Journal, decode, read
from trading.messages import New
from trading.risk import Account, Limits

ALICE_KEY = "alice-key-1-0123456789abcdef0123456789"
BOB_KEY = "bob-key-12-0123456789abcdef0123456789"
ACCOUNTS = [
    Account(1001, "alice", ALICE_KEY, Limits(rate_per_s=50)),
    Account(1002, "bob", BOB_KEY, Limits(rate_per_s=50)),
]


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, rate: float = 50.0, **settings: Any
) -> AsyncIterator[tuple[OrderPath, asyncio.Queue[Event]]]:
    bus = InProcessBus()
    events = bus.subscribe()
    feed = FeedConfig(symbols=("BTC-USD",), rate=rate, seed=2)
    orders = OrdersConfig(
        enabled=True, port=0, journal=str(tmp_path / "orders.journal"), max_rejects=5
    )
    orders = replace(orders, **settings)
    path = OrderPath(orders, feed, FeedOutput(bus, MemorySnapshots()), ACCOUNTS)
    task = asyncio.create_task(path.run())
    try:
        for _ in range(200):
            if path.port:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # let the simulated flow build a book
        yield path, events
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def logon(path: OrderPath, key: str, endpoint: str = "orders") -> OrderClient:
    """Log on with a first ``logon`` message (the other tests use the header)."""
    client = OrderClient(await connect(f"ws://127.0.0.1:{path.port}/{endpoint}", max_queue=None))
    await client.send({"op": "logon", "key": key})
    hello = await client.recv(5)
    assert hello["type"] == "logon", hello
    return client


async def until(client: OrderClient, pred: Any, limit: int = 50) -> list[dict[str, Any]]:
    return await client.until(pred, limit, wait=5)


def new(cl: str, **kw: Any) -> str:
    m = {"op": "new", "cl_ord_id": cl, "symbol": "BTC-USD", "side": "buy", "type": "limit"}
    m |= {"price": "64000.00", "qty": "0.01"} | kw
    return orjson.dumps({k: v for k, v in m.items() if v is not None}).decode()


async def test_acknowledgement_comes_after_the_command_is_in_the_journal(tmp_path: Path) -> None:
    async with running(tmp_path) as (path, _events):
        ws = await logon(path, ALICE_KEY)
        drop = await logon(path, ALICE_KEY, "dropcopy")
        await ws.send(new("a1"))
        ack = (await until(ws, lambda m: m.get("cl_ord_id") == "a1"))[-1]
        assert ack["exec_type"] == "accepted" and ack["seq"] == 1
        logged = [decode(r) for r in read(Path(path.cfg.journal)).records]
        mine = [c for c in logged if isinstance(c, New) and c.cl_ord_id == "a1"]
        assert len(mine) == 1  # durable before the ack
        copy = (await until(drop, lambda m: m.get("type") == "exec"))[-1]
        assert copy == ack
        await drop.send(new("d1"))
        refused = (await until(drop, lambda m: m.get("type") == "reject"))[-1]
        assert refused["reason"] == "read_only"
        await ws.close()
        await drop.close()


async def test_repeat_is_answered_with_the_original_and_resend_fills_the_gap(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (path, _events):
        ws = await logon(path, ALICE_KEY)
        await ws.send(new("a1"))
        first = (await until(ws, lambda m: m.get("cl_ord_id") == "a1"))[-1]
        await ws.send(new("a1"))
        assert (await until(ws, lambda m: m.get("cl_ord_id") == "a1"))[-1] == first
        await ws.send(new("a1", price="63000.00"))
        dup = (await until(ws, lambda m: m.get("type") == "reject"))[-1]
        assert dup["reason"] == "duplicate_cl_ord_id"
        bob = await logon(path, BOB_KEY)
        await bob.send(new("s1", side="sell", price="64990.00", qty="0.05"))
        await until(bob, lambda m: m.get("cl_ord_id") == "s1")
        await ws.send(new("a2", type="market", price=None))
        reports = await until(ws, lambda m: m.get("exec_type") == "fill")
        received = [first] + [m for m in reports if m.get("type") == "exec"]
        await ws.close()
        again = await logon(path, ALICE_KEY)
        await again.send('{"op":"resend","from_seq":1}')
        resent = await until(again, lambda m: m.get("type") == "resend_done")
        assert [m for m in resent if m["type"] == "exec"][: len(received)] == received
        assert [m["seq"] for m in resent if m["type"] == "exec"] == list(
            range(1, resent[-1]["last_seq"] + 1)
        )
        await again.close()
        await bob.close()


async def test_bad_input_is_refused_with_reasons_and_nothing_is_logged(tmp_path: Path) -> None:
    async with running(tmp_path, rate=0.001) as (path, _events):
        bob = await logon(path, BOB_KEY)
        await bob.send(new("b1"))
        b1 = (await until(bob, lambda m: m.get("cl_ord_id") == "b1"))[-1]
        alice = await logon(path, ALICE_KEY)
        before = len(read(Path(path.cfg.journal)).records)
        cases = [
            ("{not json", "bad_message"),
            (new("x1", symbol="NOPE-USD"), "unknown_symbol"),
            (new("x2", price="64000.001"), "bad_field"),
            (new("x3", qty="-0.01"), "bad_field"),
            (orjson.dumps({"op": "cancel", "order_id": b1["order_id"]}).decode(), "not_owner"),
        ]
        for raw, reason in cases:
            await alice.send(raw)
            answer = (await until(alice, lambda m: m.get("type") == "reject"))[-1]
            assert answer["reason"] == reason, (raw, answer)
        assert len(read(Path(path.cfg.journal)).records) == before
        await alice.close()
        await bob.close()


async def test_wrong_key_is_refused_and_a_flood_is_cut_off(tmp_path: Path) -> None:
    async with running(tmp_path, rate=0.001) as (path, _events):
        ws = await connect(f"ws://127.0.0.1:{path.port}/orders")
        await ws.send('{"op":"logon","key":"guess"}')
        assert messages(await ws.recv())[0]["reason"] == "logon"
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1008
        flood = await connect(
            f"ws://127.0.0.1:{path.port}/orders",
            additional_headers={"Authorization": f"Bearer {ALICE_KEY}"},
        )
        assert messages(await flood.recv())[0]["type"] == "logon"
        for i in range(300):
            try:
                await flood.send(new(f"f{i}", price="60000.00"))
            except ConnectionClosed:
                break
        answers: list[dict[str, Any]] = []
        with contextlib.suppress(ConnectionClosed):
            while True:
                answers.extend(messages(await asyncio.wait_for(flood.recv(), 5)))
        assert flood.close_code == 1008 and "rate limit" in (flood.close_reason or "")
        limited = [m for m in answers if m.get("reason") == "rate_limited"]
        assert len(limited) == 5  # max_rejects, then cut off
        # What got in before the limit (a 2-second burst at 50/s) is durable and can be
        # fetched again, even though the flooder was gone before its reports went out.
        for _ in range(100):
            if path.delivered[1001] >= 90:  # committed (resends hold only durable reports)
                break
            await asyncio.sleep(0.02)
        again = await logon(path, ALICE_KEY)
        resent = await again.resend(1)  # in pages: the flood left alice's bucket empty
        accepted = [m for m in resent if m.get("exec_type") == "accepted"]
        assert 90 <= len(accepted) <= 110
        assert len(read(Path(path.cfg.journal)).records) >= len(accepted)
        await again.close()


async def test_traders_fills_are_the_public_trades(tmp_path: Path) -> None:
    async with running(tmp_path, rate=0.001) as (path, events):
        alice = await logon(path, ALICE_KEY)
        bob = await logon(path, BOB_KEY)
        await alice.send(new("s1", side="sell", price="64950.00", qty="0.05"))
        await until(alice, lambda m: m.get("cl_ord_id") == "s1")
        await bob.send(new("b1", side="buy", price="64950.00", qty="0.02"))
        fill = (await until(bob, lambda m: m.get("exec_type") == "fill"))[-1]
        await asyncio.sleep(0.1)
        seen: list[Event] = []
        while not events.empty():
            seen.append(events.get_nowait())
        trades = [e for e in seen if isinstance(e, Trade) and e.size == 2000]
        assert trades and trades[-1].price == 6_495_000 and trades[-1].side == 0
        assert fill["last_price"] == "64950.00" and fill["last_qty"] == "0.02000"
        seqs = [e.seq for e in seen if isinstance(e, BookUpdate)]
        assert seqs == list(range(1, len(seqs) + 1))  # the public stream is gap-free
        await alice.close()
        await bob.close()


async def test_signed_token_logs_on_and_bad_tokens_are_named(tmp_path: Path) -> None:
    now = int(time.time())

    def token(sub: str, key: str, exp: int) -> str:
        return jwt.encode({"sub": sub, "exp": exp}, key, algorithm="HS256")

    async with running(tmp_path, rate=0.001) as (path, _events):
        url = f"ws://127.0.0.1:{path.port}/orders"
        client, hello = await OrderClient.logon(url, token("1001", ALICE_KEY, now + 60))
        assert hello["type"] == "logon" and hello["account"] == 1001
        await client.close()
        cases = [
            (
                token("1001", ALICE_KEY, now - 60),
                "invalid token: Signature has expired",
            ),
            (
                token("1002", ALICE_KEY, now + 60),
                "invalid token: Signature verification",
            ),
            (
                token("1003", ALICE_KEY, now + 60),
                "token for an unknown subject",
            ),
        ]
        for bad, why in cases:
            refused, answer = await OrderClient.logon(url, bad)
            assert answer["reason"] == "logon" and answer["text"].startswith(why), answer
            with pytest.raises(ConnectionClosed):
                await refused.recv(5)


async def test_order_port_serves_metrics_and_health(tmp_path: Path) -> None:
    async with running(tmp_path, rate=0.001) as (path, _events):
        client = await logon(path, ALICE_KEY)
        await client.send(new("m1"))
        await until(client, lambda m: m.get("cl_ord_id") == "m1")
        base = f"http://127.0.0.1:{path.port}"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(f"{base}/metrics").read())
        health = orjson.loads(
            await asyncio.to_thread(lambda: urllib.request.urlopen(f"{base}/healthz").read())
        )
        await client.close()
    assert b'hub_orders_commands_total{kind="new"}' in text
    assert b"hub_orders_ack_seconds_count" in text
    assert health["ok"] and health["journaled"] >= 1 and health["sessions"] == 1


async def test_restart_from_a_checkpoint_gives_the_same_venue(tmp_path: Path) -> None:
    from tests.trading.venues import state

    journal = tmp_path / "orders.journal"
    feed = FeedConfig(symbols=("BTC-USD",), rate=400.0, seed=2)
    orders = OrdersConfig(enabled=True, port=0, journal=str(journal), checkpoint_every=20)

    async def run_once(trade: bool) -> OrderPath:
        path = OrderPath(orders, feed, FeedOutput(InProcessBus(), MemorySnapshots()), ACCOUNTS)
        task = asyncio.create_task(path.run())
        try:
            while not path.port:  # noqa: ASYNC110 - polling the server's start
                await asyncio.sleep(0.01)
            if trade:
                alice, bob = await logon(path, ALICE_KEY), await logon(path, BOB_KEY)
                for i in range(40):  # they trade with each other: positions move throughout
                    await alice.send(new(f"k{i}", side="sell", price="65000.00"))
                    await bob.send(new(f"k{i}", side="buy", price="65000.00", qty="0.004"))
                    await asyncio.sleep(0.01)
                await bob.until(lambda m: m.get("cl_ord_id") == "k39", 1000)
                await asyncio.sleep(0.3)
                await alice.close()
                await bob.close()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return path

    first = await run_once(trade=True)
    assert isinstance(first.journal, Journal)
    assert first.journal.checkpoints >= 2  # 40 orders and the flow's ~100 commands a second
    assert journal.with_name("orders.journal.checkpoint").exists()
    assert len(journal.read_text().splitlines()) < first.journal.committed
    again = OrderPath(orders, feed, FeedOutput(InProcessBus(), MemorySnapshots()), ACCOUNTS)
    await again.journal.open()
    await again.recover()
    assert state(again.venue) == state(first.venue)
    # Bob bought (from alice, or from the flow when the market moved under the test's pace).
    assert first.venue.state[1002].positions["BTC-USD"] > 0
    assert again.recovered < first.journal.committed  # replayed only after the checkpoint
    assert isinstance(again.journal, Journal)
    again.journal.close()


async def test_a_checkpoint_is_the_state_when_taken_not_when_written(tmp_path: Path) -> None:
    """Commands applied after a checkpoint is taken and before it is written must not leak
    into it (they are replayed from the journal after it)."""
    from tests.trading.venues import state

    feed = FeedConfig(symbols=("BTC-USD",), rate=0.001, seed=2)
    orders = OrdersConfig(
        enabled=True, port=0, journal=str(tmp_path / "j"), checkpoint_every=4, fsync=False
    )

    def order_path() -> OrderPath:
        return OrderPath(orders, feed, FeedOutput(InProcessBus(), MemorySnapshots()), ACCOUNTS)

    path = order_path()
    await path.journal.open()
    await path.recover()
    for i in range(8):  # the checkpoint is taken at the 4th; 4 more trades follow at once
        for account, side in ((1001, "sell"), (1002, "buy")):
            m = orjson.loads(new(f"c{i}", side=side, price="65000.00"))
            cmd = path.venue.check(account, m, i)
            assert isinstance(cmd, New), cmd
            path.submit(cmd)
    assert path.venue.state[1002].positions["BTC-USD"] == 8 * 1000
    committer = asyncio.create_task(path.committer())
    for _ in range(100):
        if path.journal.checkpoints:  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.01)
    path._stopping = True
    path._wake.set()
    await committer
    await path.journal.aclose()
    again = order_path()
    await again.journal.open()
    await again.recover()
    assert again.recovered == 12  # 16 commands, 4 inside the checkpoint
    assert state(again.venue) == state(path.venue)
    await again.journal.aclose()


async def test_a_taken_state_encodes_its_reports_in_slices_with_the_loop_served_between(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint's bytes are the venue's snapshot as JSON, whatever the slicing; the
    kept reports are encoded a slice at a time, other tasks running in between, and
    commands applied after the state was taken do not change it."""
    monkeypatch.setattr(checkpoint, "SLICE", 3)
    feed = FeedConfig(symbols=("BTC-USD",), rate=0.001, seed=2)
    orders = OrdersConfig(enabled=True, port=0, journal=str(tmp_path / "j"), fsync=False)
    path = OrderPath(orders, feed, FeedOutput(InProcessBus(), MemorySnapshots()), ACCOUNTS)
    await path.journal.open()

    def trade(i: int) -> None:
        for account, side in ((1001, "sell"), (1002, "buy")):
            cmd = path.venue.check(account, orjson.loads(new(f"c{i}", side=side)), i)
            assert isinstance(cmd, New), cmd
            path.submit(cmd)

    for i in range(10):
        trade(i)
    snapshot = path.venue.snapshot()
    expected = orjson.loads(orjson.dumps(snapshot))
    reports = sum(len(a["reports"]) for a in expected["accounts"].values())
    assert reports >= 20
    taken = TakenState(snapshot)
    for i in range(10, 14):
        trade(i)  # after the take: not in it
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counting = asyncio.create_task(other())
    await asyncio.sleep(0)
    encoded = await taken.encoded()
    counting.cancel()
    assert orjson.loads(b"".join(encoded)) == expected
    assert turns >= reports // 3  # the other task ran between the slices
    assert orjson.loads(orjson.dumps(path.venue.snapshot())) != expected
    path.journal.close()  # type: ignore[union-attr]


async def test_checkpoints_under_continuous_commands_recover_exactly(tmp_path: Path) -> None:
    """Commands keep arriving while commits and checkpoint rotations are in flight."""
    from tests.trading.venues import state

    feed = FeedConfig(symbols=("BTC-USD",), rate=0.001, seed=2)
    orders = OrdersConfig(enabled=True, port=0, journal=str(tmp_path / "j"), checkpoint_every=7)

    def order_path() -> OrderPath:
        return OrderPath(orders, feed, FeedOutput(InProcessBus(), MemorySnapshots()), ACCOUNTS)

    path = order_path()
    await path.journal.open()
    await path.recover()
    committer = asyncio.create_task(path.committer())
    assert isinstance(path.journal, Journal)
    # Until five checkpoints were written under the commands (how many commands that takes
    # depends on how fast this machine writes them), bounded so a stuck rotation fails.
    for i in range(5000):
        if i >= 300 and i % 2 == 0 and path.journal.checkpoints >= 5:
            break
        account, side = ((1001, "sell"), (1002, "buy"))[i % 2]
        m = orjson.loads(new(f"c{i}", side=side, price="65000.00", qty="0.003"))
        cmd = path.venue.check(account, m, i)
        assert isinstance(cmd, New), cmd
        path.submit(cmd)
        if i % 2 == 0:
            await asyncio.sleep(0.0003)  # let the committer (and its threads) interleave
    path._stopping = True
    path._wake.set()
    await committer
    assert path.journal.checkpoints >= 5
    await path.journal.aclose()
    again = order_path()
    await again.journal.open()
    await again.recover()
    assert state(again.venue) == state(path.venue)
    await again.journal.aclose()
