"""Hostile subscribers over real WebSockets: wrongly typed, nested and oversized requests get
coded errors on a connection that stays open (never a 1011), refusals echo nothing
unbounded, and over-long tokens are refused; a checksummed victim stays exact beside them."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from client.market import HubClient, connect, messages, request
from tests.fanout.harness import OPEN, catch_up, started, top, until
from tests.fanout.test_node_access import KEY_A, close_reason, keys_file

DEEP = "[" * 300 + "]" * 300
"""Nested past orjson's 254-level write limit (its reader takes 1024)."""


def raw_entry(entry: dict[str, Any], **nested: str) -> str:
    text = orjson.dumps(entry).decode()[:-1]
    return text + "".join(f', "{k}": {v}' for k, v in nested.items()) + "}"


def subscribe(*entries: str, ident: str = "1") -> str:
    return f'{{"op": "subscribe", "id": "{ident}", "channels": [{", ".join(entries)}]}}'


NASTY_ERRORS: list[tuple[str, str, str]] = [
    # (request, error code, text names)
    (
        subscribe(raw_entry({"channel": "book", "symbol": "NOPE"}, extra=DEEP)),
        "bad_request",
        "extra",
    ),
    (subscribe(raw_entry({"channel": "book"}, symbol=DEEP)), "bad_request", "symbol"),
    ('{"op": "subscribe", "channels": ' + DEEP + "}", "bad_request", "channels"),
    ('{"op": "ping", "id": ' + DEEP + "}", "bad_request", "id"),
    ("[" * 1100 + "]" * 1100, "bad_json", ""),
    ('{"op": ["ping"]}', "unknown_op", "op"),
    ('{"op": "ping", "id": "' + "i" * 1000 + '"}', "bad_request", "id"),
    ('{"op": "ping", "id": 1e400}', "bad_json", ""),
    ('{"op": "ping", "id": 1.5}', "bad_request", "id"),
    ('{"op": "auth", "token": ["k"]}', "bad_request", "token"),
]
NASTY_ENTRIES: list[tuple[str, str]] = [
    # (entry, refusal code): the request is answered, the entry refused on its own
    ('{"channel": ["book"], "symbol": "X"}', "unknown_channel"),
    ('{"channel": {"a": 1}, "symbol": "X"}', "unknown_channel"),
    ('{"channel": "book", "symbol": {"s": "X"}}', "bad_request"),
    ('{"channel": "book", "symbol": ["X"]}', "bad_request"),
    ('{"channel": "book", "symbol": "' + "X" * 5000 + '"}', "bad_request"),
    ('{"channel": "book", "symbol": "X", "depth": [10]}', "bad_request"),
    ('{"channel": "book", "symbol": "X", "depth": 18446744073709551615}', "bad_request"),
    ('{"channel": "book", "symbol": "X", "resume_from": 18446744073709551616}', "bad_request"),
    ('{"channel": "candles", "symbol": "X", "interval": [60]}', "bad_request"),
    ('{"channel": "book", "symbol": "X", "venue": [1, [2, [3]]]}', "bad_request"),
    ('{"channel": "book", "symbol": "X", "extra": [[[1]]]}', "bad_request"),
    ('{"channel": "book", "symbol": "NOPE", "venue": "' + "V" * 60 + '"}', "unknown_venue"),
    ('{"channel": "book", "symbol": "' + "N" * 60 + '", "venue": "SIM"}', "unknown_symbol"),
]


async def test_nasty_requests_get_error_codes_and_the_connection_stays_open() -> None:
    node, market, url = await started(replace(OPEN, max_errors=1000))
    try:
        async with HubClient(url, reconnect=False) as victim, connect(url) as bad:
            await victim.subscribe(
                [{"channel": "book", "symbol": "X", "depth": 10, "checksum": True}]
            )
            stream = messages(bad)
            await until(stream, "welcome")
            for data, code, named in NASTY_ERRORS:
                await bad.send(data)
                market.step(5)
                error = await until(stream, "error")
                assert error["code"] == code, (data[:60], error)
                assert named in error["message"], (data[:60], error)
                assert len(orjson.dumps(error)) < 400
            for entry, code in NASTY_ENTRIES:
                await bad.send(subscribe(entry, '{"channel": "trades", "symbol": "X"}'))
                market.step(5)
                answer = await until(stream, "subscribed")
                assert [r["code"] for r in answer["refused"]] == [code], (entry[:60], answer)
                assert [a["channel"] for a in answer["accepted"]] == ["trades"]
                assert len(orjson.dumps(answer)) < 600, answer  # nothing unbounded echoed
            await request(bad, {"op": "ping", "id": 9})
            assert (await until(stream, "pong"))["id"] == 9  # still open and served
            market.step(50)
            await catch_up(victim, node)
            mirror = victim.books["SIM", "X"]
            assert mirror.depth(0) == top(node, 0, 10) and mirror.depth(1) == top(node, 1, 10)
            assert mirror.checksums > 0
    finally:
        await node.stop()


async def test_a_refused_entry_echoes_only_its_checked_fields() -> None:
    node, _market, url = await started()
    try:
        async with connect(url) as ws:
            stream = messages(ws)
            await until(stream, "welcome")
            await request(
                ws,
                {
                    "op": "subscribe",
                    "id": 4,
                    "channels": [
                        {"channel": "book", "symbol": "NOPE", "depth": 5, "checksum": True}
                    ],
                },
            )
            answer = await until(stream, "subscribed")
            assert answer["refused"] == [
                {
                    "request": {"channel": "book", "symbol": "NOPE", "depth": 5, "checksum": True},
                    "code": "unknown_symbol",
                    "reason": "no stream for symbol 'NOPE'",
                }
            ]
    finally:
        await node.stop()


def token(sub: str, key: str, exp: float, iat: float | None = None) -> str:
    claims: dict[str, Any] = {"sub": sub, "exp": int(exp)}
    if iat is not None:
        claims["iat"] = int(iat)
    return jwt.encode(claims, key, algorithm="HS256")


async def test_tokens_longer_than_the_maximum_lifetime_are_refused(tmp_path: Path) -> None:
    now = time.time()
    cfg = replace(OPEN, anonymous=False, keys=keys_file(tmp_path))
    node, _market, url = await started(cfg)
    try:
        for bad in (
            token("a", KEY_A, 253402300799),  # year 9999
            token("a", KEY_A, now + 3600, iat=now - 2 * 86400),
        ):
            code, reason = await close_reason(f"{url}?token={bad}")
            assert code == 1008 and "lifetime" in reason and "86400" in reason, reason
            async with connect(url) as ws:  # the same in the auth message
                await request(ws, {"op": "auth", "token": bad})
                with pytest.raises(ConnectionClosed) as closed:
                    async for _ in ws:
                        pass
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
                assert "lifetime" in closed.value.rcvd.reason
        async with HubClient(f"{url}?token={token('a', KEY_A, now + 3600)}") as a:
            assert a.welcome["key"] == "a"
            await a.subscribe([{"channel": "book", "symbol": "X"}])
            await until(a.messages(), "snapshot")
    finally:
        await node.stop()
    node, _market, url = await started(replace(cfg, max_token_lifetime_s=0))
    try:
        async with HubClient(f"{url}?token={token('a', KEY_A, 253402300799)}") as a:
            assert a.welcome["key"] == "a"  # 0: no maximum
    finally:
        await node.stop()
