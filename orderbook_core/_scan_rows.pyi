"""Types of the compiled frame scanners of venues whose books are rows of JSON numbers
(orderbook_core._scan_rows)."""

from typing import Any

def cryptocom_book(text: object, decimals: dict[str, Any]) -> tuple[Any, ...] | None: ...
def huobi_depth(
    text: object, units: dict[str, Any], order_key: str, rounding: bool
) -> tuple[Any, ...] | None: ...
