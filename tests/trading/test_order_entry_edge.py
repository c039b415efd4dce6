"""Hostile order-entry clients over real WebSockets: wrongly typed, nested, binary and
oversized messages get coded rejects on a session that stays open; floods of status,
resend and malformed messages are rate limited and cut off; over-long tokens are refused.
Beside each, a victim trader's reports and the public book stream stay exact."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import jwt
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from client.orders import OrderClient, messages
from hub.events import BookUpdate, Event
from tests.trading.test_gateway import ALICE_KEY, BOB_KEY, logon, new, running, until
from trading.gateway import OrderPath

DEEP = "[" * 300 + "]" * 300
"""Nested past orjson's 254-level write limit (its reader takes 1024)."""


def raw(message: dict[str, Any], **nested: str) -> str:
    """``message`` as JSON with each of ``nested`` spliced in as raw JSON text."""
    text = orjson.dumps(message).decode()[:-1]
    return text + "".join(f', "{k}": {v}' for k, v in nested.items()) + "}"


NASTY: list[tuple[str | bytes, str, str]] = [
    (new("n1", side=["buy"]), "bad_field", "side"),
    (new("n2", side={"buy": 1}), "bad_field", "side"),
    (new("n3", type=["limit"]), "bad_field", "type"),
    (new("n4", tif={"gtc": True}), "bad_field", "tif"),
    (new("n5", stp=["allow"]), "bad_field", "stp"),
    (orjson.dumps({"op": "mass_cancel", "symbol": ["BTC-USD"]}).decode(), "bad_field", "symbol"),
    (
        raw({"op": "new", "cl_ord_id": "n6", "symbol": "BTC-USD", "side": "buy"}, qty=DEEP),
        "",
        "qty",
    ),
    (raw({"op": "new", "cl_ord_id": "n7", "symbol": "BTC-USD"}, extra=DEEP), "", "extra"),
    (raw({"op": "cancel"}, order_id=DEEP), "", "order_id"),
    ("[" * 1100 + "]" * 1100, "bad_message", ""),
    (orjson.dumps({"op": ["new"]}).decode(), "bad_message", "op"),
    (orjson.dumps({"op": "status", "order_id": [1]}).decode(), "bad_field", "order_id"),
    (orjson.dumps({"op": "resend", "from_seq": "1"}).decode(), "bad_field", "from_seq"),
    (
        orjson.dumps({"op": "replace", "orig_cl_ord_id": "b1", "qty": [1]}).decode(),
        "bad_field",
        "qty",
    ),
    (new("c" * 5000), "bad_message", ""),  # over the message size limit
    (new("n8", price=64000), "bad_field", "price"),
    (new("n9", post_only="yes"), "bad_field", "post_only"),
    (b'{"op": "new"}', "bad_message", "binary"),
    (orjson.dumps({"op": "kill_switch", "on": {"x": [1]}}).decode(), "bad_field", "on"),
    (
        orjson.dumps({"op": "new", "cl_ord_id": "n10", "symbol": 2**64 - 1}).decode(),
        "bad_field",
        "symbol",
    ),
]


def public_seqs(events: asyncio.Queue[Event]) -> list[int]:
    seen = []
    while not events.empty():
        e = events.get_nowait()
        if isinstance(e, BookUpdate):
            seen.append(e.seq)
    return seen


async def victim_trades(bob: OrderClient, tag: str, n: int) -> list[dict[str, Any]]:
    """Bob's orders, one at a time: each must be acknowledged."""
    got = []
    for i in range(n):
        await bob.send(new(f"{tag}{i}", price="60000.00", qty="0.001"))
        got += await until(bob, lambda m, c=f"{tag}{i}": m.get("cl_ord_id") == c)
    return [m for m in got if m.get("type") == "exec"]


async def resent(path: OrderPath, key: str) -> list[dict[str, Any]]:
    again = await logon(path, key)
    await again.send({"op": "resend", "from_seq": 1})
    out = await again.until(lambda m: m.get("type") == "resend_done", limit=5000, wait=10)
    await again.close()
    return [m for m in out if m.get("type") == "exec"]


async def test_nasty_messages_get_coded_rejects_and_the_session_stays_open(tmp_path: Any) -> None:
    async with running(tmp_path, rate=20.0, max_rejects=1000) as (path, events):
        bob = await logon(path, BOB_KEY)
        mine = await victim_trades(bob, "b", 2)
        alice = await logon(path, ALICE_KEY)
        for data, reason, named in NASTY:
            await alice.send(data)
            answer = (await until(alice, lambda m: m.get("type") == "reject"))[-1]
            assert answer["reason"] in ((reason,) if reason else ("bad_field", "bad_message"))
            assert named in answer["text"], (data[:80], answer)
            assert len(orjson.dumps(answer)) < 400  # nothing unbounded is echoed
        await alice.send(new("ok1"))  # the same session still trades
        ack = (await until(alice, lambda m: m.get("cl_ord_id") == "ok1"))[-1]
        assert ack["exec_type"] == "accepted" and ack["seq"] == 1
        mine += await victim_trades(bob, "c", 2)
        assert [m["seq"] for m in mine] == [1, 2, 3, 4]
        assert await resent(path, BOB_KEY) == mine
        seqs = public_seqs(events)
        assert seqs == list(range(1, len(seqs) + 1))  # the public stream is gap-free
        await alice.close()
        await bob.close()


FLOODS: dict[str, str | bytes] = {
    "status": orjson.dumps({"op": "status", "orig_cl_ord_id": "nope"}).decode(),
    "resend": orjson.dumps({"op": "resend", "from_seq": 1}).decode(),
    "malformed": "{not json",
    "binary": b"\x00\x01",
}


async def flood(ws: ClientConnection, data: str | bytes, n: int) -> int:
    """Send ``data`` ``n`` times (until the server closes); the number sent."""
    for i in range(n):
        try:
            await ws.send(data)
        except ConnectionClosed:
            return i
    return n


@pytest.mark.parametrize("kind", sorted(FLOODS))
async def test_a_flood_of_any_message_kind_is_limited_and_cut_off(tmp_path: Any, kind: str) -> None:
    async with running(tmp_path, rate=20.0) as (path, events):
        bob = await logon(path, BOB_KEY)
        alice, hello = await OrderClient.logon(f"ws://127.0.0.1:{path.port}/orders", ALICE_KEY)
        assert hello["type"] == "logon"
        await alice.send(new("a1"))
        await until(alice, lambda m: m.get("cl_ord_id") == "a1")
        answers: list[dict[str, Any]] = []

        async def read() -> None:
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                while True:
                    answers.append(await alice.recv(5))

        began = time.monotonic()
        reader = asyncio.create_task(read())
        sender = asyncio.create_task(flood(alice.ws, FLOODS[kind], 20_000))
        mine = await victim_trades(bob, "v", 10)  # while the flood goes on
        sent = await sender
        elapsed = time.monotonic() - began  # bounds what the bucket can have refilled
        await reader
        assert alice.ws.close_code == 1008, (kind, sent, len(answers), answers[-2:])
        # Alice's bucket held a burst of 2 s x 50/s (one taken by a1) plus what refilled
        # while the flood went on; then max_rejects (5) rate-limited or malformed messages
        # were refused and the next one cut her off. Bob's bucket is his own.
        answered = [m for m in answers if m.get("type") in ("reject", "resend_done")]
        refused = [m for m in answered if m["type"] == "reject"]
        limited = [m for m in refused if m["reason"] == "rate_limited"]
        assert len(answered) <= 100 + 5 + 50 * elapsed, (kind, len(answered), elapsed)
        assert sent < 20_000 or len(answered) < 1000
        if kind in ("status", "resend"):
            assert len(limited) == 5 and len(answered) >= 99 + 5
        else:
            assert [m["reason"] for m in refused] == ["bad_message"] * 5
        mine += await victim_trades(bob, "w", 2)
        assert [m["seq"] for m in mine] == list(range(1, 13))
        assert await resent(path, BOB_KEY) == mine
        seqs = public_seqs(events)
        assert seqs == list(range(1, len(seqs) + 1))
        await bob.close()


async def test_resend_is_served_in_bounded_pages(tmp_path: Any) -> None:
    from trading import gateway

    async with running(tmp_path, rate=0.001) as (path, _events):
        alice = await logon(path, ALICE_KEY)
        for i in range(30):
            await alice.send(new(f"p{i}", price="60000.00", qty="0.001"))
        await until(alice, lambda m: m.get("cl_ord_id") == "p29", limit=200)
        page = gateway.RESEND_PAGE
        gateway.RESEND_PAGE = 12
        try:
            got: list[dict[str, Any]] = []
            start = 1
            while True:
                await alice.send({"op": "resend", "from_seq": start})
                out = await until(alice, lambda m: m.get("type") == "resend_done", limit=100)
                got += [m for m in out if m.get("type") == "exec"]
                done = out[-1]
                assert done["from_seq"] == start and done["last_seq"] == 30
                assert len(out) - 1 == min(12, 31 - start)
                if not done["more"]:
                    break
                start = done["to_seq"] + 1
        finally:
            gateway.RESEND_PAGE = page
        assert [m["seq"] for m in got] == list(range(1, 31))
        await alice.close()


def token(sub: str, key: str, exp: float, iat: float | None = None) -> str:
    claims: dict[str, Any] = {"sub": sub, "exp": int(exp)}
    if iat is not None:
        claims["iat"] = int(iat)
    return jwt.encode(claims, key, algorithm="HS256")


async def test_tokens_longer_than_the_maximum_lifetime_are_refused(tmp_path: Any) -> None:
    now = time.time()
    year_9999 = 253402300799
    async with running(tmp_path, rate=0.001) as (path, _events):
        url = f"ws://127.0.0.1:{path.port}/orders"
        for bad in (
            token("1001", ALICE_KEY, year_9999),
            token("1001", ALICE_KEY, now + 25 * 3600),
            token("1001", ALICE_KEY, now + 3600, iat=now - 30 * 86400),
        ):
            refused, answer = await OrderClient.logon(url, bad)
            assert answer["type"] == "reject" and answer["reason"] == "logon", answer
            assert "lifetime" in answer["text"] and "86400" in answer["text"], answer
            with pytest.raises(ConnectionClosed):
                await refused.recv(5)
            assert refused.ws.close_code == 1008
        for good in (
            token("1001", ALICE_KEY, now + 3600),
            token("1001", ALICE_KEY, now + 3600, now),
        ):
            client, hello = await OrderClient.logon(url, good)
            assert hello["type"] == "logon" and hello["account"] == 1001
            await client.send(new(f"t{len(good)}{int(now) % 7}"))
            assert (await client.recv(5))["exec_type"] == "accepted"
            await client.close()
    async with running(tmp_path, rate=0.001, max_token_lifetime_s=0) as (path, _events):
        client, hello = await OrderClient.logon(
            f"ws://127.0.0.1:{path.port}/orders", token("1001", ALICE_KEY, year_9999)
        )
        assert hello["type"] == "logon"  # 0: no maximum
        await client.close()


async def test_logon_less_garbage_is_answered_and_closed(tmp_path: Any) -> None:
    async with running(tmp_path, rate=0.001) as (path, _events):
        for first in ("[" * 1100, '{"op": "logon", "key": ["x"]}', b"\x00", "x" * 60_000):
            ws = await connect(f"ws://127.0.0.1:{path.port}/orders")
            await ws.send(first)
            answer = messages(await ws.recv())[0]
            assert answer["type"] == "reject" and answer["reason"] == "logon"
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1008
