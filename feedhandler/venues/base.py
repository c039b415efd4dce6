"""What every venue parser offers the runner and the replay (sans-I/O)."""

from __future__ import annotations

from typing import Any, Protocol

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


def decimals_unit(decimals: int) -> Unit:
    """The unit 10**-decimals ("0.01" for 2)."""
    return Unit("0." + "0" * (decimals - 1) + "1" if decimals else "1")
