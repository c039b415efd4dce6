"""Locust users for order entry: a new / cancel / replace mix over many accounts.

Each ``OrderTrader`` logs on to the order-entry endpoint with one of the demo
accounts' keys (users take turns over them), and reports each command to
locust as a request named by its op, with the round trip from sending it to
the first report about it (``accepted``, ``cancelled``, ``replaced`` or a
reject) as its response time. A reject (other than an order that was no
longer open when its cancel arrived) or a report out of ``seq`` order is a
failure.

Bounded headless run on this machine (``hub demo --orders`` serves order entry
on 127.0.0.1:8770):

    locust -f loadtests/orders.py --headless -u 20 -r 10 -t 30s \\
        --host ws://127.0.0.1:8770 --csv test-output/locust-orders

Environment: HUB_LOAD_KEYS (comma list of API keys; default demo-key-1..10),
HUB_LOAD_SYMBOL (default BTC-USD), HUB_LOAD_PRICE (a price near the market,
default 65000).
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections import deque
from typing import Any

import orjson
from locust import User, between, events, task
from websockets.sync.client import connect

from client.orders import messages

KEYS = [k for k in os.environ.get("HUB_LOAD_KEYS", "").split(",") if k] or [
    f"demo-key-{n}" for n in range(1, 11)
]
SYMBOL = os.environ.get("HUB_LOAD_SYMBOL", "BTC-USD")
PRICE = int(os.environ.get("HUB_LOAD_PRICE", "65000"))
_turn = itertools.count()
EXPECTED = {"too_late", "unknown_order"}  # a cancel racing a fill


class OrderTrader(User):
    """One trader account sending orders and following its own reports."""

    wait_time = between(0.01, 0.1)

    def on_start(self) -> None:
        n = next(_turn)
        self.key = KEYS[n % len(KEYS)]
        self.prefix = f"u{n}-{os.getpid()}-"
        self.ws = connect(
            self.host.rstrip("/") + "/orders",
            additional_headers={"Authorization": f"Bearer {self.key}"},
            open_timeout=10,
        )
        self.buffer: deque[dict[str, Any]] = deque()
        hello = self._next()
        assert hello["type"] == "logon", hello
        self.seq = hello["last_seq"]
        self.next_id = 0
        self.open: list[str] = []

    def on_stop(self) -> None:
        self.ws.close()

    def _next(self) -> dict[str, Any]:
        """The next message (each frame is a JSON array of them)."""
        while not self.buffer:
            self.buffer.extend(messages(self.ws.recv(timeout=10)))
        return self.buffer.popleft()

    def _roundtrip(self, name: str, message: dict[str, Any], about: str) -> None:
        started = time.perf_counter()
        self.ws.send(orjson.dumps(message).decode())
        error: Exception | None = None
        while True:
            m = self._next()
            if m["type"] == "exec":
                if m["seq"] <= self.seq and self.seq:
                    error = AssertionError(f"report seq {m['seq']} after {self.seq}")
                self.seq = max(self.seq, m["seq"])
                done = m["exec_type"] in ("fill", "cancelled", "rejected")
                if done and m["cl_ord_id"] in self.open:
                    self.open.remove(m["cl_ord_id"])
                if m["cl_ord_id"] != about:
                    continue  # a fill of another order: keep reading
            elif m["type"] == "reject" and m.get("reason") not in EXPECTED:
                error = AssertionError(f"{m['reason']}: {m['text']}")
            break
        events.request.fire(
            request_type="WS",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=error,
            context={},
        )

    @task(4)
    def new(self) -> None:
        self.next_id += 1
        cl = f"{self.prefix}{self.next_id}"
        side = random.choice(("buy", "sell"))
        offset = random.randrange(-40, 10)  # mostly resting, some crossing the spread
        price = PRICE - offset if side == "buy" else PRICE + offset
        m = {
            "op": "new",
            "cl_ord_id": cl,
            "symbol": SYMBOL,
            "side": side,
            "price": f"{price}.00",
            "qty": "0.01",
        }
        self.open.append(cl)
        self._roundtrip("new", m, cl)

    @task(4)
    def cancel(self) -> None:
        if self.open:
            cl = random.choice(self.open)
            self._roundtrip("cancel", {"op": "cancel", "orig_cl_ord_id": cl}, cl)

    @task(2)
    def replace(self) -> None:
        if self.open:
            cl = random.choice(self.open)
            m = {"op": "replace", "orig_cl_ord_id": cl, "qty": "0.02"}
            self._roundtrip("replace", m, cl)
