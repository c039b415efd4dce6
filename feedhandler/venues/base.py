"""What every venue parser shares: the runner's interface, bad-input accounting, JSON.

A parser is sans-I/O: frames and REST bodies in, normalized events out. It
also says what to send after connecting (``subscribe``), what brings stale
symbols back over the WebSocket (``recover``: venues that resend a snapshot
on resubscribe) and which REST resources do (``snapshot_urls``: venues whose
snapshots come over HTTP).
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from feedhandler.sync import BookSync
from hub.decimals import Unit
from hub.events import Event

log = logging.getLogger("hub.feed")
ERRORS_KEPT = 100
"""Recent bad-input descriptions a parser keeps (all are counted)."""
LOGGED_EVERY = 1000
"""After the first ``ERRORS_LOGGED`` bad inputs, only every this-many-th is logged."""
ERRORS_LOGGED = 20


class ParserBase:
    """State every venue parser keeps; subclasses implement ``on_frame`` and ``on_http``."""

    venue = ""

    def __init__(self) -> None:
        self.books: dict[str, BookSync] = {}
        self.trades: dict[str, int] = {}
        self.malformed = 0
        self.errors: deque[str] = deque(maxlen=ERRORS_KEPT)
        self._loads = json_loads()

    def on_frame(self, text: str, ts_recv: int) -> list[Event]:
        """One WebSocket frame in, normalized events out; bad frames are counted, never raised."""
        raise NotImplementedError

    def on_http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        """One REST answer (instrument data, snapshots) in, events out."""
        return []

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        """Tick and lot units of a symbol, for decimal output."""
        raise NotImplementedError

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        """Venue-specific checks to add to a replay summary."""
        return {}

    def instrument_urls(self, rest: str) -> list[str]:
        """REST resources with instrument data (precisions), fetched before connecting."""
        return []

    def subscribe(self, symbols: list[str]) -> list[str]:
        """Messages to send right after connecting."""
        return []

    def recover(self, symbols: list[str]) -> list[str]:
        """Messages that make the venue resend snapshots of these stale symbols."""
        return []

    def snapshot_urls(self, rest: str, symbols: list[str]) -> list[str]:
        """REST URLs whose answers bring these stale symbols back."""
        return []

    def rest_headers(self, url: str) -> dict[str, str]:
        """Headers for a REST request (a venue signs them when it needs to)."""
        return {}

    def redact(self, message: str) -> str:
        """A sent message as it may be logged or captured (credentials blanked)."""
        return message

    def _bad(self, text: str, why: str, symbol: str = "") -> list[Event]:
        """Count and log bad input (with the offending text, truncated); publish nothing."""
        self.malformed += 1
        self.errors.append(f"{why}: {text[:120]}")
        if self.malformed <= ERRORS_LOGGED or self.malformed % LOGGED_EVERY == 0:
            log.warning(
                "bad input from venue",
                extra={
                    "venue": self.venue,
                    "symbol": symbol,
                    "why": why,
                    "text": text[:200],
                    "count": self.malformed,
                },
            )
        return []

    def _trade_seq(self, symbol: str) -> int:
        seq = self.trades[symbol] = self.trades.get(symbol, 0) + 1
        return seq


def json_loads() -> Callable[[str | bytes], Any]:
    """orjson, or the standard library's json with HUB_FEED_JSON=stdlib (the benchmark's
    baseline). Both raise json.JSONDecodeError subclasses on bad input."""
    if os.environ.get("HUB_FEED_JSON") == "stdlib":
        return json.loads
    return orjson.loads


def decimals_unit(decimals: int) -> Unit:
    """The unit 10**-decimals ("0.01" for 2)."""
    return Unit("0." + "0" * (decimals - 1) + "1" if decimals else "1")
