"""Who may connect and what bad clients get: keys, tokens, limits, error codes, deflate,
heartbeats — over real WebSocket connections to a node fed directly."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from client.market import HubClient, connect, messages, request
from hub.auth import make_token
from tests.fanout.harness import OPEN, catch_up, started, top, until

KEY_A = "key-a-0123456789abcdef0123456789abcdef"
KEY_B = "key-b-0123456789abcdef0123456789abcdef"


def keys_file(tmp_path: Path) -> str:
    path = tmp_path / "keys.toml"
    path.write_text(
        f"""
[defaults]
max_subscriptions = 2
messages_per_s = 5

[[key]]
id = "a"
key = "{KEY_A}"
channels = ["book", "status"]
max_connections = 1

[[key]]
id = "b"
key = "{KEY_B}"
"""
    )
    return str(path)


async def close_reason(url: str, **kwargs: Any) -> tuple[int, str]:
    async with connect(url, **kwargs) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            async for _ in ws:
                pass
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_authentication_permissions_and_limits(tmp_path: Path) -> None:
    cfg = replace(OPEN, anonymous=False, keys=keys_file(tmp_path), auth_timeout_s=0.5)
    node, _market, url = await started(cfg)
    try:
        code, reason = await close_reason(url)
        assert code == 1008 and "authentication required" in reason
        code, reason = await close_reason(url, additional_headers={"Authorization": "Bearer nope"})
        assert (code, reason) == (1008, "authentication failed: unknown API key")
        bad_token = make_token("a", KEY_B)
        code, reason = await close_reason(f"{url}?token={bad_token}")
        assert code == 1008 and "invalid token" in reason

        async with HubClient(url, token=KEY_A) as a:
            assert a.welcome["key"] == "a"
            answer = await a.subscribe(
                [
                    {"channel": "book", "symbol": "X"},
                    {"channel": "trades", "symbol": "X"},
                    {"channel": "status", "symbol": "X"},
                    {"channel": "book", "symbol": "X", "depth": 3},  # replaces the book
                ]
            )
            assert [r["code"] for r in answer["refused"]] == ["forbidden"]
            assert len(answer["accepted"]) == 3
            more = await a.subscribe([{"channel": "bbo", "symbol": "X"}])
            assert [r["code"] for r in more["refused"]] == ["forbidden"]
            # One connection per key 'a': a second one is refused with a reason.
            code, reason = await close_reason(
                url, additional_headers={"Authorization": f"Bearer {KEY_A}"}
            )
            assert code == 1013 and "too many connections" in reason
        # A token signed with the key, in the URL (as a browser would); and the auth message.
        async with HubClient(f"{url}?token={make_token('b', KEY_B)}") as b:
            assert b.welcome["key"] == "b"
        async with connect(url) as ws:
            await request(ws, {"op": "auth", "token": KEY_B})
            welcome = await until(messages(ws), "welcome")
            assert welcome["key"] == "b"
    finally:
        await node.stop()


async def test_bad_input_gets_error_codes_and_abuse_disconnects_only_that_client(
    tmp_path: Path,
) -> None:
    cfg = replace(OPEN, max_errors=5)
    node, market, url = await started(cfg)
    try:
        async with HubClient(url) as good, connect(url) as bad:
            await good.subscribe([{"channel": "book", "symbol": "X"}])
            stream = messages(bad)
            await until(stream, "welcome")
            codes = []
            for data in (
                b"\x00binary",
                "{not json",
                "[1,2]",
                '{"op":"subscribe_all"}',
                "x" * 70_000,
            ):
                await bad.send(data)
                codes.append((await until(stream, "error"))["code"])
            assert codes == ["binary_frame", "bad_json", "bad_request", "unknown_op", "too_large"]
            await request(
                bad, {"op": "subscribe", "channels": [{"channel": "book", "symbol": "NOPE"}]}
            )
            refused = (await until(stream, "subscribed"))["refused"]
            assert refused[0]["code"] == "unknown_symbol"
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(10):
                    await bad.send("{oops")
                    await asyncio.sleep(0.01)
                async for _ in stream:
                    pass
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert "too many bad requests" in closed.value.rcvd.reason
            market.step(50)
            await catch_up(good, node)  # everyone else is still served
            assert good.books["SIM", "X"].depth(0) == top(node, 0)
    finally:
        await node.stop()


async def test_rate_limit_answers_a_message_flood(tmp_path: Path) -> None:
    cfg = replace(OPEN, anonymous=False, keys=keys_file(tmp_path), max_errors=100)
    node, _market, url = await started(cfg)
    try:
        async with connect(url, additional_headers={"Authorization": f"Bearer {KEY_B}"}) as ws:
            for i in range(30):
                await request(ws, {"op": "ping", "id": i})
            got: dict[str, int] = {}
            stream = messages(ws)

            async def read() -> None:
                async for msg in stream:
                    got[msg["type"]] = got.get(msg["type"], 0) + 1
                    if got.get("pong", 0) + got.get("error", 0) == 30:
                        return

            await asyncio.wait_for(read(), 5)
            assert got["pong"] == 10 and got["error"] == 20  # a burst of 2 s x 5/s
    finally:
        await node.stop()


async def test_deflate_only_when_the_client_asks() -> None:
    node, _market, url = await started()
    try:
        async with connect(url, compression="deflate") as ws:  # offers it, as browsers do
            assert not ws.protocol.extensions
        async with HubClient(url, deflate=True) as c:
            assert c.welcome["deflate"] is True
            assert c.ws is not None and c.ws.protocol.extensions
            await c.subscribe([{"channel": "book", "symbol": "X"}])
            await until(c.messages(), "snapshot")
    finally:
        await node.stop()


async def test_heartbeats_and_idle_clients() -> None:
    node, _market, url = await started(replace(OPEN, heartbeat_s=0.2, client_timeout_s=2))
    try:
        async with connect(url) as ws:
            stream = messages(ws)
            beat = await until(stream, "heartbeat", wait=3)
            assert beat["ts"] > 0
            await request(ws, {"op": "ping", "id": 7})
            assert (await until(stream, "pong"))["id"] == 7
            with pytest.raises(ConnectionClosed) as closed:
                async for _ in stream:
                    pass
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert closed.value.rcvd.reason.startswith("idle")
    finally:
        await node.stop()
