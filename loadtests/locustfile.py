"""Locust users for the hub's public WebSocket protocol.

Each ``BookSubscriber`` connects to a fanout node, subscribes to the book and
trades of one symbol, keeps an exact book (snapshot + deltas, seq-checked)
and reports every received frame to locust as a request named by message
type, with the venue-event-to-receive latency as its response time. A seq
gap or a crossed book is reported as a failure.

Bounded headless run on this machine (the demo serves on 127.0.0.1:8765):

    locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 30s \\
        --host ws://127.0.0.1:8765 --csv test-output/locust

Environment: HUB_LOAD_SYMBOLS (comma list; default: every symbol the node lists).
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import orjson
from locust import User, between, events, task
from websockets.sync.client import connect

from fanout.client import BookMirror, SequenceGap

READ_SECONDS = 5.0


class BookSubscriber(User):
    """A trader following one book and its trades."""

    wait_time = between(0.0, 0.5)

    def on_start(self) -> None:
        url = self.host.rstrip("/") + "/ws"
        self.ws = connect(url, open_timeout=10, max_size=None)
        self.ws.send(orjson.dumps({"op": "list", "id": 1}).decode())
        streams: list[dict[str, Any]] = []
        while not streams:
            for msg in orjson.loads(self.ws.recv(timeout=10)):
                if msg["type"] == "streams":
                    streams = [s for s in msg["streams"] if s["tick_size"]]
        wanted = [s for s in os.environ.get("HUB_LOAD_SYMBOLS", "").split(",") if s]
        choices = [s for s in streams if not wanted or s["symbol"] in wanted]
        stream = random.choice(choices)
        self.mirror = BookMirror(stream["tick_size"], stream["lot_size"])
        channels = [
            {"channel": c, "venue": stream["venue"], "symbol": stream["symbol"]}
            for c in ("book", "trades")
        ]
        self.ws.send(orjson.dumps({"op": "subscribe", "id": 2, "channels": channels}).decode())

    def on_stop(self) -> None:
        self.ws.close()

    @task
    def read(self) -> None:
        """Read frames for a few seconds, checking the book as a client must."""
        deadline = time.monotonic() + READ_SECONDS
        while time.monotonic() < deadline:
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
            try:
                self.mirror.apply(msg)
                if self.mirror.crossed():
                    error = AssertionError(f"crossed book at seq {self.mirror.seq}")
            except SequenceGap as exc:
                error = exc
        latency_ms = (received - msg["ts_event"]) / 1e6 if "ts_event" in msg else 0.0
        events.request.fire(
            request_type="WS",
            name=kind,
            response_time=latency_ms,
            response_length=frame_bytes,
            exception=error,
            context={},
        )
