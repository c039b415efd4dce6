"""Types of the compiled frame scanners (orderbook_core._scan)."""

from typing import Any

def binance_frame(text: object, units: dict[str, Any]) -> tuple[Any, ...] | None: ...
