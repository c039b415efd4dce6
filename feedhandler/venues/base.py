"""What every venue parser offers the runner and the replay (sans-I/O)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from feedhandler.sync import BookSync
from hub.decimals import Unit
from hub.events import Event


class VenueParser(Protocol):
    books: dict[str, BookSync]
    malformed: int
    errors: list[str]

    def on_frame(self, text: str, ts_recv: int) -> list[Event]:
        """One WebSocket frame in, normalized events out; bad frames are counted, never raised."""
        ...

    def on_http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        """One REST answer (instrument data, snapshots) in, events out."""
        ...

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        """Tick and lot units of a symbol, for decimal output."""
        ...

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        """Venue-specific checks to add to a replay summary."""
        ...


def json_loads() -> Callable[[str | bytes], Any]:
    """orjson, or the standard library's json with HUB_FEED_JSON=stdlib (the benchmark's
    baseline). Both raise json.JSONDecodeError subclasses on bad input."""
    if os.environ.get("HUB_FEED_JSON") == "stdlib":
        return json.loads
    return orjson.loads


def decimals_unit(decimals: int) -> Unit:
    """The unit 10**-decimals ("0.01" for 2)."""
    return Unit("0." + "0" * (decimals - 1) + "1" if decimals else "1")
