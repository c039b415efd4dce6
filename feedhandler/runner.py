"""The thin asyncio runner around a sans-I/O venue parser.

Connects, sends the venue's subscribe messages, hands every frame to the
parser and publishes what it returns. When the connection drops (or never
opens) every book of that connection is marked stale, and the runner
reconnects with exponential backoff and full jitter; the venue's fresh
snapshot after resubscribing brings each book back. Pings and ping
timeouts are the websockets library's (a silent peer is a dead peer).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from feedhandler.venues.base import VenueParser
from hub.bus import Publisher

log = logging.getLogger("hub.feed")


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
    ) -> None:
        self.venue = venue
        self.url = url
        self.parser = parser
        self.subscribe = subscribe
        self.publisher = publisher
        self.backoff = backoff or Backoff()
        self.ping_interval = ping_interval
        self.connections = 0
        self.disconnects = 0
        self.frames = 0
        self._rng = random.Random(seed)

    async def run(self, max_connections: int | None = None) -> None:
        """Run until cancelled (or after ``max_connections`` connections have ended)."""
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
                    async for frame in ws:
                        self.frames += 1
                        text = frame if isinstance(frame, str) else frame.decode()
                        events = self.parser.on_frame(text, time.time_ns())
                        if events:
                            await self.publisher.publish(events)
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
