"""A fanout node: serves traders' WebSocket subscriptions from a market-data source.

The source (in-process bus or Kafka) delivers book updates, trades, statuses
and bars; the node keeps each book in sync (fanout.stream), encodes every
update once per shared feed (fanout.views, capped and freed with their last
subscriber) and, every ``flush_ms``, writes one frame per group of clients with
the same feeds plus one per client with messages of its own (fanout.sender). A
large subscribe is set up in slices and a slow client is conflated, reset to
snapshots, then disconnected with a reason; neither delays anyone else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import Counter, Gauge
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bus.local import SnapshotStore
from bus.redis_store import BadSnapshot, snapshot_problem
from fanout import protocol
from fanout.auth import Grant, Keys, credential_in, keys_for
from fanout.delivery import Client, Feed
from fanout.protocol import ChannelRequest, ProtocolError
from fanout.protocol import Request as ClientRequest
from fanout.sender import CLOSE_TIMEOUT_S, REFUSED, Sender
from fanout.stream import BarBuilder, BookStream, Outcome
from fanout.views import Views, compact
from hub.auth import RateLimit
from hub.backoff import Backoff
from hub.config import FanoutConfig
from hub.events import Bar, BookUpdate, Event, Instrument, Status, Trade
from hub.ops import ops_response, response

log = logging.getLogger("hub.fanout")

CONNECTIONS = Gauge("hub_fanout_connections", "Open client connections")
UPDATES = Counter("hub_fanout_updates_total", "Source events by outcome", ["kind", "outcome"])
GAPS = Counter("hub_fanout_gaps_total", "Sequence gaps detected", ["symbol"])
RESYNCS = Counter("hub_fanout_resyncs_total", "Books (re)synced from a snapshot", ["symbol"])
STORE_ERRORS = Counter("hub_fanout_store_errors_total", "Failed snapshot-store reads")
SYNC_FAILURES = Counter(
    "hub_fanout_sync_failures_total", "Snapshots a book could not sync from", ["symbol"]
)

WEB_DIR = Path(__file__).parent / "web"
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
SYNC_POLL = 0.05
SYNC_RETRY = 1.0
"""First wait after a failed snapshot read or a snapshot that cannot be used; doubling."""
SYNC_RETRY_CAP = 30.0
SUBSCRIBE_SLICE_S = 0.001
"""Longest stretch of subscription set-up (snapshot encoding) between two yields."""
ERROR_WINDOW_S = 10.0
Sub = tuple[str, str, str, int]
"""A connection's subscription: (channel, venue, symbol, candle interval)."""


class FanoutNode:
    """Book sync, feeds, subscriptions and the WebSocket server of one node."""

    def __init__(
        self, cfg: FanoutConfig, snapshots: SnapshotStore, bars_from_trades: bool = False
    ) -> None:
        self.cfg = cfg
        self.name = cfg.group or f"fanout-{os.getpid()}"
        self.snapshots = snapshots
        self.keys: Keys = keys_for(cfg.keys, cfg.anonymous, cfg.max_token_lifetime_s)
        self.streams: dict[tuple[str, str], BookStream] = {}
        self.by_symbol: dict[str, list[tuple[str, str]]] = {}
        self.views = Views(cfg, Feed)
        self.feeds = self.views.feeds
        self.unsynced: dict[tuple[str, str], str] = {}
        """Streams that cannot sync from the snapshot store, and why (on /healthz)."""
        self.out = Sender(cfg, self.views.initial_book)
        self.clients = self.out.clients
        self.per_key: dict[str, int] = {}
        self.bars = BarBuilder(protocol.CANDLE_INTERVALS) if bars_from_trades else None
        self._sync_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._server: Server | None = None
        self.source_error: str | None = None

    def _stream(self, venue: str, symbol: str) -> BookStream:
        key = (venue, symbol)
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = BookStream(venue, symbol)
            self.by_symbol.setdefault(symbol, []).append(key)
            self.views.add_stream(stream)
        return stream

    # --- source side ---------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Take one event from the source (bus or Kafka)."""
        if self._server is not None:
            self.out.wake()
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
            self.views.publish_update(stream, update)
        elif outcome is Outcome.INVALID:
            log.warning(
                "book update does not apply; resyncing",
                extra={
                    "venue": update.venue,
                    "symbol": update.symbol,
                    "seq": update.seq,
                    "error": stream.problem,
                },
            )
            self._broadcast_status(stream, "stale", "invalid update")
            self._start_sync(stream)
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
        msg = compact(protocol.encode_trade(stream.instrument, trade))
        stream.recent_trades.append(msg)
        feed = self.views.get("trades", trade.venue, trade.symbol)
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
        feed = self.views.get("candles", bar.venue, bar.symbol, bar.interval_s)
        if feed is not None and feed.targets and stream.instrument is not None:
            feed.publish(compact(protocol.encode_candle(stream.instrument, bar)))

    def _start_sync(self, stream: BookStream) -> None:
        key = (stream.venue, stream.symbol)
        task = self._sync_tasks.get(key)
        if task is None or task.done():
            self._sync_tasks[key] = asyncio.create_task(self._sync(stream))

    async def _sync(self, stream: BookStream) -> None:
        """Poll the snapshot store until a snapshot covers the buffered updates. A read that
        fails or a snapshot that cannot be used marks the stream unsynced on /healthz and is
        retried with a growing delay; the source keeps filling the buffer meanwhile."""
        key = (stream.venue, stream.symbol)
        backoff = Backoff(SYNC_RETRY, SYNC_RETRY_CAP)
        while not stream.synced:
            problem = await self._try_sync(stream)
            if stream.synced:
                self.unsynced.pop(key, None)
                return
            if problem is None:
                await asyncio.sleep(SYNC_POLL)
                continue
            SYNC_FAILURES.labels(stream.symbol).inc()
            if self.unsynced.get(key) != problem:
                log.warning(
                    "cannot sync the book from the snapshot store; retrying",
                    extra={"venue": stream.venue, "symbol": stream.symbol, "error": problem},
                )
            self.unsynced[key] = problem
            await backoff.wait()

    async def _try_sync(self, stream: BookStream) -> str | None:
        """One sync attempt; what went wrong (None: synced, or no snapshot that covers the
        buffer yet)."""
        try:
            if stream.instrument is None:
                for inst in await self.snapshots.instruments():
                    if (inst.venue, inst.symbol) == (stream.venue, stream.symbol):
                        stream.instrument = inst
            snap = await self.snapshots.get(stream.venue, stream.symbol)
        except BadSnapshot as exc:
            return str(exc)
        except Exception as exc:  # the store is down or returned garbage: keep trying
            STORE_ERRORS.inc()
            return f"snapshot store read failed: {exc!r}"
        if stream.instrument is None or snap is None or snap.seq < stream.needs_snapshot_after():
            return None
        problem = snapshot_problem(snap)
        if problem is not None:
            return f"bad snapshot of {stream.venue}:{stream.symbol}: {problem}"
        try:
            synced = stream.try_sync(snap)
        except (ValueError, OverflowError, TypeError, KeyError) as exc:
            return f"snapshot of {stream.venue}:{stream.symbol} does not apply: {exc}"
        if not synced:
            return None
        RESYNCS.labels(stream.symbol).inc()
        log.info(
            "book synced", extra={"venue": stream.venue, "symbol": stream.symbol, "seq": stream.seq}
        )
        stream.top_changed()
        self._broadcast_status(stream, "live", "synced")
        l3 = self.views.get("l3", stream.venue, stream.symbol)
        for feed in [*self.views.book[stream.venue, stream.symbol], l3]:
            if feed is not None:
                feed.restart()
                self.views.publish_snapshot(feed, "resync")
        self.out.wake()
        return None

    def _broadcast_status(self, stream: BookStream, state: str, reason: str) -> None:
        msg = compact(
            protocol.encode_status(stream.venue, stream.symbol, state, stream.seq, reason)
        )
        for feed in self.views.status_feeds(stream):
            if feed.targets:
                feed.publish(msg)

    # --- client requests -----------------------------------------------------------------

    def _resolve(self, client: Client, item: ChannelRequest) -> BookStream:
        if item.channel not in client.grant.channels:
            raise ProtocolError(
                "forbidden", f"key {client.grant.id!r} may not use the {item.channel} channel"
            )
        matches = [k for k in self.by_symbol.get(item.symbol, ()) if item.venue in (None, k[0])]
        if not matches:
            raise ProtocolError("unknown_symbol", f"no stream for symbol {item.symbol!r}")
        if len(matches) > 1:
            raise ProtocolError(
                "ambiguous_symbol", f"{item.symbol!r} trades on several venues; give 'venue'"
            )
        stream = self.streams[matches[0]]
        if item.channel == "l3" and stream.synced and stream.orders is None:
            raise ProtocolError(
                "unavailable",
                f"no order-level (L3) data for {item.symbol!r}: its source publishes levels only",
            )
        return stream

    async def _subscribe(self, client: Client, req: ClientRequest) -> None:
        """Answer a (un)subscribe request at once, then set up each new subscription's
        initial state (snapshots) a slice at a time, yielding to the event loop in between:
        a large request never holds up anyone else's messages."""
        self.out.isolate(client)
        accepted: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        early: list[bytes] = []
        todo: dict[Sub, tuple[ChannelRequest, Feed]] = {}
        """Per subscription, the last entry of this request for it and its (held) feed."""
        added = 0  # subscriptions in todo the connection does not hold yet
        for item in req.channels:
            if isinstance(item, ProtocolError):
                refused.append({"code": item.code, "reason": str(item)})
                continue
            try:
                stream = self._resolve(client, item)
            except ProtocolError as exc:
                REFUSED.labels(exc.code).inc()
                refused.append({"request": item.raw, "code": exc.code, "reason": str(exc)})
                continue
            sub = (item.channel, stream.venue, stream.symbol, item.interval)
            answer: dict[str, Any] = {
                "channel": item.channel,
                "venue": stream.venue,
                "symbol": stream.symbol,
            }
            if req.op == "unsubscribe":
                self._detach(client, sub)
                accepted.append(answer)
                continue
            limit = client.grant.max_subscriptions
            if sub not in client.feeds and sub not in todo and len(client.feeds) + added >= limit:
                REFUSED.labels("too_many_subscriptions").inc()
                refused.append(
                    {
                        "request": item.raw,
                        "code": "too_many_subscriptions",
                        "reason": f"at most {limit} per connection",
                    }
                )
                continue
            try:
                feed = self.views.acquire(
                    stream, item.channel, item.depth, item.checksum, item.interval, client.holder
                )
            except ProtocolError as exc:
                REFUSED.labels(exc.code).inc()
                refused.append({"request": item.raw, "code": exc.code, "reason": str(exc)})
                continue
            if item.depth:
                answer["depth"] = item.depth
            if item.interval:
                answer["interval"] = item.interval
            if item.checksum:
                answer["checksum"] = True
            accepted.append(answer)
            replaced = todo.pop(sub, None)
            if replaced is not None:  # the last entry for a subscription wins
                self.views.release(replaced[1], client.holder)
                added -= sub not in client.feeds
            replay = self.views.replay(feed, item, answer)
            if replay is None:
                todo[sub] = (item, feed)
                added += sub not in client.feeds
            else:
                self._attach(client, sub, feed)
                early.extend(replay)
        client.push(
            protocol.encode(
                {"type": f"{req.op}d", "id": req.id, "accepted": accepted, "refused": refused}
            )
        )
        for msg in early:
            client.push(msg)
        await self._set_up(client, list(todo.items()))

    async def _set_up(
        self, client: Client, todo: list[tuple[Sub, tuple[ChannelRequest, Feed]]]
    ) -> None:
        """Attach held feeds and send their initial state, yielding to the event loop after
        each SUBSCRIBE_SLICE_S of work."""
        client.subscribing = True
        done = 0
        try:
            started = time.perf_counter()
            while done < len(todo) and not client.closing:
                if time.perf_counter() - started > SUBSCRIBE_SLICE_S:
                    self.out.wake()
                    await asyncio.sleep(0)
                    started = time.perf_counter()
                    continue
                sub, (item, feed) = todo[done]
                done += 1
                self._attach(client, sub, feed)
                for msg in self.views.initial(feed, item):
                    client.push(msg)
        finally:
            client.subscribing = False
            for _sub, (_item, feed) in todo[done:]:
                self.views.release(feed, client.holder)
            self.out.wake()

    def _attach(self, client: Client, sub: Sub, feed: Feed) -> None:
        """Make ``feed`` (held for this client) serve subscription ``sub``."""
        old = client.feeds.get(sub)
        if old is not None:
            self._detach(client, sub)
        if feed.view is not None and not feed.targets:
            feed.restart()  # nobody received it: its view and seq may be behind the book
        client.feeds[sub] = feed
        feed.targets.add(client)

    def _detach(self, client: Client, sub: Sub) -> None:
        feed = client.feeds.pop(sub, None)
        if feed is not None:
            feed.targets.discard(client)
            client.drop_feed_state(feed)
            self.views.release(feed, client.holder)

    def _refuse(self, client: Client, exc: ProtocolError, ident: Any = None) -> None:
        """An error frame; a client that keeps sending bad requests is disconnected."""
        REFUSED.labels(exc.code).inc()
        now = time.monotonic()
        client.errors.append(now)
        recent = sum(1 for t in client.errors if now - t <= ERROR_WINDOW_S)
        if recent > self.cfg.max_errors:
            self.out.close(
                client, 1008, f"too many bad requests ({recent} in {ERROR_WINDOW_S:.0f} s)"
            )
            return
        self.out.isolate(client)
        client.push(protocol.error(exc.code, str(exc), ident))

    async def _request(self, client: Client, limit: RateLimit, data: str | bytes) -> None:
        self.out.wake()
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
            self.out.isolate(client)
            client.push(protocol.encode({"type": "pong", "id": req.id, "ts": time.time_ns()}))
        elif req.op == "list":
            self.out.isolate(client)
            client.push(
                protocol.encode({"type": "streams", "id": req.id, "streams": self.stream_list()})
            )
        elif req.op == "auth":
            self._refuse(client, ProtocolError("bad_request", "already authenticated"), req.id)
        else:
            await self._subscribe(client, req)

    # --- connections ---------------------------------------------------------------------

    async def _authenticate(self, ws: ServerConnection) -> Grant | None:
        """The client's grant from its header, URL or first message; None after closing."""
        credential = credential_in(ws.request) if ws.request is not None else None
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
        self.out.private.add(client)
        self.per_key[grant.id] = self.per_key.get(grant.id, 0) + 1
        CONNECTIONS.set(len(self.clients))
        limit = RateLimit(grant.messages_per_s)
        client.push(
            protocol.encode(
                {"type": "welcome", "node": self.name, "key": grant.id, "deflate": deflate}
            )
        )
        self.out.wake()
        try:
            async for data in ws:
                if not client.closing:
                    await self._request(client, limit, data)
        except ConnectionClosed:
            pass
        finally:
            self.out.isolate(client)
            for sub in list(client.feeds):
                self._detach(client, sub)
            self.out.private.discard(client)
            self.clients.discard(client)
            self.per_key[grant.id] -= 1
            CONNECTIONS.set(len(self.clients))

    def stream_list(self) -> list[dict[str, Any]]:
        return [s.describe(protocol.CHANNELS) for _key, s in sorted(self.streams.items())]

    def health(self) -> dict[str, Any]:
        """Not ok when the source failed or a book cannot sync (each named, with why)."""
        unsynced = [
            {"venue": venue, "symbol": symbol, "reason": why}
            for (venue, symbol), why in sorted(self.unsynced.items())
        ]
        return {
            "ok": self.source_error is None and not unsynced,
            "node": self.name,
            "source_error": self.source_error,
            "unsynced": unsynced,
            "views": self.views.views,
            "history_bytes": self.views.history_bytes(),
            "connections": len(self.clients),
            "groups": len(self.out.groups),
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
            # No WebSocket keepalive pings: behind a slow reader's backlog their pongs come
            # late and websockets would drop it silently. Liveness is the node's own rules
            # (client_timeout_s, and the slow-consumer policy in fanout.sender).
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT_S,
            write_limit=self.cfg.send_buffer_kib * 1024,
        )
        self._tasks.append(asyncio.create_task(self.out.housekeeper()))
        return self._server

    async def stop(self) -> None:
        for task in [*self._sync_tasks.values(), *self._tasks]:
            task.cancel()
        self.out.stop()
        if self._server is not None:
            self._server.close(close_connections=False)
            clients = list(self.clients)
            bye = "node shutting down"
            closing = [asyncio.ensure_future(c.ws.close(1001, bye)) for c in clients]
            if closing:
                await asyncio.wait(closing, timeout=2)  # all at once: one bound, not one each
            for client in clients:
                client.ws.transport.abort()  # a peer that never answered the close handshake
            await asyncio.gather(*closing, return_exceptions=True)
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
