"""Pure-Python twin of orderbook_core._scan: it declines every frame.

A scan is only ever a faster way to the answer the venue parser's ordinary path
gives (the compiled scanner declines whatever it does not read exactly as that
path would), so the twin's answer, always None, sends every frame down that
path: the same events, books and refusals, which is what the differential tests
compare the compiled scanner against.
"""

from __future__ import annotations

from typing import Any


def binance_frame(text: object, units: dict[str, Any]) -> tuple[Any, ...] | None:
    """See orderbook_core._scan.binance_frame; the twin always declines."""
    return None


def kraken_futures_book(text: object, decimals: dict[str, Any]) -> tuple[Any, ...] | None:
    """See orderbook_core._scan.kraken_futures_book; the twin always declines."""
    return None


def bitmex_book(text: object, decimals: dict[str, Any]) -> tuple[Any, ...] | None:
    """See orderbook_core._scan.bitmex_book; the twin always declines."""
    return None


def bitfinex_book(text: object) -> tuple[Any, ...] | None:
    """See orderbook_core._scan.bitfinex_book; the twin always declines."""
    return None


def gateio_update(text: object, units: dict[str, Any]) -> tuple[Any, ...] | None:
    """See orderbook_core._scan.gateio_update; the twin always declines."""
    return None


def kucoin_frame(text: object, units: dict[str, Any]) -> tuple[Any, ...] | None:
    """See orderbook_core._scan.kucoin_frame; the twin always declines."""
    return None


def deribit_frame(text: object, decimals: dict[str, Any]) -> tuple[Any, ...] | None:
    """See orderbook_core._scan_numbers.deribit_frame; the twin always declines."""
    return None


def coinbase_l2(
    text: object, units: dict[str, Any], default: tuple[Any, Any], sides: dict[str, int]
) -> tuple[Any, ...] | None:
    """See orderbook_core._scan.coinbase_l2; the twin always declines."""
    return None


def cryptocom_book(text: object, decimals: dict[str, Any]) -> tuple[Any, ...] | None:
    """See orderbook_core._scan.cryptocom_book; the twin always declines."""
    return None


def huobi_depth(
    text: object, units: dict[str, Any], order_key: str, rounding: bool
) -> tuple[Any, ...] | None:
    """See orderbook_core._scan.huobi_depth; the twin always declines."""
    return None
