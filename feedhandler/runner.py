"""The thin asyncio runner around a sans-I/O venue parser.

Connects, sends the venue's subscribe messages, hands every frame to the
parser and publishes what it returns. Venues whose snapshots come over REST
(Binance) get them fetched while frames keep arriving, so the sync engine
buffers diffs exactly as the venue documents; a symbol that goes stale (gap,
checksum, crossed book) gets a fresh snapshot fetched while the others keep
flowing. When the connection drops (or never opens) every book of the
connection is marked stale and the runner reconnects with exponential
backoff and full jitter. Pings and ping timeouts are the websockets
library's (a silent peer is a dead peer).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from feedhandler.venues.base import VenueParser
from hub.bus import Publisher

log = logging.getLogger("hub.feed")
STALE_CHECK_EVERY = 16
"""Frames between checks for stale symbols that need a REST snapshot."""


@dataclass
class Backoff:
    """Exponential backoff with full jitter: a random delay in [0, min(cap, base * 2**n)]."""

    base: float = 0.2
    cap: float = 10.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.cap, self.base * 2**attempt))


class LiveRunner:
    """One WebSocket connection to a venue, kept alive, feeding one parser."""

    def __init__(
        self,
        venue: str,
        url: str,
        parser: VenueParser,
        subscribe: Callable[[], list[str]],
        publisher: Publisher,
        backoff: Backoff | None = None,
        ping_interval: float = 20.0,
        seed: int | None = None,
        snapshot_urls: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.venue = venue
        self.url = url
        self.parser = parser
        self.subscribe = subscribe
        self.publisher = publisher
        self.backoff = backoff or Backoff()
        self.ping_interval = ping_interval
        self.snapshot_urls = snapshot_urls
        """For venues whose snapshots come over REST: the URLs that bring symbols back."""
        self.connections = 0
        self.disconnects = 0
        self.frames = 0
        self.snapshot_fetches = 0
        self._rng = random.Random(seed)
        self._fetching: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    def stale_symbols(self, symbols: list[str]) -> list[str]:
        return [s for s in symbols if s not in self.parser.books or not self.parser.books[s].live]

    async def fetch(self, url: str) -> None:
        """GET a REST resource and hand the answer to the parser; failures are logged and
        retried by the next stale check."""
        assert self._http is not None
        try:
            async with self._http.get(url) as response:
                body = await response.text()
                if response.status != 200:
                    log.warning(
                        "REST request failed",
                        extra={
                            "venue": self.venue,
                            "url": url,
                            "status": response.status,
                            "body": body[:200],
                        },
                    )
                    return
            self.snapshot_fetches += 1
            events = self.parser.on_http(url, body, time.time_ns())
            if events:
                await self.publisher.publish(events)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "REST request failed",
                extra={"venue": self.venue, "url": url, "error": f"{type(exc).__name__}: {exc}"},
            )
        finally:
            self._fetching.discard(url)

    def _resync(self, symbols: list[str]) -> None:
        """Start REST fetches for stale symbols, one in flight per URL."""
        if self.snapshot_urls is None:
            return
        stale = self.stale_symbols(symbols)
        if not stale:
            return
        for url in self.snapshot_urls(stale):
            if url not in self._fetching:
                self._fetching.add(url)
                task = asyncio.get_running_loop().create_task(self.fetch(url))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def run(
        self, symbols: list[str] | None = None, max_connections: int | None = None
    ) -> None:
        """Run until cancelled, or after ``max_connections`` connections have ended."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
            self._http = http
            try:
                await self._run(symbols or [], max_connections)
            finally:
                for task in list(self._tasks):
                    task.cancel()

    async def _run(self, symbols: list[str], max_connections: int | None) -> None:
        attempt = 0
        while max_connections is None or self.connections < max_connections:
            try:
                async with connect(
                    self.url,
                    open_timeout=10,
                    ping_interval=self.ping_interval,
                    ping_timeout=self.ping_interval,
                    max_size=None,
                ) as ws:
                    self.connections += 1
                    attempt = 0
                    log.info(
                        "connected",
                        extra={
                            "venue": self.venue,
                            "url": self.url,
                            "connection": self.connections,
                        },
                    )
                    for message in self.subscribe():
                        await ws.send(message)
                    self._resync(symbols)
                    async for frame in ws:
                        self.frames += 1
                        text = frame if isinstance(frame, str) else frame.decode()
                        events = self.parser.on_frame(text, time.time_ns())
                        if events:
                            await self.publisher.publish(events)
                        if self.frames % STALE_CHECK_EVERY == 0:
                            self._resync(symbols)
                    self.disconnects += 1
                    log.warning(
                        "venue closed the connection",
                        extra={"venue": self.venue, "code": ws.close_code},
                    )
            except (OSError, ConnectionClosed, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                self.disconnects += 1
                log.warning(
                    "connection lost",
                    extra={"venue": self.venue, "error": f"{type(exc).__name__}: {exc}"},
                )
            for sync in self.parser.books.values():
                sync.invalidate()
            if max_connections is not None and self.connections >= max_connections:
                return
            delay = self.backoff.delay(attempt, self._rng)
            attempt += 1
            await asyncio.sleep(delay)
