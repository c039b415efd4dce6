"""A fanout node: serves traders' WebSocket subscriptions from a market-data source.

The source (in-process bus or Kafka) delivers book updates, trades, statuses
and bars, each kind to its handler; the node keeps each book in sync
(fanout.stream), has every update encoded once per shared feed (fanout.views,
capped and freed with their last subscriber) and, every ``flush_ms``, writes one
frame per group of clients with the same feeds plus one per client with
messages of its own (fanout.sender). Each connection's handler is a thin loop
around its sans-I/O session (fanout.session): messages in, and what the session
asks for carried out. A large subscribe is set up in slices and a slow client
is conflated, reset to snapshots, then disconnected with a reason; neither
delays anyone else. Plain HTTP requests to the same port get /metrics, /healthz,
the page, or the REST API (fanout.rest).
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
from fanout import consolidated, protocol
from fanout.auth import credential_in, keys_for
from fanout.delivery import Client, compact
from fanout.history import BarHistory
from fanout.replay import Replays
from fanout.rest import Rest
from fanout.sender import CLOSE_TIMEOUT_S, Sender
from fanout.session import Attach, Close, Detach, Output, Session, Shared, State
from fanout.stream import BarBuilder, BookStream, Outcome, StreamKey
from fanout.ticker import encode_ticker
from fanout.views import Views
from hub.backoff import Backoff
from hub.config import FanoutConfig
from hub.events import Bar, BookUpdate, Event, Instrument, Members, Status, Trade
from hub.ops import metrics, ops_response, response, runs

METRICS = metrics("fanout")

log = logging.getLogger("hub.fanout")

QUIET = ("halted", "closed")
"""Venue states in which a stream may rightly stop moving (/healthz does not call it stuck)."""

CONNECTIONS = Gauge("hub_fanout_connections", "Open client connections", registry=METRICS)
UPDATES = Counter(
    "hub_fanout_updates_total", "Source events by outcome", ["kind", "outcome"], registry=METRICS
)
GAPS = Counter("hub_fanout_gaps_total", "Sequence gaps detected", ["symbol"], registry=METRICS)
RESYNCS = Counter(
    "hub_fanout_resyncs_total", "Books (re)synced from a snapshot", ["symbol"], registry=METRICS
)
STORE_ERRORS = Counter(
    "hub_fanout_store_errors_total", "Failed snapshot-store reads", registry=METRICS
)
EPOCHS = Counter(
    "hub_fanout_epochs_total",
    "New stream epochs followed (a source restarted): the stream resyncs",
    ["symbol"],
    registry=METRICS,
)
MISMATCHES = Counter(
    "hub_fanout_checksum_mismatches_total",
    "Books whose checksum after an update was not the source's: the stream resyncs",
    ["symbol"],
    registry=METRICS,
)
SYNC_FAILURES = Counter(
    "hub_fanout_sync_failures_total",
    "Snapshots a book could not sync from",
    ["symbol"],
    registry=METRICS,
)

WEB_DIR = Path(__file__).parent / "web"
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/ui.js": ("ui.js", "text/javascript; charset=utf-8"),
    "/chart.js": ("chart.js", "text/javascript; charset=utf-8"),
    # the chart library and its licence, from npm (scripts/install.sh): 404 until fetched
    **{
        f"/vendor/{name}": (f"vendor/{name}", ctype)
        for name, ctype in (
            ("lightweight-charts.standalone.production.js", "text/javascript; charset=utf-8"),
            ("lightweight-charts.LICENSE", "text/plain; charset=utf-8"),
            ("lightweight-charts.NOTICE", "text/plain; charset=utf-8"),
        )
    },
}
SYNC_POLL = 0.05
SYNC_RETRY = 1.0
"""First wait after a failed snapshot read or a snapshot that cannot be used; doubling."""
SYNC_RETRY_CAP = 30.0
SUBSCRIBE_SLICE_S = 0.001
"""Longest stretch of subscription set-up (snapshot encoding) between two yields."""
IDLE_CHECK_S = 1.0


class FanoutNode:
    """Book sync, feeds, sessions and the WebSocket server of one node."""

    def __init__(
        self,
        cfg: FanoutConfig,
        snapshots: SnapshotStore,
        bars_from_trades: bool = False,
        dsn: str = "",
    ) -> None:
        """``dsn``: the recorder's database, for candle history (REST); "" for none."""
        runs("fanout")
        self.cfg = cfg
        self.name = cfg.group or f"fanout-{os.getpid()}"
        self.snapshots = snapshots
        self.views = Views(cfg)
        self.feeds = self.views.feeds
        self.shared = Shared(
            cfg, keys_for(cfg.keys, cfg.anonymous, cfg.max_token_lifetime_s), self.views, self.name
        )
        self.streams = self.shared.streams
        self.unsynced: dict[StreamKey, str] = {}
        """Streams that cannot sync from the snapshot store, and why (on /healthz)."""
        self.out = Sender(cfg, self.views.initial_book)
        self.clients = self.out.clients
        self.sessions: dict[Client, Session] = {}
        self.history = BarHistory(dsn) if dsn else None
        self.rest = Rest(self.shared, self.history)
        pool = self.history.pool if self.history else None
        self.replays = Replays(self.shared.keys, None, cfg.max_replays, pool)
        """/replay (fanout.replay): app sets its file ``opener`` (fanout.replay_dirs)."""
        self.ops_hook: Callable[[str], Awaitable[Response] | None] | None = None
        """Answers /metrics and /healthz for the whole port when this node is one of
        several workers (app.workers); None: this node's own answers."""
        self.bars = BarBuilder(protocol.CANDLE_INTERVALS) if bars_from_trades else None
        self._on_kind: dict[type[Event], Callable[[Any], None]] = {
            BookUpdate: self._on_update,
            Trade: self._on_trade,
            Bar: self._on_bar,
            Instrument: self._on_instrument,
            Status: self._on_status,
            Members: self._on_members,
        }
        """What each kind of source event does (the rest are not for fanout)."""
        self._sync_tasks: dict[StreamKey, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._server: Server | None = None
        self.source_error: str | None = None
        self.last_event = time.monotonic()
        """When the source last delivered an event (a silent source is not ok on /healthz)."""

    def _stream(self, venue: str, symbol: str) -> BookStream:
        stream = self.streams.get((venue, symbol))  # equals its StreamKey, cheaper to build
        if stream is None:
            stream = BookStream(venue, symbol)
            self.shared.add_stream(stream)
        return stream

    # --- source side ---------------------------------------------------------------------

    @property
    def event_kinds(self) -> tuple[type[Event], ...]:
        """The kinds of source event the node takes (what its Kafka source reads)."""
        return tuple(self._on_kind)

    def on_event(self, event: Event) -> None:
        """Take one event from the source (bus or Kafka)."""
        self.last_event = time.monotonic()
        if self._server is not None:
            self.out.wake()
        handle = self._on_kind.get(type(event))
        if handle is not None:
            handle(event)

    def _on_instrument(self, inst: Instrument) -> None:
        self.shared.set_instrument(self._stream(inst.venue, inst.symbol), inst)

    def _on_status(self, status: Status) -> None:
        stream = self._stream(status.venue, status.symbol)
        stream.venue_status = status.state
        self._broadcast_status(stream, status.state, f"venue: {status.reason}")

    def _on_members(self, members: Members) -> None:
        stream = self._stream(members.venue, members.symbol)
        changed = consolidated.on_members(stream, members)
        # with a book update (the next seq) the states come in its delta; alone, say so now
        if changed and stream.synced and (members.epoch, members.seq) == (stream.epoch, stream.seq):
            feed = self.views.get(consolidated.CHANNEL, stream.venue, stream.symbol)
            if feed is not None and feed.targets:
                feed.publish(compact(consolidated.encode_venues(stream)))

    def _on_update(self, update: BookUpdate) -> None:
        stream = self._stream(update.venue, update.symbol)
        outcome = stream.on_update(update)
        UPDATES.labels("book", outcome.value).inc()
        if outcome is Outcome.APPLIED:
            stream.advanced_at, stream.duplicates_run = self.last_event, 0
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
        elif outcome is Outcome.EPOCH:
            EPOCHS.labels(update.symbol).inc()
            log.warning(
                "new stream epoch; resyncing",
                extra={
                    "venue": update.venue,
                    "symbol": update.symbol,
                    "epoch": update.epoch,
                    "old_epoch": stream.epoch,
                    "seq": update.seq,
                },
            )
            self._broadcast_status(stream, "stale", "new epoch")
            self._start_sync(stream)
        elif outcome is Outcome.MISMATCH:
            MISMATCHES.labels(update.symbol).inc()
            log.warning(
                "book checksum is not the source's; resyncing",
                extra={"venue": update.venue, "symbol": update.symbol, "seq": update.seq},
            )
            self._broadcast_status(stream, "stale", "checksum mismatch")
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
        stream.on_trade_epoch(trade.epoch)
        if trade.seq <= stream.last_trade_seq:
            UPDATES.labels("trade", "duplicate").inc()
            return
        UPDATES.labels("trade", "applied").inc()
        stream.last_trade_seq = trade.seq
        counted = stream.ticker.add(trade.price, trade.size, trade.ts_event, trade.seq, trade.epoch)
        if stream.instrument is None:
            stream.early_trades.append(trade)  # its instrument comes on another topic
            return
        msg = compact(protocol.encode_trade(stream.instrument, trade))
        stream.recent_trades.append((trade.seq, msg))
        feed = self.views.get("trades", trade.venue, trade.symbol)
        if feed is not None and feed.targets:
            feed.publish(msg, trade.ts_recv)
        ticker = self.views.get("ticker", trade.venue, trade.symbol)
        if counted and ticker is not None and ticker.targets:
            ticker.publish(compact(encode_ticker(stream.instrument, stream.ticker)), trade.ts_recv)
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
        task = self._sync_tasks.get(stream.key)
        if task is None or task.done():
            self._sync_tasks[stream.key] = asyncio.create_task(self._sync(stream))

    async def _sync(self, stream: BookStream) -> None:
        """Poll the snapshot store until a snapshot covers the buffered updates. A read that
        fails or a snapshot that cannot be used marks the stream unsynced on /healthz and is
        retried with a growing delay; the source keeps filling the buffer meanwhile."""
        backoff = Backoff(SYNC_RETRY, SYNC_RETRY_CAP)
        while not stream.synced:
            problem = await self._try_sync(stream)
            if stream.synced:
                self.unsynced.pop(stream.key, None)
                return
            if problem is None:
                await asyncio.sleep(SYNC_POLL)
                continue
            SYNC_FAILURES.labels(stream.symbol).inc()
            if self.unsynced.get(stream.key) != problem:
                log.warning(
                    "cannot sync the book from the snapshot store; retrying",
                    extra={"venue": stream.venue, "symbol": stream.symbol, "error": problem},
                )
            self.unsynced[stream.key] = problem
            await backoff.wait()

    async def _try_sync(self, stream: BookStream) -> str | None:
        """One sync attempt; what went wrong (None: synced, or no snapshot that covers the
        buffer yet)."""
        try:
            if stream.instrument is None:
                for inst in await self.snapshots.instruments():
                    if StreamKey(inst.venue, inst.symbol) == stream.key:
                        self.shared.set_instrument(stream, inst)
            snap = await self.snapshots.get(stream.venue, stream.symbol)
        except BadSnapshot as exc:
            return str(exc)
        except Exception as exc:  # the store is down or returned garbage: keep trying
            STORE_ERRORS.inc()
            return f"snapshot store read failed: {exc!r}"
        if stream.instrument is None or snap is None or snap.seq < stream.needs_snapshot_after():
            return None
        if stream.buffer and snap.epoch != stream.buffer[0].epoch:
            return None  # the store still holds another epoch's book: wait for this one's
        problem = snapshot_problem(snap)
        if problem is not None:
            return f"bad snapshot of {stream.venue}:{stream.symbol}: {problem}"
        try:
            synced = stream.try_sync(snap)
        except (ValueError, OverflowError, TypeError, KeyError) as exc:
            return f"snapshot of {stream.venue}:{stream.symbol} does not apply: {exc}"
        if not synced:
            return None
        stream.advanced_at = time.monotonic()
        RESYNCS.labels(stream.symbol).inc()
        log.info(
            "book synced",
            extra={
                "venue": stream.venue,
                "symbol": stream.symbol,
                "epoch": stream.epoch,
                "seq": stream.seq,
            },
        )
        stream.top_changed()
        self._broadcast_status(stream, "live", "synced")
        self.views.resync(stream)
        self.out.wake()
        if self.history is not None and stream.key not in self.history.warmed:
            self._tasks.append(asyncio.create_task(self.history.warm(stream)))
        return None

    def _broadcast_status(self, stream: BookStream, state: str, reason: str) -> None:
        msg = compact(
            protocol.encode_status(
                stream.venue, stream.symbol, state, stream.seq, reason, stream.epoch
            )
        )
        for feed in self.views.status_feeds(stream):
            if feed.targets:
                feed.publish(msg)

    # --- connections ---------------------------------------------------------------------

    def _carry_out(self, client: Client, outputs: list[Output]) -> None:
        """Do what a session asked for, in order."""
        for out in outputs:
            match out:
                case bytes():
                    client.push(out)
                case Attach(feed):
                    feed.targets.add(client)
                case Detach(feed):
                    feed.targets.discard(client)
                    client.drop_feed_state(feed)
                case Close(code, reason):
                    self.out.close(client, code, reason)

    async def _authenticate(self, ws: ServerConnection, session: Session) -> list[Output]:
        """Open the session with the handshake's credential, or else with the first message
        (within ``auth_timeout_s``)."""
        credential = credential_in(ws.request) if ws.request is not None else None
        outputs = session.connect(credential, time.monotonic())
        while session.state is State.AUTH:
            try:
                data = await asyncio.wait_for(ws.recv(), session.auth_by - time.monotonic())
            except TimeoutError:
                outputs = session.tick(time.monotonic())
            else:
                outputs = session.receive(data, time.monotonic(), time.time_ns())
        return outputs

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.request is not None and urlsplit(ws.request.path).path == "/replay":
            return await self.replays.serve(ws)
        deflate = bool(ws.protocol.extensions)
        session = Session(self.shared, time.monotonic(), deflate)
        try:
            outputs = await self._authenticate(ws, session)
            if session.state is not State.OPEN:
                for out in outputs:
                    if isinstance(out, Close):
                        await ws.close(out.code, out.reason)
                return
        except ConnectionClosed:
            return
        assert session.grant is not None
        client = Client(ws, session.grant, deflate, session.feeds)
        self.clients.add(client)
        self.sessions[client] = session
        self.out.private.add(client)
        CONNECTIONS.set(len(self.clients))
        self._carry_out(client, outputs)
        self.out.wake()
        try:
            async for data in ws:
                if client.closing:
                    continue
                self.out.wake()
                outputs = session.receive(data, time.monotonic(), time.time_ns())
                if outputs:
                    self.out.isolate(client)
                    self._carry_out(client, outputs)
                if session.setting_up:
                    await self._set_up(client, session)
        except ConnectionClosed:
            pass
        finally:
            self.out.isolate(client)
            self._carry_out(client, session.ended())
            self.out.private.discard(client)
            self.clients.discard(client)
            del self.sessions[client]
            CONNECTIONS.set(len(self.clients))

    async def _set_up(self, client: Client, session: Session) -> None:
        """Attach the subscriptions of a subscribe and send their initial state (snapshots)
        one at a time, yielding to the event loop after each SUBSCRIBE_SLICE_S of work: a
        large request never holds up anyone else's messages."""
        client.subscribing = True
        try:
            started = time.perf_counter()
            while session.setting_up and not client.closing:
                if time.perf_counter() - started > SUBSCRIBE_SLICE_S:
                    self.out.wake()
                    await asyncio.sleep(0)
                    started = time.perf_counter()
                    continue
                self._carry_out(client, session.set_up())
        finally:
            client.subscribing = False
            session.cancel_set_up()
            self.out.wake()

    async def _watch_idle(self) -> None:
        """Once a second: close the connections whose session is past a deadline."""
        while True:
            await asyncio.sleep(IDLE_CHECK_S)
            now = time.monotonic()
            for client, session in list(self.sessions.items()):
                if not client.closing:
                    self._carry_out(client, session.tick(now))

    def stream_list(self) -> list[dict[str, Any]]:
        return self.shared.stream_list()

    def stuck(self, now: float) -> list[dict[str, Any]]:
        """Synced streams that stopped moving: no new seq for ``fanout.stale_after_s`` while
        their venue is live, or ``fanout.max_duplicates`` duplicates in a row."""
        out = []
        limit = self.cfg.stale_after_s
        for key, stream in sorted(self.streams.items()):
            if not stream.synced:
                continue
            if stream.duplicates_run >= self.cfg.max_duplicates:
                why = f"{stream.duplicates_run} duplicate updates since seq {stream.seq}"
            elif limit and stream.venue_status not in QUIET and now - stream.advanced_at > limit:
                why = f"seq {stream.seq} for {now - stream.advanced_at:.0f} s"
            else:
                continue
            out.append({"venue": key[0], "symbol": key[1], "reason": why})
        return out

    def health(self) -> dict[str, Any]:
        """Not ok when the source failed or went silent, or a book cannot sync or stopped
        moving (each named, with why)."""
        unsynced = [
            {"venue": venue, "symbol": symbol, "reason": why}
            for (venue, symbol), why in sorted(self.unsynced.items())
        ]
        now = time.monotonic()
        silent = now - self.last_event
        limit = self.cfg.stale_after_s
        talking = any(s.synced and s.venue_status not in QUIET for s in self.streams.values())
        source_silent = bool(limit and talking and silent > limit)
        stuck = self.stuck(now)
        return {
            "ok": self.source_error is None and not unsynced and not stuck and not source_silent,
            "node": self.name,
            "source_error": self.source_error,
            "source_silent_s": round(silent, 1) if source_silent else None,
            "unsynced": unsynced,
            "stuck": stuck,
            "views": self.views.views,
            "history_bytes": self.views.history_bytes(),
            "connections": len(self.clients),
            "groups": len(self.out.groups),
            "streams": self.stream_list(),
            "replays": self.replays.health(),
        }

    def _process_request(
        self, conn: ServerConnection, request: Request
    ) -> Awaitable[Response] | Response | None:
        parts = urlsplit(request.path)
        if self.rest.handles(parts.path):
            return self.rest.answer(conn, request)
        if parts.path in ("/ws", "/replay"):
            # permessage-deflate only for clients that ask in the URL: browsers offer it on
            # every connection, and compressing costs the node CPU per client.
            if parse_qs(parts.query).get("deflate") != ["1"] or not self.cfg.deflate:
                conn.protocol.available_extensions = []
            return None
        port_wide = self.ops_hook(parts.path) if self.ops_hook is not None else None
        if port_wide is not None:
            return port_wide
        ops = ops_response(parts.path, self.health)
        if ops is not None:
            return ops
        if parts.path in STATIC and (WEB_DIR / STATIC[parts.path][0]).is_file():
            name, ctype = STATIC[parts.path]
            return response(200, (WEB_DIR / name).read_bytes(), ctype)
        return response(404, b"not found\n", "text/plain")

    async def start(self, reuse_port: bool = False) -> Server:
        """Listen on cfg.host:cfg.port; ``reuse_port``: join the port's SO_REUSEPORT group
        (the workers of ``hub fanout --workers``)."""
        self._server = await serve(
            self._handle,
            self.cfg.host,
            self.cfg.port,
            reuse_port=reuse_port,
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
        self._tasks.append(asyncio.create_task(self._watch_idle()))
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
        if self.history is not None:
            await self.history.close()


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
