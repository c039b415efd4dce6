"""Locust users for the hub's public WebSocket protocol (subscribers).

Each ``Subscriber`` is one WebSocket connection; one locust process runs many
of them (``-u``). Each connects to a fanout node, subscribes to a random mix
of symbols and channels (full or top-N book, with or without checksums,
trades, best bid/offer, candles, order-level books), keeps an exact book per
book subscription (seq ranges and checksums checked) and reports every received message to
locust as a request named by message type, with the latency from the hub's
receive time (``ts_recv``) to this client as its response time. A seq gap, a
checksum mismatch or a crossed book is reported as a failure.

Bounded headless run on this machine (the demo serves on 127.0.0.1:8765):

    locust -f loadtests/locustfile.py --headless -u 200 -r 50 -t 30s \\
        --host ws://127.0.0.1:8765 --csv test-output/locust

Environment: HUB_LOAD_SYMBOLS (comma list; default: every symbol the node
lists), HUB_LOAD_TOKEN (API key or token when the node requires one),
HUB_LOAD_SYMBOLS_PER_USER (default 2).
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import orjson
from locust import User, between, events, task
from websockets.sync.client import connect

from client.market import (
    BookMirror,
    ChecksumMismatch,
    OrderBookMismatch,
    OrderMirror,
    SequenceGap,
)

READ_SECONDS = 5.0
BOOK_VARIANTS: list[dict[str, Any]] = [
    {},
    {"checksum": True},
    {"depth": 10, "checksum": True},
    {"depth": 25},
]
EXTRA_CHANNELS = ("trades", "bbo", "candles", "l3")
"""A second channel per book, among those the stream offers (l3 where it has orders)."""


class Subscriber(User):
    """A trader following a few books and their trades, quotes or candles."""

    wait_time = between(0.0, 0.2)

    def on_start(self) -> None:
        url = self.host.rstrip("/") + "/ws"
        token = os.environ.get("HUB_LOAD_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.ws = connect(url, open_timeout=10, max_size=None, additional_headers=headers)
        self.ws.send(orjson.dumps({"op": "list", "id": 1}).decode())
        streams: list[dict[str, Any]] = []
        while not streams:
            for msg in orjson.loads(self.ws.recv(timeout=10)):
                if msg["type"] == "streams":
                    streams = [s for s in msg["streams"] if s["tick_size"]]
        wanted = [s for s in os.environ.get("HUB_LOAD_SYMBOLS", "").split(",") if s]
        choices = [s for s in streams if not wanted or s["symbol"] in wanted]
        per_user = int(os.environ.get("HUB_LOAD_SYMBOLS_PER_USER", "2"))
        self.mirrors: dict[tuple[str, str], BookMirror] = {}
        self.order_mirrors: dict[tuple[str, str], OrderMirror] = {}
        channels: list[dict[str, Any]] = []
        for stream in random.sample(choices, min(per_user, len(choices))):
            where = {"venue": stream["venue"], "symbol": stream["symbol"]}
            variant = random.choice(BOOK_VARIANTS)
            channels.append({"channel": "book", **where, **variant})
            self.mirrors[stream["venue"], stream["symbol"]] = BookMirror(
                stream["tick_size"], stream["lot_size"], variant.get("depth", 0)
            )
            offered = [c for c in EXTRA_CHANNELS if c in stream.get("channels", EXTRA_CHANNELS)]
            extra = random.choice(offered)
            if extra == "l3":
                key = stream["venue"], stream["symbol"]
                self.order_mirrors[key] = OrderMirror(stream["tick_size"], stream["lot_size"])
            interval = {"interval": 1} if extra == "candles" else {}
            channels.append({"channel": extra, **where, **interval})
        self.ws.send(orjson.dumps({"op": "subscribe", "id": 2, "channels": channels}).decode())
        self.last_ping = time.monotonic()

    def on_stop(self) -> None:
        self.ws.close()

    @task
    def read(self) -> None:
        """Read frames for a few seconds, checking the books as a client must."""
        deadline = time.monotonic() + READ_SECONDS
        while time.monotonic() < deadline:
            if time.monotonic() - self.last_ping > 10:
                self.ws.send(orjson.dumps({"op": "ping"}).decode())
                self.last_ping = time.monotonic()
            try:
                frame = self.ws.recv(timeout=1)
            except TimeoutError:
                continue
            received = time.time_ns()
            for msg in orjson.loads(frame):
                self._report(msg, received, len(frame))

    def _report(self, msg: dict[str, Any], received: int, frame_bytes: int) -> None:
        kind = msg["type"]
        error: Exception | None = None
        if kind in ("snapshot", "book"):
            mirror = self.mirrors[msg["venue"], msg["symbol"]]
            try:
                mirror.apply(msg)
                if mirror.crossed():
                    error = AssertionError(f"crossed book at seq {mirror.seq}")
            except (SequenceGap, ChecksumMismatch) as exc:
                error = exc
        elif kind in ("l3_snapshot", "l3"):
            try:
                self.order_mirrors[msg["venue"], msg["symbol"]].apply(msg)
            except (SequenceGap, OrderBookMismatch) as exc:
                error = exc
        elif kind == "subscribed" and msg["refused"]:
            error = AssertionError(f"refused: {msg['refused']}")
        elif kind == "error":
            error = AssertionError(f"{msg['code']}: {msg['message']}")
        latency_ms = (received - msg["ts_recv"]) / 1e6 if "ts_recv" in msg else 0.0
        events.request.fire(
            request_type="WS",
            name=kind,
            response_time=latency_ms,
            response_length=frame_bytes,
            exception=error,
            context={},
        )
