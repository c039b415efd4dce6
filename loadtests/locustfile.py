"""Locust users for the hub's public WebSocket protocol (subscribers).

Each ``Subscriber`` is one WebSocket connection; one locust process runs many
of them (``-u``; ``--processes N`` spreads them over N worker processes). Each
connects to a fanout node, lists its streams, subscribes to a random mix of
symbols and channels (full or top-N book, with or without checksums, trades,
best bid/offer, candles, order-level books) and keeps an exact book per book
subscription (seq ranges and checksums checked). Its locust entries (request
type ``WS``):

* ``connect``: the WebSocket handshake (with the key, when one is given). A
  refused, failed or timed-out handshake is a failure; the user waits
  ``HUB_LOAD_RETRY_S`` and tries again, so a struggling node's refusals keep
  counting instead of vanishing from the summary.
* ``list``: the ``list`` request to its ``streams`` answer; no answer within
  ``HUB_LOAD_ANSWER_TIMEOUT`` (or an ``error``) is a failure, and the user
  reconnects.
* ``subscribe``: the ``subscribe`` request to its ``subscribed`` answer; a
  refused channel or no answer in time is a failure.
* ``subscribe→snapshot``: per book subscription, from sending ``subscribe``
  to that book's first ``snapshot``, on the client's clock (``perf_counter``).
  No snapshot in time is a failure.
* ``update book``, ``update trade``, ``update bbo``, ... : each live message
  with the latency from the hub's receive time (``ts_recv``) to this client
  (same clock: run it on the hub's machine). Messages older than the
  subscription (the last trades, the current bbo) are not updates and are not
  timed. A seq gap, a checksum mismatch, a crossed book or an order-book
  mismatch is a failure of its entry.
* ``disconnected``: the node closed the connection (a failure; the user
  reconnects). ``error``: an ``error`` message (a failure).
* ``worker cpu saturated`` (type ``CPU``): this locust process used more than
  ``HUB_LOAD_CPU_LIMIT`` of one core over a window (``loadtests/common.py``):
  its latencies then measure itself; add ``--processes``.

Bounded headless run on this machine (the demo serves on 127.0.0.1:8765):

    locust -f loadtests/locustfile.py --headless -u 200 -r 50 -t 30s \\
        --host ws://127.0.0.1:8765 --csv test-output/locust --processes 2

``python -m loadtests.limit`` steps the users up until the p99 of
``update book`` passes a bound (the hub's limit on this machine).

Environment: HUB_LOAD_SYMBOLS (comma list; default: every symbol the node
lists), HUB_LOAD_TOKEN (API key or token when the node requires one),
HUB_LOAD_SYMBOLS_PER_USER (default 2), HUB_LOAD_CONNECT_TIMEOUT (handshake,
default 10 s), HUB_LOAD_ANSWER_TIMEOUT (list/subscribe answers and first
snapshots, default 10 s), HUB_LOAD_RETRY_S (wait before reconnecting, default 1 s).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from typing import Any

import orjson
from locust import User, between, task
from locust.user.task import LOCUST_STATE_STOPPING
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from client.market import (
    BookMirror,
    ChecksumMismatch,
    OrderBookMismatch,
    OrderMirror,
    SequenceGap,
)
from loadtests.common import fire, record

READ_SECONDS = 5.0
CONNECT_TIMEOUT = float(os.environ.get("HUB_LOAD_CONNECT_TIMEOUT", "10"))
ANSWER_TIMEOUT = float(os.environ.get("HUB_LOAD_ANSWER_TIMEOUT", "10"))
RETRY_S = float(os.environ.get("HUB_LOAD_RETRY_S", "1"))
SNAPSHOT_ENTRY = "subscribe→snapshot"
BOOK_VARIANTS: list[dict[str, Any]] = [
    {},
    {"checksum": True},
    {"depth": 10, "checksum": True},
    {"depth": 25},
]
EXTRA_CHANNELS = ("trades", "bbo", "candles", "l3")
"""A second channel per book, among those the stream offers (l3 where it has orders)."""


class Failed(Exception):
    """The node's answer was a refusal, an error or nothing in time."""


class Subscriber(User):
    """A trader following a few books and their trades, quotes or candles."""

    wait_time = between(0.0, 0.2)

    def on_start(self) -> None:
        self.ws: ClientConnection | None = None
        self.mirrors: dict[tuple[str, str], BookMirror] = {}
        self.order_mirrors: dict[tuple[str, str], OrderMirror] = {}
        self.subscribe_sent = 0.0
        self.subscribe_wall_ns = 0
        self.acked = True
        self.awaiting: dict[tuple[str, str], float] = {}
        """Book subscriptions without their first snapshot: when subscribe was sent."""
        self.last_ping = time.monotonic()

    def on_stop(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.ws is not None:
            ws, self.ws = self.ws, None
            with contextlib.suppress(Exception):  # a broken connection: nothing to report
                ws.close()

    def _open(self) -> bool:
        """Connect, list and subscribe; each step its own entry. False (after recording the
        failure and closing) when a step failed."""
        url = self.host.rstrip("/") + "/ws"
        token = os.environ.get("HUB_LOAD_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        started = time.perf_counter()
        try:
            self.ws = connect(
                url,
                open_timeout=CONNECT_TIMEOUT,
                max_size=None,
                additional_headers=headers,
                legacy=True,
            )
        except Exception as exc:  # refused, reset, timed out: all failures
            fire("connect", started, exc)
            return False
        fire("connect", started)
        started = time.perf_counter()
        try:
            streams = self._list()
        except Exception as exc:  # no answer, an error, a closed connection
            fire("list", started, exc)
            self._close()
            return False
        fire("list", started)
        started = time.perf_counter()
        try:
            self._subscribe(streams)
        except Exception as exc:  # the connection broke while sending
            fire("subscribe", started, exc)
            self._close()
            return False
        return True

    def _list(self) -> list[dict[str, Any]]:
        assert self.ws is not None
        self.ws.send(orjson.dumps({"op": "list", "id": 1}).decode())
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"no streams answer within {ANSWER_TIMEOUT:g} s")
            for msg in orjson.loads(self.ws.recv(timeout=left)):
                if msg["type"] == "streams":
                    return [s for s in msg["streams"] if s["tick_size"]]
                if msg["type"] == "error":
                    raise Failed(f"{msg['code']}: {msg['message']}")

    def _subscribe(self, streams: list[dict[str, Any]]) -> None:
        assert self.ws is not None
        wanted = [s for s in os.environ.get("HUB_LOAD_SYMBOLS", "").split(",") if s]
        choices = [s for s in streams if not wanted or s["symbol"] in wanted]
        per_user = int(os.environ.get("HUB_LOAD_SYMBOLS_PER_USER", "2"))
        self.mirrors = {}
        self.order_mirrors = {}
        channels: list[dict[str, Any]] = []
        for stream in random.sample(choices, min(per_user, len(choices))):
            key = stream["venue"], stream["symbol"]
            where = {"venue": stream["venue"], "symbol": stream["symbol"]}
            variant = random.choice(BOOK_VARIANTS)
            channels.append({"channel": "book", **where, **variant})
            self.mirrors[key] = BookMirror(
                stream["tick_size"], stream["lot_size"], variant.get("depth", 0)
            )
            offered = [c for c in EXTRA_CHANNELS if c in stream.get("channels", EXTRA_CHANNELS)]
            extra = random.choice(offered)
            if extra == "l3":
                self.order_mirrors[key] = OrderMirror(stream["tick_size"], stream["lot_size"])
            interval = {"interval": 1} if extra == "candles" else {}
            channels.append({"channel": extra, **where, **interval})
        self.subscribe_wall_ns = time.time_ns()
        self.subscribe_sent = time.perf_counter()
        self.acked = False
        self.awaiting = dict.fromkeys(self.mirrors, self.subscribe_sent)
        self.ws.send(orjson.dumps({"op": "subscribe", "id": 2, "channels": channels}).decode())
        self.last_ping = time.monotonic()

    @task
    def read(self) -> None:
        """Read frames for a few seconds, checking the books as a client must."""
        if self.ws is None and not self._open():
            time.sleep(RETRY_S)
            return
        try:
            self._read()
        except ConnectionClosed as exc:
            record("disconnected", 0.0, exc)
            self._close()

    def _read(self) -> None:
        assert self.ws is not None
        deadline = time.monotonic() + READ_SECONDS
        while time.monotonic() < deadline and self.ws is not None:
            if self._state == LOCUST_STATE_STOPPING:
                return  # the run is over: no need to finish the read
            if time.monotonic() - self.last_ping > 10:
                self.ws.send(orjson.dumps({"op": "ping"}).decode())
                self.last_ping = time.monotonic()
            self._overdue()
            try:
                frame = self.ws.recv(timeout=1)
            except TimeoutError:
                continue
            received = time.time_ns()
            for msg in orjson.loads(frame):
                self._report(msg, received, len(frame))

    def _overdue(self) -> None:
        """Answers and first snapshots not here within ANSWER_TIMEOUT are failures."""
        if self.acked and not self.awaiting:
            return
        if time.perf_counter() - self.subscribe_sent < ANSWER_TIMEOUT:
            return
        late = Failed(f"nothing within {ANSWER_TIMEOUT:g} s")
        if not self.acked:
            self.acked = True
            fire("subscribe", self.subscribe_sent, late)
        for key in list(self.awaiting):
            fire(SNAPSHOT_ENTRY, self.awaiting.pop(key), late)

    def _report(self, msg: dict[str, Any], received: int, frame_bytes: int) -> None:
        kind = msg["type"]
        error: Exception | None = None
        if kind in ("snapshot", "book") and msg.get("channel", "book") == "book":
            key = msg["venue"], msg["symbol"]
            mirror = self.mirrors[key]
            try:
                mirror.apply(msg)
                if mirror.crossed():
                    error = AssertionError(f"crossed book at seq {mirror.seq}")
            except (SequenceGap, ChecksumMismatch) as exc:
                error = exc
            if kind == "snapshot" and key in self.awaiting:
                fire(SNAPSHOT_ENTRY, self.awaiting.pop(key), error, frame_bytes)
                return
        elif kind in ("l3_snapshot", "l3"):
            try:
                self.order_mirrors[msg["venue"], msg["symbol"]].apply(msg)
            except (SequenceGap, OrderBookMismatch) as exc:
                error = exc
        elif kind == "subscribed":
            self.acked = True
            refused = Failed(f"refused: {msg['refused']}") if msg["refused"] else None
            fire("subscribe", self.subscribe_sent, refused, frame_bytes)
            return
        elif kind == "error":
            record("error", 0.0, Failed(f"{msg['code']}: {msg['message']}"), frame_bytes)
            return
        ts_recv = msg.get("ts_recv")
        if ts_recv is not None and ts_recv >= self.subscribe_wall_ns:
            record(f"update {kind}", (received - ts_recv) / 1e6, error, frame_bytes)
        elif error is not None:
            record(f"update {kind}", 0.0, error, frame_bytes)  # a resync snapshot, say
