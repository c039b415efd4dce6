"""Locust users for order entry: a new / cancel / replace mix over many accounts.

Each ``OrderTrader`` logs on to the order-entry endpoint with one of the demo
accounts' keys (users take turns over them) and reports each command to
locust as a request named by its op (``new``, ``cancel``, ``replace``), timed
from sending it to ITS OWN answer. Every request waits in a dict of pending
requests, keyed by (op, client order id), with its ``perf_counter`` start; a
report closes the timer only when it answers that request
(docs/order-entry.md, "Execution reports" and "Refusals"):

* ``new``: ``exec`` ``accepted`` (or ``rejected`` by the engine) with its
  ``cl_ord_id``, or a ``reject`` with ``op`` ``new`` and its ``cl_ord_id``;
* ``cancel``: ``exec`` ``cancelled`` with reason ``user_cancel`` for the
  order's ``cl_ord_id``, or a ``reject`` with ``op`` ``cancel``;
* ``replace``: ``exec`` ``replaced`` (reason none) for the order, an engine
  ``rejected`` for it, or a ``reject`` with ``op`` ``replace``.

A refusal carries ``cl_ord_id`` only where the order was named by it in a
``new`` (a cancel's or replace's usually does not): it answers the oldest
pending request of its op. Each trader has one request in flight at a time
(closed loop), so that is exact; fills, self-trade cancels, another session's
reports and anything buffered from earlier requests never close a timer.

A reject (other than an order no longer open when its cancel or replace
arrived: ``too_late``, ``unknown_order``), a report out of ``seq`` order or no
answer within ``HUB_LOAD_ANSWER_TIMEOUT`` (default 10 s) is a failure. A
failed logon (refused key, timeout, closed connection) is a ``logon`` failure
and the user tries again after ``HUB_LOAD_RETRY_S``. At the end of a run each
process logs ``order requests: sent S, answered A, unanswered U``.

Bounded headless run on this machine (``hub demo --orders`` serves order entry
on 127.0.0.1:8770):

    locust -f loadtests/orders.py --headless -u 20 -r 10 -t 30s \\
        --host ws://127.0.0.1:8770 --csv test-output/locust-orders

Environment: HUB_LOAD_KEYS (comma list of API keys; default demo-key-1..10),
HUB_LOAD_SYMBOL (default BTC-USD), HUB_LOAD_PRICE (a price near the market,
default 65000), HUB_LOAD_CONNECT_TIMEOUT (default 10 s).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import time
from collections import deque
from typing import Any

import orjson
from locust import User, between, events, task
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from client.orders import messages
from loadtests.common import fire, log
from loadtests.measure import answers

KEYS = [k for k in os.environ.get("HUB_LOAD_KEYS", "").split(",") if k] or [
    f"demo-key-{n}" for n in range(1, 11)
]
SYMBOL = os.environ.get("HUB_LOAD_SYMBOL", "BTC-USD")
PRICE = int(os.environ.get("HUB_LOAD_PRICE", "65000"))
CONNECT_TIMEOUT = float(os.environ.get("HUB_LOAD_CONNECT_TIMEOUT", "10"))
ANSWER_TIMEOUT = float(os.environ.get("HUB_LOAD_ANSWER_TIMEOUT", "10"))
RETRY_S = float(os.environ.get("HUB_LOAD_RETRY_S", "1"))
STOP_DRAIN_S = 5.0
_turn = itertools.count()
EXPECTED = {"too_late", "unknown_order"}  # a cancel or replace racing a fill
COUNTS = {"sent": 0, "answered": 0, "unanswered": 0}
"""This process's requests (logged at the end of the run)."""


class Failed(Exception):
    """A refusal, a report out of order, or no answer."""


class OrderTrader(User):
    """One trader account sending orders and following its own reports."""

    wait_time = between(0.01, 0.1)

    def on_start(self) -> None:
        n = next(_turn)
        self.key = KEYS[n % len(KEYS)]
        self.prefix = f"u{n}-{os.getpid()}-"
        self.ws: ClientConnection | None = None
        self.buffer: deque[dict[str, Any]] = deque()
        self.seq = 0
        self.next_id = 0
        self.open: dict[str, None] = {}
        """This trader's open orders (insertion-ordered), from their reports."""
        self.pending: dict[tuple[str, str], float] = {}
        """Requests sent and not yet answered: (op, cl_ord_id) -> perf_counter at send."""

    def on_stop(self) -> None:
        # locust may end a user in the middle of a request: read on for its answer (bounded)
        deadline = time.monotonic() + min(ANSWER_TIMEOUT, STOP_DRAIN_S)
        with contextlib.suppress(TimeoutError, ConnectionClosed, OSError):
            while self.pending and self.ws is not None:
                self._handle(self._next(deadline))
        for (op, _cl), started in list(self.pending.items()):
            COUNTS["unanswered"] += 1
            fire(op, started, Failed("no answer before the user stopped"))
        self.pending.clear()
        self._close()

    def _close(self) -> None:
        if self.ws is not None:
            ws, self.ws = self.ws, None
            with contextlib.suppress(Exception):  # a broken connection: nothing to report
                ws.close()

    def _logon(self) -> bool:
        started = time.perf_counter()
        self.buffer.clear()
        try:
            self.ws = connect(
                self.host.rstrip("/") + "/orders",
                additional_headers={"Authorization": f"Bearer {self.key}"},
                open_timeout=CONNECT_TIMEOUT,
                legacy=True,
            )
            hello = self._next(time.monotonic() + ANSWER_TIMEOUT)
            if hello["type"] != "logon":
                raise Failed(f"logon answered {hello}")
        except Exception as exc:  # refused key, reset, timed out: all failures
            fire("logon", started, exc)
            self._close()
            return False
        fire("logon", started)
        self.seq = hello["last_seq"]
        return True

    def _next(self, deadline: float) -> dict[str, Any]:
        """The next message (each frame is a JSON array of them); TimeoutError past the
        deadline."""
        assert self.ws is not None
        while not self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.buffer.extend(messages(self.ws.recv(timeout=left)))
        return self.buffer.popleft()

    def _track(self, m: dict[str, Any]) -> Exception | None:
        """Follow the open orders and the account's seq; an error for a seq out of order."""
        if m["type"] != "exec":
            return None
        error = None
        if m["seq"] <= self.seq and self.seq:
            error = Failed(f"report seq {m['seq']} after {self.seq}")
        self.seq = max(self.seq, m["seq"])
        cl = m["cl_ord_id"]
        if m["exec_type"] == "accepted" and cl.startswith(self.prefix):
            self.open[cl] = None
        elif m["exec_type"] in ("fill", "cancelled", "rejected"):
            self.open.pop(cl, None)
        return error

    def _request(self, op: str, message: dict[str, Any], cl: str) -> None:
        """Send one request and read until its own answer (or the timeout)."""
        if self.ws is None and not self._logon():
            time.sleep(RETRY_S)
            return
        assert self.ws is not None
        key = op, cl
        deadline = time.monotonic() + ANSWER_TIMEOUT
        try:
            self.pending[key] = time.perf_counter()
            COUNTS["sent"] += 1
            self.ws.send(orjson.dumps(message).decode())
            while key in self.pending:
                self._handle(self._next(deadline))
        except (TimeoutError, ConnectionClosed, OSError) as exc:
            for (p_op, _cl), started in list(self.pending.items()):
                COUNTS["unanswered"] += 1
                fire(p_op, started, Failed(f"no answer: {exc!r}"))
            self.pending.clear()
            self._close()  # a fresh logon next time: nothing stale in the buffer

    def _handle(self, m: dict[str, Any]) -> None:
        error = self._track(m)
        key = answers(m, self.pending)
        if key is None:
            if error is not None:
                fire("report seq", time.perf_counter(), error)
            return
        if m["type"] == "reject" and m.get("reason") not in EXPECTED:
            error = Failed(f"{m['reason']}: {m['text']}")
        COUNTS["answered"] += 1
        fire(key[0], self.pending.pop(key), error)

    def _pick_open(self) -> str | None:
        """An open order of this trader with no request in flight."""
        busy = {cl for _op, cl in self.pending}
        free = [cl for cl in self.open if cl not in busy]
        return random.choice(free) if free else None

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
        self._request("new", m, cl)

    @task(4)
    def cancel(self) -> None:
        cl = self._pick_open()
        if cl is not None:
            self._request("cancel", {"op": "cancel", "orig_cl_ord_id": cl}, cl)

    @task(2)
    def replace(self) -> None:
        cl = self._pick_open()
        if cl is not None:
            m = {"op": "replace", "orig_cl_ord_id": cl, "qty": "0.02"}
            self._request("replace", m, cl)


@events.test_stop.add_listener
def _log_counts(environment: Any, **_kwargs: Any) -> None:
    from locust.runners import MasterRunner

    if isinstance(environment.runner, MasterRunner):
        return  # a --processes master sends nothing; each worker logs its own
    log.info(
        "order requests: sent %d, answered %d, unanswered %d",
        COUNTS["sent"],
        COUNTS["answered"],
        COUNTS["unanswered"],
    )
