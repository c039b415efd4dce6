"""A fanout node: serves traders' WebSocket subscriptions from a market-data source.

The source (in-process bus or Kafka) delivers book updates, trades, statuses
and bars; the node keeps each book in sync (fanout.stream), encodes every
update once per feed (fanout.delivery) and, every ``flush_ms``, writes one
frame per group of clients with the same feeds plus one per client with
messages of its own. A slow client is conflated, then reset to snapshots,
then disconnected; it never delays anyone else.
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
from urllib.parse import parse_qs, urlsplit

from prometheus_client import Counter, Gauge, Histogram
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from fanout import protocol
from fanout.auth import Grant, Keys, keys_for
from fanout.delivery import Client, Feed, Group
from fanout.protocol import ChannelRequest, ProtocolError
from fanout.protocol import Request as ClientRequest
from fanout.stream import BarBuilder, BookStream, Outcome
from hub.auth import RateLimit
from hub.bus import SnapshotStore
from hub.config import FanoutConfig
from hub.events import Bar, BookUpdate, Event, Instrument, Status, Trade
from hub.ops import ops_response, response

log = logging.getLogger("hub.fanout")

CONNECTIONS = Gauge("hub_fanout_connections", "Open client connections")
SUBSCRIPTIONS = Gauge("hub_fanout_subscriptions", "Active subscriptions")
GROUPS = Gauge("hub_fanout_groups", "Groups of clients sharing frames")
PRIVATE = Gauge("hub_fanout_private_clients", "Clients on a private queue (new, lagging)")
FRAMES = Counter("hub_fanout_frames_sent_total", "WebSocket frames written to sockets")
MESSAGES = Counter("hub_fanout_messages_sent_total", "Messages delivered (many per frame)")
UPDATES_SENT = Counter("hub_fanout_updates_sent_total", "Book, trade and bbo messages delivered")
BYTES = Counter("hub_fanout_bytes_sent_total", "Payload bytes written to sockets")
UPDATES = Counter("hub_fanout_updates_total", "Source events by outcome", ["kind", "outcome"])
GAPS = Counter("hub_fanout_gaps_total", "Sequence gaps detected", ["symbol"])
RESYNCS = Counter("hub_fanout_resyncs_total", "Books (re)synced from a snapshot", ["symbol"])
CONFLATIONS = Counter("hub_fanout_conflated_total", "Book deltas merged for lagging clients")
RESETS = Counter("hub_fanout_snapshot_resets_total", "Lagging clients reset to fresh snapshots")
SLOW = Counter("hub_fanout_slow_disconnects_total", "Clients disconnected as too slow")
REFUSED = Counter("hub_fanout_refused_total", "Connections and requests refused", ["code"])
RESUMES = Counter("hub_fanout_resumes_total", "Book resumes by outcome", ["outcome"])
QUEUE_DEPTH = Histogram(
    "hub_fanout_queue_depth",
    "Messages per flushed frame",
    buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000),
)
BUFFERED = Gauge("hub_fanout_send_buffer_max_bytes", "Largest socket write buffer at last check")
STORE_ERRORS = Counter("hub_fanout_store_errors_total", "Failed snapshot-store reads")
LATENCY = Histogram(
    "hub_fanout_tick_to_send_seconds",
    "Hub receive time (ts_recv) of the oldest message in a frame to its socket write",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)

WEB_DIR = Path(__file__).parent / "web"
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
SYNC_POLL = 0.05
SYNC_RETRY = 1.0
ERROR_WINDOW_S = 10.0
RESET_WINDOW_S = 60.0
CLOSE_TIMEOUT_S = 2.0
UPDATE_TYPES = (b'{"type":"book"', b'{"type":"trade"', b'{"type":"bbo"')


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked WebSocket text frame (RFC 6455 section 5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class FanoutNode:
    """Book sync, feeds, subscriptions and the WebSocket server of one node."""

    def __init__(
        self, cfg: FanoutConfig, snapshots: SnapshotStore, bars_from_trades: bool = False
    ) -> None:
        self.cfg = cfg
        self.name = cfg.group or f"fanout-{os.getpid()}"
        self.snapshots = snapshots
        self.keys: Keys = keys_for(cfg.keys, cfg.anonymous)
        self.streams: dict[tuple[str, str], BookStream] = {}
        self.feeds: dict[tuple[str, str, str, int, bool], Feed] = {}
        self.book_feeds: dict[tuple[str, str], list[Feed]] = {}
        self.groups: dict[frozenset[Feed], Group] = {}
        self.clients: set[Client] = set()
        self.private: set[Client] = set()
        self.per_key: dict[str, int] = {}
        self.bars = BarBuilder(protocol.CANDLE_INTERVALS) if bars_from_trades else None
        self._sync_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._server: Server | None = None
        self._flush_at: asyncio.TimerHandle | None = None
        self._last_flush = 0.0
        self.source_error: str | None = None

    # --- feeds ---------------------------------------------------------------------------

    def _stream(self, venue: str, symbol: str) -> BookStream:
        key = (venue, symbol)
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = BookStream(venue, symbol)
            self.book_feeds[key] = []
            self._feed(stream, "book")  # the full book always keeps its history for resumes
        return stream

    def _feed(
        self,
        stream: BookStream,
        channel: str,
        depth: int = 0,
        checksum: bool = False,
        interval: int = 0,
    ) -> Feed:
        key = (channel, stream.venue, stream.symbol, depth or interval, checksum)
        feed = self.feeds.get(key)
        if feed is None:
            feed = Feed(stream, channel, depth, checksum, interval, self.cfg.history)
            feed.restart()
            self.feeds[key] = feed
            if channel == "book":
                self.book_feeds[stream.venue, stream.symbol].append(feed)
        return feed

    def _status_feeds(self, stream: BookStream) -> list[Feed]:
        status = self.feeds.get(("status", stream.venue, stream.symbol, 0, False))
        feeds = list(self.book_feeds.get((stream.venue, stream.symbol), []))
        return [*feeds, status] if status is not None else feeds

    # --- source side ---------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Take one event from the source (bus or Kafka)."""
        if self._flush_at is None and self._server is not None:
            self.wake()
        if isinstance(event, BookUpdate):
            self._on_update(event)
        elif isinstance(event, Trade):
            self._on_trade(event)
        elif isinstance(event, Bar):
            self._on_bar(event)
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
            self._publish_update(stream, update)
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

    def _publish_update(self, stream: BookStream, u: BookUpdate) -> None:
        inst = stream.instrument
        assert inst is not None
        plain: bytes | None = None
        for feed in self.book_feeds[u.venue, u.symbol]:
            if feed.view is None:
                if feed.checksum:
                    msg = protocol.encode_book(
                        inst, u.seq, u.seq, u.ts_event, u.ts_recv, u.changes, 0, feed.checksum_now()
                    )
                else:
                    if plain is None:
                        plain = protocol.encode_book(
                            inst, u.seq, u.seq, u.ts_event, u.ts_recv, u.changes
                        )
                    msg = plain
                feed.history.append((u.seq, u.seq, msg))
                feed.seq = u.seq
                if feed.targets:
                    feed.publish_book(msg, u.seq, u.seq, u.ts_event, u.ts_recv, u.changes)
                continue
            if not feed.targets:
                continue  # an unused view; restarted when someone subscribes again
            changes = feed.view.diff(stream.book, u.changes)
            if not changes:
                continue
            first = feed.seq + 1
            feed.seq = u.seq
            msg = protocol.encode_book(
                inst, first, u.seq, u.ts_event, u.ts_recv, changes, feed.depth, feed.checksum_now()
            )
            feed.history.append((first, u.seq, msg))
            feed.publish_book(msg, first, u.seq, u.ts_event, u.ts_recv, changes)
        if stream.top_changed():
            bid, ask = stream.top
            stream.bbo_msg = protocol.encode_bbo(inst, u.seq, u.ts_event, u.ts_recv, bid, ask)
            bbo = self.feeds.get(("bbo", u.venue, u.symbol, 0, False))
            if bbo is not None and bbo.targets:
                bbo.publish(stream.bbo_msg, u.ts_recv)

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
        feed = self.feeds.get(("trades", trade.venue, trade.symbol, 0, False))
        if feed is not None and feed.targets:
            feed.publish(msg, trade.ts_recv)
        if self.bars is not None:
            for bar in self.bars.add(
                trade.venue, trade.symbol, trade.price, trade.size, trade.ts_event, trade.seq
            ):
                self._on_bar(bar)

    def _on_bar(self, bar: Bar) -> None:
        stream = self._stream(bar.venue, bar.symbol)
        stream.on_bar(bar)
        feed = self.feeds.get(("candles", bar.venue, bar.symbol, bar.interval_s, False))
        if feed is not None and feed.targets and stream.instrument is not None:
            feed.publish(protocol.encode_candle(stream.instrument, bar))

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
                stream.top_changed()
                self._broadcast_status(stream, "live", "synced")
                for feed in self.book_feeds[stream.venue, stream.symbol]:
                    feed.restart()
                    self._publish_snapshot(feed, "resync")
                self.wake()
                return
            await asyncio.sleep(SYNC_POLL)

    def _publish_snapshot(self, feed: Feed, reason: str) -> None:
        if not feed.targets:
            return
        msg = feed.snapshot(reason)
        for target in feed.targets:
            if isinstance(target, Client):
                target.drop_feed_state(feed)
        feed.publish(msg)

    def _broadcast_status(self, stream: BookStream, state: str, reason: str) -> None:
        msg = protocol.encode_status(stream.venue, stream.symbol, state, stream.seq, reason)
        for feed in self._status_feeds(stream):
            if feed.targets:
                feed.publish(msg)

    # --- delivery ------------------------------------------------------------------------

    def _private(self, client: Client) -> None:
        """Take a client out of its group onto a private queue, keeping what the group has
        gathered for it this interval."""
        group = client.group
        if group is None:
            return
        client.group = None
        group.members.discard(client)
        client.pending = list(group.pending)
        client.oldest = group.oldest
        for feed in client.feeds.values():
            feed.targets.add(client)
        if not group.members:
            for feed in group.feeds:
                feed.targets.discard(group)
            del self.groups[group.feeds]
        self.private.add(client)

    def _join(self, client: Client) -> None:
        """Move a private client that has nothing of its own pending into its group."""
        feeds = frozenset(client.feeds.values())
        if not feeds or client.closing:
            return
        group = self.groups.get(feeds)
        if group is None:
            group = self.groups[feeds] = Group(feeds)
            for feed in feeds:
                feed.targets.add(group)
        for feed in feeds:
            feed.targets.discard(client)
        group.members.add(client)
        client.group = group
        self.private.discard(client)

    def _write(self, clients: list[Client], batch: list[bytes], oldest: int) -> None:
        """One text frame to every client: serialized once (an unmasked server frame is the
        same bytes for every uncompressed connection) and written to each socket; clients
        that negotiated permessage-deflate go through websockets (compressed per socket)."""
        frame = b"[" + b",".join(batch) + b"]"
        wire = text_frame(frame)
        deflated = []
        for client in clients:
            if client.deflate:
                deflated.append(client.ws)
            else:
                client.ws.transport.write(wire)
        if deflated:
            broadcast(deflated, frame, text=True)
        n = len(clients)
        FRAMES.inc(n)
        MESSAGES.inc(len(batch) * n)
        UPDATES_SENT.inc(sum(1 for m in batch if m.startswith(UPDATE_TYPES)) * n)
        BYTES.inc(len(frame) * n)
        QUEUE_DEPTH.observe(len(batch))
        if oldest:
            LATENCY.observe(max(0.0, (time.time_ns() - oldest) / 1e9))

    def flush(self) -> None:
        """Write what accumulated since the last flush: one frame per group, one per
        private client. Synchronous, so nothing arrives halfway through."""
        high = self.cfg.send_buffer_kib * 1024
        now = time.monotonic()
        worst = 0
        for group in list(self.groups.values()):
            if not group.pending:
                continue
            batch, oldest = group.pending, group.oldest
            group.pending = []
            ready = []
            for client in list(group.members):
                size = client.buffered()
                worst = max(worst, size)
                if size > high:
                    self._private(client)
                    client.pending = list(batch)
                    client.lagging = True
                    client.lagging_since = now
                elif client.ws.protocol.state is State.OPEN:
                    ready.append(client)
            if ready:
                self._write(ready, batch, oldest)
            group.last_sent = now
        for client in list(self.private):
            size = client.buffered()
            worst = max(worst, size)
            if client.lagging and size > high:
                if now - client.lagging_since > self.cfg.slow_timeout_s:
                    SLOW.inc()
                    self._close(client, 1013, "slow consumer: not reading")
                elif len(client.pending) > self.cfg.queue_limit:
                    self._reset(client, now)
                continue
            batch = client.pending
            if client.lagging:
                batch += client.drain_conflated()
                client.lagging = size > high // 2
            client.pending = []
            if batch and client.ws.protocol.state is State.OPEN:
                self._write([client], batch, client.oldest)
                client.last_sent = now
            if not client.lagging:
                self._join(client)
        BUFFERED.set(worst)
        CONFLATIONS.inc(sum(c.conflations for c in self.private))
        for client in self.private:
            client.conflations = 0

    def _reset(self, client: Client, now: float) -> None:
        """Replace a lagging client's queue by fresh snapshots; disconnect it when that
        keeps happening."""
        while client.resets and now - client.resets[0] > RESET_WINDOW_S:
            client.resets.popleft()
        client.resets.append(now)
        if len(client.resets) > self.cfg.max_resets:
            SLOW.inc()
            self._close(
                client, 1013, f"slow consumer: reset {len(client.resets)} times in a minute"
            )
            return
        RESETS.inc()
        log.info("lagging client reset to snapshots", extra={"key": client.grant.id})
        client.pending = []
        client.conflated.clear()
        client.latest_bbo.clear()
        for (channel, _v, _s, _i), feed in client.feeds.items():
            if channel == "book":
                client.push(self._initial_book(feed, "slow_client"))
            elif channel == "bbo" and feed.stream.bbo_msg is not None:
                client.push(feed.stream.bbo_msg)

    def _close(self, client: Client, code: int, reason: str) -> None:
        if client.closing:
            return
        client.closing = True
        self._private(client)
        for feed in client.feeds.values():
            feed.targets.discard(client)
        self.private.discard(client)
        log.info("closing client", extra={"key": client.grant.id, "code": code, "reason": reason})
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(self._close_or_abort(client.ws, code, reason)))

    async def _close_or_abort(self, ws: ServerConnection, code: int, reason: str) -> None:
        """Close with a reason; a peer that does not read cannot even take the close
        frame, so after the close timeout its connection is aborted."""
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            await asyncio.wait_for(ws.close(code, reason), CLOSE_TIMEOUT_S + 0.5)
        if ws.transport is not None and not ws.transport.is_closing():
            ws.transport.abort()

    def wake(self) -> None:
        """Make sure a flush is due: at once when the last one is more than ``flush_ms``
        ago, else when it will be. A quiet node sends an update as soon as the current
        batch of source events is handled; a busy one sends at most one frame per group
        and interval, however many updates arrive."""
        if self._flush_at is not None:
            return
        loop = asyncio.get_running_loop()
        due = self._last_flush + self.cfg.flush_ms / 1000
        self._flush_at = loop.call_at(max(due, loop.time()), self._flush_due)

    def _flush_due(self) -> None:
        self._flush_at = None
        self._last_flush = asyncio.get_running_loop().time()
        self.flush()
        if any(c.pending or c.conflated for c in self.private):
            self.wake()  # lagging clients: try again next interval

    async def _housekeeper(self) -> None:
        """Once a second: heartbeats to quiet connections, idle clients closed, gauges."""
        beat = self.cfg.heartbeat_s
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            msg = protocol.encode({"type": "heartbeat", "ts": time.time_ns()})
            for group in self.groups.values():
                if now - group.last_sent >= beat and not group.pending:
                    group.pending.append(msg)
            for client in list(self.clients):
                if client.group is None and now - client.last_sent >= beat and not client.pending:
                    client.push(msg)
                timeout = self.cfg.client_timeout_s
                if timeout and now - client.last_heard > timeout:
                    REFUSED.labels("idle").inc()
                    self._close(client, 1008, f"idle: no message from the client in {timeout} s")
            self.wake()
            GROUPS.set(len(self.groups))
            PRIVATE.set(len(self.private))
            SUBSCRIPTIONS.set(sum(len(c.feeds) for c in self.clients))

    # --- client requests -----------------------------------------------------------------

    def _resolve(self, client: Client, item: ChannelRequest) -> BookStream:
        if item.channel not in client.grant.channels:
            raise ProtocolError(
                "forbidden", f"key {client.grant.id!r} may not use the {item.channel} channel"
            )
        matches = [k for k in self.streams if k[1] == item.symbol and item.venue in (None, k[0])]
        if not matches:
            raise ProtocolError("unknown_symbol", f"no stream for symbol {item.symbol!r}")
        if len(matches) > 1:
            raise ProtocolError(
                "ambiguous_symbol", f"{item.symbol!r} trades on several venues; give 'venue'"
            )
        stream = self.streams[matches[0]]
        if item.channel == "l3":
            raise ProtocolError(
                "unavailable", f"no order-level (L3) data is published for {item.symbol!r}"
            )
        return stream

    def _subscribe(self, client: Client, req: ClientRequest) -> None:
        """Answer a (un)subscribe request, then send each new subscription's initial state."""
        self._private(client)
        accepted: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        initial: list[bytes] = []
        for item in req.channels:
            if isinstance(item, ProtocolError):
                refused.append({"code": item.code, "reason": str(item)})
                continue
            try:
                stream = self._resolve(client, item)
            except ProtocolError as exc:
                REFUSED.labels(exc.code).inc()
                refused.append({"request": item.echo(), "code": exc.code, "reason": str(exc)})
                continue
            sub = (item.channel, stream.venue, stream.symbol, item.interval)
            answer: dict[str, Any] = {
                "channel": item.channel,
                "venue": stream.venue,
                "symbol": stream.symbol,
            }
            if req.op == "unsubscribe":
                feed = client.feeds.pop(sub, None)
                if feed is not None:
                    feed.targets.discard(client)
                accepted.append(answer)
                continue
            if sub not in client.feeds and len(client.feeds) >= client.grant.max_subscriptions:
                REFUSED.labels("too_many_subscriptions").inc()
                refused.append(
                    {
                        "request": item.echo(),
                        "code": "too_many_subscriptions",
                        "reason": f"at most {client.grant.max_subscriptions} per connection",
                    }
                )
                continue
            feed = self._feed(stream, item.channel, item.depth, item.checksum, item.interval)
            if feed.view is not None and not feed.targets:
                feed.restart()
            old = client.feeds.get(sub)
            if old is not None:
                old.targets.discard(client)
            client.feeds[sub] = feed
            feed.targets.add(client)
            if item.depth:
                answer["depth"] = item.depth
            if item.interval:
                answer["interval"] = item.interval
            if item.checksum:
                answer["checksum"] = True
            initial.extend(self._initial(feed, item, answer))
            accepted.append(answer)
        client.push(
            protocol.encode(
                {"type": f"{req.op}d", "id": req.id, "accepted": accepted, "refused": refused}
            )
        )
        for msg in initial:
            client.push(msg)

    def _initial_book(self, feed: Feed, reason: str) -> bytes:
        stream = feed.stream
        if stream.synced and stream.instrument is not None:
            return feed.snapshot(reason)
        return protocol.encode_status(stream.venue, stream.symbol, "stale", stream.seq, "syncing")

    def _initial(self, feed: Feed, item: ChannelRequest, answer: dict[str, Any]) -> list[bytes]:
        """What a new subscription receives before the live messages."""
        stream = feed.stream
        if item.channel == "book":
            if item.resume_from is not None and stream.synced:
                replay = feed.replay_after(item.resume_from)
                if replay is not None:
                    RESUMES.labels("replayed").inc()
                    answer["resume"] = "replayed"
                    answer["replayed"] = len(replay)
                    return replay
                RESUMES.labels("snapshot").inc()
                answer["resume"] = "snapshot"
            return [self._initial_book(feed, "subscribe")]
        if item.channel == "trades":
            return list(stream.recent_trades)
        if item.channel == "bbo":
            return [stream.bbo_msg] if stream.bbo_msg is not None else []
        if item.channel == "candles":
            if stream.instrument is None:
                return []
            return [
                protocol.encode_candles(
                    stream.instrument, item.interval, stream.recent_candles(item.interval)
                )
            ]
        state = (stream.venue_status if stream.synced else "stale") or "live"
        return [protocol.encode_status(stream.venue, stream.symbol, state, stream.seq, "subscribe")]

    def _refuse(self, client: Client, exc: ProtocolError, ident: Any = None) -> None:
        """An error frame; a client that keeps sending bad requests is disconnected."""
        REFUSED.labels(exc.code).inc()
        now = time.monotonic()
        client.errors.append(now)
        recent = sum(1 for t in client.errors if now - t <= ERROR_WINDOW_S)
        if recent > self.cfg.max_errors:
            self._close(client, 1008, f"too many bad requests ({recent} in {ERROR_WINDOW_S:.0f} s)")
            return
        self._private(client)
        client.push(protocol.error(exc.code, str(exc), ident))

    def _request(self, client: Client, limit: RateLimit, data: str | bytes) -> None:
        self.wake()
        client.last_heard = time.monotonic()
        if not limit.take(client.last_heard):
            self._refuse(
                client,
                ProtocolError(
                    "rate_limited",
                    f"more than {client.grant.messages_per_s:g} messages per second",
                ),
            )
            return
        try:
            req = protocol.parse_request(data)
        except ProtocolError as exc:
            self._refuse(client, exc)
            return
        if req.op == "ping":
            self._private(client)
            client.push(protocol.encode({"type": "pong", "id": req.id, "ts": time.time_ns()}))
        elif req.op == "list":
            self._private(client)
            client.push(
                protocol.encode({"type": "streams", "id": req.id, "streams": self.stream_list()})
            )
        elif req.op == "auth":
            self._refuse(client, ProtocolError("bad_request", "already authenticated"), req.id)
        else:
            self._subscribe(client, req)

    # --- connections ---------------------------------------------------------------------

    async def _authenticate(self, ws: ServerConnection) -> Grant | None:
        """The client's grant from its header, URL or first message; None after closing."""
        request = ws.request
        credential: str | None = None
        if request is not None:
            header = request.headers.get("Authorization", "")
            if header.lower().startswith("bearer "):
                credential = header[7:].strip()
            query = parse_qs(urlsplit(request.path).query)
            tokens = query.get("token")
            credential = credential or (tokens[0] if tokens else None)
        if credential is None and self.keys.anonymous is None:
            try:
                first = await asyncio.wait_for(ws.recv(), self.cfg.auth_timeout_s)
                req = protocol.parse_request(first)
                if req.op != "auth":
                    raise ProtocolError("unauthenticated", "send {'op': 'auth'} first")
                credential = req.token
            except (TimeoutError, ProtocolError) as exc:
                why = str(exc) if isinstance(exc, ProtocolError) else "no credential in time"
                REFUSED.labels("unauthenticated").inc()
                await ws.close(1008, f"authentication required: {why}"[:120])
                return None
        grant, why = self.keys.check(credential)
        if grant is None:
            REFUSED.labels("unauthenticated").inc()
            await ws.close(1008, f"authentication failed: {why}"[:120])
            return None
        if len(self.clients) >= self.cfg.max_connections or (
            grant.key and self.per_key.get(grant.id, 0) >= grant.max_connections
        ):
            REFUSED.labels("too_many_connections").inc()
            await ws.close(1013, "too many connections; try later or elsewhere")
            return None
        return grant

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            grant = await self._authenticate(ws)
        except ConnectionClosed:
            return
        if grant is None:
            return
        deflate = bool(ws.protocol.extensions)
        client = Client(ws, grant, deflate)
        self.clients.add(client)
        self.private.add(client)
        self.per_key[grant.id] = self.per_key.get(grant.id, 0) + 1
        CONNECTIONS.set(len(self.clients))
        limit = RateLimit(grant.messages_per_s)
        client.push(
            protocol.encode(
                {"type": "welcome", "node": self.name, "key": grant.id, "deflate": deflate}
            )
        )
        self.wake()
        try:
            async for data in ws:
                if not client.closing:
                    self._request(client, limit, data)
        except ConnectionClosed:
            pass
        finally:
            self._private(client)
            for feed in client.feeds.values():
                feed.targets.discard(client)
            self.private.discard(client)
            self.clients.discard(client)
            self.per_key[grant.id] -= 1
            CONNECTIONS.set(len(self.clients))

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
                    "channels": [c for c in protocol.CHANNELS if c != "l3"],
                }
            )
        return out

    def health(self) -> dict[str, Any]:
        return {
            "ok": self.source_error is None,
            "node": self.name,
            "source_error": self.source_error,
            "connections": len(self.clients),
            "groups": len(self.groups),
            "streams": self.stream_list(),
        }

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path == "/ws":
            # permessage-deflate only for clients that ask in the URL: browsers offer it on
            # every connection, and compressing costs the node CPU per client.
            if parse_qs(parts.query).get("deflate") != ["1"] or not self.cfg.deflate:
                conn.protocol.available_extensions = []
            return None
        ops = ops_response(parts.path, self.health)
        if ops is not None:
            return ops
        if parts.path in STATIC:
            name, ctype = STATIC[parts.path]
            return response(200, (WEB_DIR / name).read_bytes(), ctype)
        return response(404, b"not found\n", "text/plain")

    async def start(self) -> Server:
        self._server = await serve(
            self._handle,
            self.cfg.host,
            self.cfg.port,
            process_request=self._process_request,
            max_size=1 << 20,
            max_queue=64,
            compression="deflate",
            close_timeout=CLOSE_TIMEOUT_S,
            write_limit=self.cfg.send_buffer_kib * 1024,
        )
        self._tasks.append(asyncio.create_task(self._housekeeper()))
        return self._server

    async def stop(self) -> None:
        for task in [*self._sync_tasks.values(), *self._tasks]:
            task.cancel()
        if self._server is not None:
            self._server.close(close_connections=False)
            for client in list(self.clients):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.ws.close(1001, "node shutting down"), 2)
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
