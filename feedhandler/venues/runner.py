"""The thin asyncio runner around a sans-I/O venue parser.

Connects, sends the parser's subscribe messages, hands every frame to the
parser and publishes what it returns. Venues whose snapshots come over REST
(Binance) get them fetched while frames keep arriving, so the sync engine
buffers diffs exactly as the venue documents; venues that resend a snapshot
on resubscribe (Kraken, Coinbase) get the parser's ``recover`` messages. A
symbol that goes stale (gap, checksum, crossed book) is brought back that
way while the others keep flowing. When the connection drops (or never
opens) every book of the connection is marked stale and the runner
reconnects with exponential backoff and full jitter. Venues that end
connections after a fixed lifetime (Binance: 24 h) get a planned reconnect
before it. Pings and ping timeouts are the websockets library's (a silent
peer is a dead peer); venues that also want application-level keep-alives
(Bybit's ``{"op":"ping"}``) get the parser's ``heartbeat`` messages, and venues
that ask for an answer to a frame (Deribit's ``test_request``) get the parser's
``answers`` sent right after it; venues whose connections need a fresh token
(KuCoin's ``bullet-public``) get one POSTed for before every connect. With a
``CaptureWriter`` every frame sent and received and every REST answer is recorded in
the capture format.

No frame can end the feed: the parser refuses malformed ones (counted in
``hub_feed_malformed_frames_total``, their books resynced), and an exception
it raises anyway is logged with the frame, counted as reason ``internal``
and costs only a resync of the books that frame touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from bus.local import Publisher
from bus.output import STOP_DRAIN_S
from feedhandler.files.capture import CaptureWriter
from feedhandler.frames import MalformedFrame
from feedhandler.venues.base import ParserBase
from feedhandler.venues.coalesce import Coalescer
from hub.backoff import Backoff
from hub.events import Event

log = logging.getLogger("hub.feed")
STALE_CHECK_EVERY = 16
"""Frames between checks for stale symbols."""
STALE_CHECK_SECONDS = 1.0
"""Checks also run this often when frames are rare or the venue is silent."""


class LiveRunner:
    """One WebSocket connection to a venue, kept alive, feeding one parser."""

    def __init__(
        self,
        parser: ParserBase,
        url: str,
        symbols: list[str],
        publisher: Publisher,
        rest: str = "",
        backoff: Backoff | None = None,
        ping_interval: float = 20.0,
        seed: int | None = None,
        lifetime: float = 0.0,
        capture: CaptureWriter | None = None,
        retry_after: float = 5.0,
    ) -> None:
        self.parser = parser
        self.venue = parser.venue
        self.url = url
        self.symbols = symbols
        self.publisher = publisher
        self.rest = rest
        """Base URL of the venue's REST API (for venues whose snapshots come over HTTP)."""
        self.backoff = backoff or Backoff(0.2, 10.0, "full", random.Random(seed))
        self.ping_interval = ping_interval
        self.lifetime = lifetime
        """Seconds after which a connection is replaced (0: never); below the venue's limit."""
        self.capture = capture
        self.retry_after = retry_after
        """Seconds before a resubscribe for a still-stale symbol is sent again."""
        self.connected = False
        self.connections = 0
        self.disconnects = 0
        self.planned_reconnects = 0
        self.frames = 0
        self.snapshot_fetches = 0
        self.rest_failures = 0
        self.token_fetches = 0
        """Connect tokens fetched (venues whose connections need one: KuCoin)."""
        self.recoveries = 0
        self.parser_errors = 0
        """Inputs the parser raised on (a bug: the frame was dropped, its books resynced)."""
        self._fetching: set[str] = set()
        self._asked: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._last_check = 0.0
        self.stale_since: dict[str, float] = {}
        """Monotonic time each stale symbol was first seen stale."""
        self._out = Coalescer(publisher.publish)

    def stale_symbols(self) -> list[str]:
        books = self.parser.books
        return [s for s in self.symbols if s not in books or not books[s].live]

    def stale_for(self, now: float) -> dict[str, float]:
        """Seconds each stale symbol has been stale, as the periodic checks saw it (from the
        first check that found it stale; a reconnect marks every symbol stale)."""
        stale = self.stale_symbols()
        for s in list(self.stale_since):
            if s not in stale:
                del self.stale_since[s]
        return {s: now - self.stale_since.setdefault(s, now) for s in stale}

    async def _publish(self, events: list[Event]) -> None:
        """In parse order, without waiting for the publish in flight (``Coalescer``)."""
        if events:
            await self._out.put(events)

    async def _request(self, method: str, url: str) -> str | None:
        """The body of a REST answer, or None when the request failed (logged and counted
        in ``rest_failures``; the caller's retry brings it again)."""
        assert self._http is not None
        try:
            headers = self.parser.rest_headers(url)
            async with self._http.request(method, url, headers=headers) as response:
                body = await response.text(errors="replace")
                if response.status == 200:
                    return body
                error = f"HTTP {response.status}: {body[:200]}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.rest_failures += 1
        log.warning(
            "REST request failed",
            extra={"venue": self.venue, "method": method, "url": url, "error": error},
        )
        return None

    async def fetch(self, url: str) -> None:
        """GET a REST resource and hand the answer to the parser; failures are logged and
        retried by the next stale check."""
        try:
            body = await self._request("GET", url)
            if body is None:
                return
            ts = time.time_ns()
            if self.capture is not None:
                self.capture.http(f"{self.venue}.http", url, body, ts)
            self.snapshot_fetches += 1
            try:
                events = self.parser.on_http(url, body, ts)
            except Exception as exc:  # a parser bug must not end the feed
                self.parser_errors += 1
                events = self.parser.internal_error(body, exc, ts)
            await self._publish(events)
        finally:
            self._fetching.discard(url)

    async def connect_url(self) -> str | None:
        """Where to connect now: the configured URL, or for a venue that hands out
        connect tokens (KuCoin) the address in the answer to a fresh token request
        (None when that failed: logged, counted in ``rest_failures``, retried after the
        backoff). A configured URL that already carries a ``token=`` is used as given."""
        token_url = self.parser.token_url(self.rest) if self.rest else ""
        if not token_url or "token=" in self.url:
            return self.url
        body = await self._request("POST", token_url)
        if body is None:
            return None
        try:
            url = self.parser.connect_url(body)
        except MalformedFrame as exc:
            self.rest_failures += 1
            log.warning(
                "connect token answer unusable",
                extra={"venue": self.venue, "url": token_url, "error": str(exc)},
            )
            return None
        self.token_fetches += 1
        return url

    def _spawn_fetch(self, url: str) -> None:
        if url in self._fetching:
            return
        self._fetching.add(url)
        task = asyncio.get_running_loop().create_task(self.fetch(url))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, ws: ClientConnection, messages: list[str]) -> None:
        for message in messages:
            if self.capture is not None:
                self.capture.send(
                    f"{self.venue}.ws.{self.connections}", self.url, self.parser.redact(message)
                )
            await ws.send(message)

    async def _recover(self, ws: ClientConnection) -> None:
        """Bring stale symbols back: REST snapshots where the venue has them, otherwise a
        resubscribe (at most once per ``retry_after`` per symbol)."""
        self._last_check = time.monotonic()
        stale = list(self.stale_for(self._last_check))
        if not stale:
            return
        if self.rest:
            for url in self.parser.snapshot_urls(self.rest, stale):
                self._spawn_fetch(url)
        now = time.monotonic()
        due = [s for s in stale if now - self._asked.get(s, 0.0) >= self.retry_after]
        messages = self.parser.recover(due) if due else []
        if messages:
            self.recoveries += 1
            for s in due:
                self._asked[s] = now
            log.info("resubscribing stale symbols", extra={"venue": self.venue, "symbols": due})
            await self._send(ws, messages)

    async def run(self, max_connections: int | None = None) -> None:
        """Run until cancelled, or after ``max_connections`` connections have ended."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
            self._http = http
            if self.rest:
                for url in self.parser.instrument_urls(self.rest):
                    await self.fetch(url)
            try:
                await self._run(max_connections)
                await self._out.flush()
            finally:
                for task in list(self._tasks):
                    task.cancel()
                await self._drain()

    async def _drain(self) -> None:
        """On a stop, let what was parsed be published (up to ``STOP_DRAIN_S``, as the feed
        output lets a publish in flight land), then stop publishing."""
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(STOP_DRAIN_S):
                await self._out.flush()
        await self._out.close()

    async def _connection(self, ws: ClientConnection) -> bool:
        """Serve one open connection; True if it ended by the planned lifetime."""
        conn = f"{self.venue}.ws.{self.connections}"
        if self.capture is not None:
            self.capture.connect(conn, self.url)
        log.info(
            "connected",
            extra={"venue": self.venue, "url": self.url, "connection": self.connections},
        )
        now = time.monotonic()
        self._asked = dict.fromkeys(self.symbols, now)  # the subscribe asks for snapshots
        await self._send(ws, self.parser.subscribe(self.symbols))
        await self._recover(ws)
        checks = asyncio.get_running_loop().create_task(self._stale_checks(ws))
        try:
            return await self._frames(ws, conn, now)
        finally:
            checks.cancel()

    async def _stale_checks(self, ws: ClientConnection) -> None:
        """Bring stale symbols back even while the venue sends nothing; send the parser's
        heartbeats when the venue asks for them."""
        beat = time.monotonic()
        while True:
            await asyncio.sleep(STALE_CHECK_SECONDS)
            try:
                if self.parser.heartbeat_s and time.monotonic() - beat >= self.parser.heartbeat_s:
                    beat = time.monotonic()
                    await self._send(ws, self.parser.heartbeat())
                if time.monotonic() - self._last_check >= STALE_CHECK_SECONDS:
                    await self._recover(ws)
            except ConnectionClosed:
                return  # the frame loop sees it too and reconnects

    async def _frames(self, ws: ClientConnection, conn: str, now: float) -> bool:
        """Hand every frame to the parser until the connection ends (True: by lifetime)."""
        planned = False
        deadline = now + self.lifetime if self.lifetime > 0 else float("inf")
        async for frame in ws:
            self.frames += 1
            ts = time.time_ns()
            if self.capture is not None:
                text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                self.capture.recv(conn, text, ts)
            await self._publish(self._parse(frame, ts))
            answers = self.parser.answers()
            if answers:
                await self._send(ws, answers)
            if (
                self.frames % STALE_CHECK_EVERY == 0
                or time.monotonic() - self._last_check > STALE_CHECK_SECONDS
            ):
                await self._recover(ws)
                if time.monotonic() >= deadline:
                    planned = True
                    break
        return planned

    def _parse(self, frame: str | bytes, ts: int) -> list[Event]:
        """The parser's events for one frame. Parsers refuse bad frames themselves; anything
        they raise anyway is a bug, which costs that frame and a resync of the books it
        touched, never the connection or the feed."""
        try:
            return self.parser.on_frame(frame, ts)
        except Exception as exc:
            self.parser_errors += 1
            return self.parser.internal_error(frame, exc, ts)

    async def _run(self, max_connections: int | None) -> None:
        while max_connections is None or self.connections < max_connections:
            planned = False
            url = await self.connect_url()
            if url is None:
                await self.backoff.wait()
                continue
            try:
                async with connect(
                    url,
                    open_timeout=10,
                    ping_interval=self.ping_interval,
                    ping_timeout=self.ping_interval,
                    max_size=None,
                ) as ws:
                    self.connections += 1
                    self.connected = True
                    self.backoff.reset()
                    try:
                        planned = await self._connection(ws)
                    finally:
                        self.connected = False
                if planned:
                    self.planned_reconnects += 1
                    log.info(
                        "planned reconnect: connection lifetime reached",
                        extra={"venue": self.venue, "lifetime_s": self.lifetime},
                    )
                else:
                    self.disconnects += 1
                    log.warning("venue closed the connection", extra={"venue": self.venue})
            except (OSError, ConnectionClosed, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                self.disconnects += 1
                log.warning(
                    "connection lost",
                    extra={"venue": self.venue, "error": f"{type(exc).__name__}: {exc}"},
                )
            ts = time.time_ns()
            reason = "reconnect" if planned else "disconnected"
            events = [e for sync in self.parser.books.values() for e in sync.invalidate(reason, ts)]
            await self._publish(events)
            if max_connections is not None and self.connections >= max_connections:
                return
            if not planned:
                await self.backoff.wait()
