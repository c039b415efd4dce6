"""Coinbase Exchange authentication: the live runner signs its ``full`` subscription and its
level-3 REST requests; a mock Exchange that verifies signatures the way the venue documents
refuses anything else; credentials never reach a capture."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from bus.local import Publisher
from feedhandler.files.capture import CaptureWriter, read_capture
from feedhandler.venues import VENUES
from feedhandler.venues.coinbase_auth import CoinbaseCredentials, redact
from feedhandler.venues.coinbase_l3 import CoinbaseL3Parser
from feedhandler.venues.runner import LiveRunner
from hub.backoff import Backoff
from hub.errors import HubError
from hub.events import Event
from hub.ops import response
from tests.feedhandler.venues.test_coinbase_l3 import PRODUCT, Downstream, Venue

KEY, PASSPHRASE = "k3y", "pass phrase"
SECRET = base64.b64encode(b"sixteen byte key" * 4).decode()


def valid(key: str, passphrase: str, ts: str, signature: str, prehash_tail: str) -> bool:
    """The venue's check: known key and passphrase, a timestamp within 30 s, and
    base64(HMAC-SHA256(b64decode(secret), timestamp + method + path + body))."""
    if key != KEY or passphrase != PASSPHRASE or abs(time.time() - float(ts)) > 30:
        return False
    want = hmac.new(base64.b64decode(SECRET), (ts + prehash_tail).encode(), hashlib.sha256)
    return hmac.compare_digest(base64.b64encode(want.digest()).decode(), signature)


class MockExchange:
    """The Exchange's ``full`` channel and REST, both insisting on signed requests."""

    def __init__(self, venue: Venue, messages: int) -> None:
        self.venue = venue
        self.messages = messages
        self.refused: list[str] = []
        self.done = asyncio.Event()

    def _process_request(self, _conn: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        if request.path == "/products":
            body = json.dumps([{"id": PRODUCT, "quote_increment": "0.01"}])
            return response(200, body.encode(), "application/json")
        h = request.headers
        if not valid(
            h.get("CB-ACCESS-KEY", ""),
            h.get("CB-ACCESS-PASSPHRASE", ""),
            h.get("CB-ACCESS-TIMESTAMP", "0"),
            h.get("CB-ACCESS-SIGN", ""),
            "GET" + request.path,
        ):
            self.refused.append(request.path)
            return response(401, b'{"message":"invalid signature"}', "application/json")
        return response(200, self.venue.snapshot().encode(), "application/json")

    async def _handle(self, ws: ServerConnection) -> None:
        sub = json.loads(await ws.recv())
        if not valid(
            sub.get("key", ""),
            sub.get("passphrase", ""),
            sub.get("timestamp", "0"),
            sub.get("signature", ""),
            "GET/users/self/verify",
        ):
            self.refused.append("subscribe")
            await ws.send(json.dumps({"type": "error", "message": "Authentication Failed"}))
            await ws.close()
            return
        assert sub["channels"] == ["full", "heartbeat"] and sub["product_ids"] == [PRODUCT]
        await ws.send(json.dumps({"type": "subscriptions", "channels": sub["channels"]}))
        for _ in range(self.messages):
            for m in self.venue.step():
                await ws.send(m)
            await asyncio.sleep(0)
        self.done.set()
        await ws.wait_closed()

    async def run_client(
        self,
        parser: CoinbaseL3Parser,
        publisher: Publisher,
        until: Callable[[], bool],
        capture: CaptureWriter | None = None,
    ) -> LiveRunner:
        """Serve on 127.0.0.1 and run the live runner against it until ``until()`` holds
        (at most 30 s), then stop both."""
        server = await serve(self._handle, "127.0.0.1", 0, process_request=self._process_request)
        port = next(iter(server.sockets)).getsockname()[1]
        runner = LiveRunner(
            parser,
            f"ws://127.0.0.1:{port}",
            [PRODUCT],
            publisher,
            rest=f"http://127.0.0.1:{port}",
            backoff=Backoff(0.05, 0.1, "full"),
            capture=capture,
        )
        task = asyncio.create_task(runner.run())
        try:
            for _ in range(1500):
                if until():
                    break
                await asyncio.sleep(0.02)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            server.close()
            await server.wait_closed()
        return runner


class Discard:
    async def publish(self, events: Sequence[Event]) -> None:
        return None


async def test_signed_full_channel_ends_with_the_venues_book(tmp_path: Path) -> None:
    venue = Venue(5)
    for _ in range(300):
        venue.step()
    exchange = MockExchange(venue, 2000)
    parser = CoinbaseL3Parser(CoinbaseCredentials(KEY, SECRET, PASSPHRASE))
    down = Downstream()

    class Sink:
        async def publish(self, events: Sequence[Event]) -> None:
            down.take(list(events))

    capture = CaptureWriter(tmp_path / "cb.jsonl", "coinbase", {"symbols": [PRODUCT]})
    await exchange.run_client(
        parser,
        Sink(),
        lambda: exchange.done.is_set() and down.book.snapshot() == venue.l2(),
        capture,
    )
    capture.close()
    assert exchange.refused == []
    assert down.book.snapshot() == venue.l2() and down.trades > 100
    assert parser.books[PRODUCT].stats.gaps == 0
    recorded = (tmp_path / "cb.jsonl").read_text()
    assert SECRET not in recorded and PASSPHRASE not in recorded and KEY not in recorded
    sent = [json.loads(x.data) for x in read_capture(tmp_path / "cb.jsonl") if x.kind == "send"]
    assert sent[0]["signature"] == sent[0]["key"] == "REDACTED"
    assert sent[0]["channels"] == ["full", "heartbeat"]


async def test_unsigned_subscription_is_refused_and_reported() -> None:
    exchange = MockExchange(Venue(6), 10)
    parser = CoinbaseL3Parser()
    runner = await exchange.run_client(
        parser, Discard(), lambda: exchange.refused.count("subscribe") >= 2
    )
    assert exchange.refused.count("subscribe") >= 2
    assert any("Authentication Failed" in e for e in parser.errors)
    assert runner.connections >= 2  # it keeps trying (with backoff), it does not crash


def test_signature_and_rest_headers_follow_the_documented_prehash() -> None:
    creds = CoinbaseCredentials(KEY, SECRET, PASSPHRASE, clock=lambda: 1_790_000_000.7)
    fields = creds.subscribe_fields()
    assert fields["timestamp"] == "1790000000"
    want = hmac.new(
        base64.b64decode(SECRET), b"1790000000GET/users/self/verify", hashlib.sha256
    ).digest()
    assert fields["signature"] == base64.b64encode(want).decode()
    headers = creds.rest_headers("https://x.test/products/BTC-USD/book?level=3")
    want = hmac.new(
        base64.b64decode(SECRET), b"1790000000GET/products/BTC-USD/book?level=3", hashlib.sha256
    ).digest()
    assert headers["CB-ACCESS-SIGN"] == base64.b64encode(want).decode()
    assert headers["CB-ACCESS-KEY"] == KEY and headers["CB-ACCESS-PASSPHRASE"] == PASSPHRASE
    assert SECRET not in repr(creds) and PASSPHRASE not in repr(creds)
    assert redact('{"type":"subscribe","key":"k","signature":"s"}') == (
        '{"type": "subscribe", "key": "REDACTED", "signature": "REDACTED"}'
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COINBASE_API_KEY": "k"}, "COINBASE_API_SECRET, COINBASE_API_PASSPHRASE not set"),
        (
            {"COINBASE_API_KEY": "k", "COINBASE_API_SECRET": "!!", "COINBASE_API_PASSPHRASE": "p"},
            "COINBASE_API_SECRET is not base64",
        ),
    ],
)
def test_bad_credentials_are_named(env: Mapping[str, str], message: str) -> None:
    with pytest.raises(HubError, match=message):
        CoinbaseCredentials.from_env(env)


def test_venues_read_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CoinbaseCredentials.from_env({}) is None
    monkeypatch.setenv("COINBASE_API_KEY", KEY)
    monkeypatch.setenv("COINBASE_API_SECRET", SECRET)
    monkeypatch.setenv("COINBASE_API_PASSPHRASE", PASSPHRASE)
    parser = VENUES["coinbase-l3"].parser()
    assert isinstance(parser, CoinbaseL3Parser) and parser.credentials is not None
    assert json.loads(parser.subscribe([PRODUCT])[0])["key"] == KEY
