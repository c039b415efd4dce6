"""A fanout node: serves traders' WebSocket subscriptions from a market-data source.

The source (in-process bus or Kafka) delivers book updates and trades; the
node keeps each book in sync (fanout.stream), encodes every update once, and
hands the bytes to each subscriber's bounded queue. One sender task per
connection flushes its queue as one frame every ``flush_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from fanout import protocol
from fanout.protocol import ProtocolError, Subscription
from fanout.stream import BookStream, Outcome
from hub.bus import SnapshotStore
from hub.config import FanoutConfig
from hub.events import BookUpdate, Event, Instrument, Status, Trade
from hub.ops import ops_response, response

log = logging.getLogger("hub.fanout")

CONNECTIONS = Gauge("hub_fanout_connections", "Open client connections")
SUBSCRIPTIONS = Gauge("hub_fanout_subscriptions", "Active subscriptions")
FRAMES = Counter("hub_fanout_frames_sent_total", "WebSocket frames sent")
MESSAGES = Counter("hub_fanout_messages_sent_total", "Messages sent (many per frame)")
BYTES = Counter("hub_fanout_bytes_sent_total", "Payload bytes sent")
UPDATES = Counter("hub_fanout_updates_total", "Source events by outcome", ["kind", "outcome"])
GAPS = Counter("hub_fanout_gaps_total", "Sequence gaps detected", ["symbol"])
RESYNCS = Counter("hub_fanout_resyncs_total", "Books (re)synced from a snapshot", ["symbol"])
RESETS = Counter("hub_fanout_snapshot_resets_total", "Lagging clients reset to a fresh snapshot")
QUEUE_DEPTH = Histogram(
    "hub_fanout_queue_depth",
    "Messages per flushed frame",
    buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000),
)
STORE_ERRORS = Counter("hub_fanout_store_errors_total", "Failed snapshot-store reads")
LATENCY = Histogram(
    "hub_fanout_tick_to_send_seconds",
    "Venue event time to socket write",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)

WEB_DIR = Path(__file__).parent / "web"
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
SYNC_POLL = 0.05
SYNC_RETRY = 1.0


class Client:
    """One trader connection: its subscriptions and its bounded send queue."""

    def __init__(self, ws: ServerConnection, limit: int) -> None:
        self.ws = ws
        self.subs: set[Subscription] = set()
        self.queue: list[bytes] = []
        self.limit = limit
        self.wake = asyncio.Event()
        self.oldest_ts = 0
        self.overflowed = False

    def push(self, message: bytes, ts_event: int = 0) -> None:
        if len(self.queue) >= self.limit:
            self.overflowed = True
            return
        if not self.queue:
            self.oldest_ts = ts_event
        self.queue.append(message)
        self.wake.set()


class FanoutNode:
    """Book sync, subscriptions and the WebSocket server of one node."""

    def __init__(self, cfg: FanoutConfig, snapshots: SnapshotStore) -> None:
        self.cfg = cfg
        self.name = cfg.group or f"fanout-{os.getpid()}"
        self.snapshots = snapshots
        self.streams: dict[tuple[str, str], BookStream] = {}
        self.clients: set[Client] = set()
        self._sync_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._server: Server | None = None
        self.source_error: str | None = None

    # --- source side -------------------------------------------------------------------

    def _stream(self, venue: str, symbol: str) -> BookStream:
        key = (venue, symbol)
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = BookStream(venue, symbol, self.cfg.history)
        return stream

    def on_event(self, event: Event) -> None:
        """Take one event from the source (bus or Kafka)."""
        if isinstance(event, BookUpdate):
            self._on_update(event)
        elif isinstance(event, Trade):
            self._on_trade(event)
        elif isinstance(event, Instrument):
            self._stream(event.venue, event.symbol).instrument = event
        elif isinstance(event, Status):
            stream = self._stream(event.venue, event.symbol)
            stream.venue_status = event.state
            self._broadcast_status(stream, event.state, f"venue: {event.reason}")

    def _on_update(self, update: BookUpdate) -> None:
        stream = self._stream(update.venue, update.symbol)
        outcome = stream.on_update(update)
        UPDATES.labels("book", outcome.value).inc()
        if outcome is Outcome.APPLIED:
            assert stream.instrument is not None
            msg = protocol.encode_update(stream.instrument, update)
            stream.history.append((update.seq, msg))
            sub = Subscription("book", update.venue, update.symbol)
            for client in self.clients:
                if sub in client.subs:
                    client.push(msg, update.ts_event)
        elif outcome is Outcome.GAP:
            GAPS.labels(update.symbol).inc()
            log.warning(
                "sequence gap",
                extra={
                    "venue": update.venue,
                    "symbol": update.symbol,
                    "expected": stream.seq + 1,
                    "got": update.seq,
                },
            )
            self._broadcast_status(stream, "stale", "gap")
            self._start_sync(stream)
        elif outcome is Outcome.BUFFERED:
            self._start_sync(stream)

    def _on_trade(self, trade: Trade) -> None:
        stream = self._stream(trade.venue, trade.symbol)
        if trade.seq <= stream.last_trade_seq:
            UPDATES.labels("trade", "duplicate").inc()
            return
        UPDATES.labels("trade", "applied").inc()
        stream.last_trade_seq = trade.seq
        if stream.instrument is None:
            return
        msg = protocol.encode_trade(stream.instrument, trade)
        stream.recent_trades.append(msg)
        sub = Subscription("trades", trade.venue, trade.symbol)
        for client in self.clients:
            if sub in client.subs:
                client.push(msg, trade.ts_event)

    def _start_sync(self, stream: BookStream) -> None:
        key = (stream.venue, stream.symbol)
        task = self._sync_tasks.get(key)
        if task is None or task.done():
            self._sync_tasks[key] = asyncio.create_task(self._sync(stream))

    async def _sync(self, stream: BookStream) -> None:
        """Poll the snapshot store until a snapshot covers the buffered updates."""
        while not stream.synced:
            try:
                if stream.instrument is None:
                    for inst in await self.snapshots.instruments():
                        if (inst.venue, inst.symbol) == (stream.venue, stream.symbol):
                            stream.instrument = inst
                snap = await self.snapshots.get(stream.venue, stream.symbol)
            except Exception as exc:  # the store is down or returned garbage: keep trying
                STORE_ERRORS.inc()
                log.warning(
                    "snapshot store read failed; retrying",
                    extra={"venue": stream.venue, "symbol": stream.symbol, "error": repr(exc)},
                )
                await asyncio.sleep(SYNC_RETRY)
                continue
            if (
                stream.instrument is not None
                and snap is not None
                and snap.seq >= stream.needs_snapshot_after()
                and stream.try_sync(snap)
            ):
                RESYNCS.labels(stream.symbol).inc()
                log.info(
                    "book synced",
                    extra={"venue": stream.venue, "symbol": stream.symbol, "seq": stream.seq},
                )
                self._broadcast_status(stream, "live", "synced")
                self._send_snapshots(stream, "resync")
                return
            await asyncio.sleep(SYNC_POLL)

    def _broadcast_status(self, stream: BookStream, state: str, reason: str) -> None:
        msg = protocol.encode_status(stream.venue, stream.symbol, state, stream.seq, reason)
        for client in self.clients:
            if any(s.venue == stream.venue and s.symbol == stream.symbol for s in client.subs):
                client.push(msg)

    def _send_snapshots(self, stream: BookStream, reason: str) -> None:
        sub = Subscription("book", stream.venue, stream.symbol)
        targets = [c for c in self.clients if sub in c.subs]
        if targets and stream.instrument is not None:
            msg = protocol.encode_snapshot(
                stream.instrument, stream.book, stream.seq, stream.ts_event, reason
            )
            for client in targets:
                client.push(msg)

    # --- client side -------------------------------------------------------------------

    def _resolve(self, item: Any) -> Subscription:
        if not isinstance(item, dict):
            raise ProtocolError("bad_request", "each channel must be an object")
        channel, symbol, venue = item.get("channel"), item.get("symbol"), item.get("venue")
        if channel not in protocol.CHANNELS:
            raise ProtocolError("unknown_channel", f"unknown channel {channel!r}")
        matches = [k for k in self.streams if k[1] == symbol and venue in (None, k[0])]
        if not matches:
            raise ProtocolError("unknown_symbol", f"no stream for symbol {symbol!r}")
        if len(matches) > 1:
            raise ProtocolError(
                "ambiguous_symbol", f"{symbol!r} trades on several venues; give 'venue'"
            )
        return Subscription(channel, matches[0][0], matches[0][1])

    def _subscribe(self, client: Client, msg: dict[str, Any]) -> None:
        """Answer a (un)subscribe request, then send each new subscription's initial state."""
        accepted, refused, added = [], [], []
        items = msg.get("channels")
        if not isinstance(items, list):
            raise ProtocolError("bad_request", "'channels' must be a list")
        for item in items:
            try:
                sub = self._resolve(item)
            except ProtocolError as exc:
                refused.append({"request": item, "code": exc.code, "reason": str(exc)})
                continue
            if msg["op"] == "unsubscribe":
                client.subs.discard(sub)
            elif sub not in client.subs or sub.channel == "book":
                client.subs.add(sub)
                added.append(sub)
            accepted.append({"channel": sub.channel, "venue": sub.venue, "symbol": sub.symbol})
        SUBSCRIPTIONS.set(sum(len(c.subs) for c in self.clients))
        client.push(
            protocol.encode(
                {
                    "type": f"{msg['op']}d",
                    "id": msg.get("id"),
                    "accepted": accepted,
                    "refused": refused,
                }
            )
        )
        for sub in added:
            if sub.channel == "book":
                self._send_book(client, sub)
            else:
                for trade in self.streams[sub.venue, sub.symbol].recent_trades:
                    client.push(trade)

    def _send_book(self, client: Client, sub: Subscription) -> None:
        stream = self.streams[sub.venue, sub.symbol]
        if stream.synced and stream.instrument is not None:
            client.push(
                protocol.encode_snapshot(
                    stream.instrument, stream.book, stream.seq, stream.ts_event, "subscribe"
                )
            )
        else:
            client.push(
                protocol.encode_status(sub.venue, sub.symbol, "stale", stream.seq, "syncing")
            )

    def _reset(self, client: Client) -> None:
        """Replace a lagging client's queue by fresh snapshots of its books."""
        RESETS.inc()
        client.queue.clear()
        client.overflowed = False
        for sub in client.subs:
            if sub.channel == "book":
                self._send_book(client, sub)

    async def _sender(self, client: Client) -> None:
        flush = self.cfg.flush_ms / 1000
        while True:
            await client.wake.wait()
            if flush:
                await asyncio.sleep(flush)
            client.wake.clear()
            if client.overflowed:
                self._reset(client)
            batch, client.queue = client.queue, []
            if not batch:
                continue
            oldest = client.oldest_ts
            frame = b"[" + b",".join(batch) + b"]"
            await client.ws.send(frame, text=True)
            FRAMES.inc()
            MESSAGES.inc(len(batch))
            BYTES.inc(len(frame))
            QUEUE_DEPTH.observe(len(batch))
            if oldest:
                LATENCY.observe(max(0.0, (time.time_ns() - oldest) / 1e9))

    async def _handle(self, ws: ServerConnection) -> None:
        client = Client(ws, self.cfg.queue_limit)
        self.clients.add(client)
        CONNECTIONS.set(len(self.clients))
        sender = asyncio.create_task(self._sender(client))
        try:
            async for data in ws:
                try:
                    msg = protocol.parse_request(data)
                    if msg["op"] == "ping":
                        client.push(
                            protocol.encode(
                                {"type": "pong", "id": msg.get("id"), "ts": time.time_ns()}
                            )
                        )
                    elif msg["op"] == "list":
                        client.push(
                            protocol.encode(
                                {
                                    "type": "streams",
                                    "id": msg.get("id"),
                                    "streams": self.stream_list(),
                                }
                            )
                        )
                    else:
                        self._subscribe(client, msg)
                except ProtocolError as exc:
                    client.push(
                        protocol.encode({"type": "error", "code": exc.code, "message": str(exc)})
                    )
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender
            self.clients.discard(client)
            CONNECTIONS.set(len(self.clients))
            SUBSCRIPTIONS.set(sum(len(c.subs) for c in self.clients))

    def stream_list(self) -> list[dict[str, Any]]:
        out = []
        for (venue, symbol), s in sorted(self.streams.items()):
            out.append(
                {
                    "venue": venue,
                    "symbol": symbol,
                    "seq": s.seq,
                    "synced": s.synced,
                    "gaps": s.gaps,
                    "last_trade_seq": s.last_trade_seq,
                    "resyncs": s.resyncs,
                    "venue_status": s.venue_status,
                    "tick_size": s.instrument.tick_size if s.instrument else None,
                    "lot_size": s.instrument.lot_size if s.instrument else None,
                }
            )
        return out

    def health(self) -> dict[str, Any]:
        return {
            "ok": self.source_error is None,
            "node": self.name,
            "source_error": self.source_error,
            "connections": len(self.clients),
            "streams": self.stream_list(),
        }

    def _process_request(self, _conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            return None
        ops = ops_response(path, self.health)
        if ops is not None:
            return ops
        if path in STATIC:
            name, ctype = STATIC[path]
            return response(200, (WEB_DIR / name).read_bytes(), ctype)
        return response(404, b"not found\n", "text/plain")

    async def start(self) -> Server:
        self._server = await serve(
            self._handle,
            self.cfg.host,
            self.cfg.port,
            process_request=self._process_request,
            max_size=1 << 16,
            max_queue=64,
            compression=None,
        )
        return self._server

    async def stop(self) -> None:
        for task in self._sync_tasks.values():
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def run_source(node: FanoutNode, source: Callable[[FanoutNode], Awaitable[None]]) -> None:
    """Run a source coroutine; record its failure in the node's health instead of dying silently."""
    try:
        await source(node)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        node.source_error = f"{type(exc).__name__}: {exc}"
        log.exception("market-data source failed")
        raise
