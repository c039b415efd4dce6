"""The hub's book core: L2 books, the matching engine and the venue-text readers, no I/O.

The compiled implementation (``orderbook_core._book``) is used by default.
Set ``ORDERBOOK_CORE=python`` to select the pure-Python twin
(``orderbook_core._pybook``), which has the same API and results;
``ORDERBOOK_CORE=cython`` insists on the compiled one and fails loudly if it
is not built.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from orderbook_core.errors import (
    BookError,
    DuplicateOrderId,
    InvalidOrderId,
    InvalidPrice,
    InvalidSize,
    OrderNotFound,
    OrdersCrossed,
)
from orderbook_core.types import F_LAST, F_SNAPSHOT, Action, Side

_choice = os.environ.get("ORDERBOOK_CORE", "auto")
if _choice not in ("auto", "cython", "python"):
    raise ImportError(f"ORDERBOOK_CORE must be auto, cython or python, got {_choice!r}")

IMPLEMENTATION: str
"""Which implementation the names below are: "cython" or "python"."""
_TWINS = {
    ("_book", "_pybook"): ("L2Book",),
    ("_engine", "_pyengine"): ("MatchingEngine", "untracked"),
    ("_itch", "_pyitch"): ("ItchReplay",),
    ("_l3", "_pyl3"): ("L3Book",),
    ("_scan", "_pyscan"): ("binance_frame", "coinbase_l2", "gateio_update", "kucoin_frame"),
    ("_scan_numbers", "_pyscan"): (
        "bitfinex_book",
        "bitmex_book",
        "deribit_frame",
        "kraken_futures_book",
    ),
    ("_scan_rows", "_pyscan"): ("cryptocom_book", "huobi_depth"),
    ("_text", "_pytext"): (
        "UnitScale",
        "bad_level",
        "book_diff",
        "dict_levels",
        "int_trades",
        "iso_to_ns",
        "json_units",
        "list_levels",
    ),
}
"""Each compiled module, its pure-Python twin, and the names the package takes from it
(the type checker reads the compiled ones, imported below)."""


def _take(twin: bool) -> None:
    """Bind the package's names to the compiled modules' (or the twins')."""
    for modules, names in _TWINS.items():
        module = importlib.import_module(f"orderbook_core.{modules[twin]}")
        globals().update((name, getattr(module, name)) for name in names)


if TYPE_CHECKING:
    from orderbook_core._book import L2Book
    from orderbook_core._engine import MatchingEngine, untracked
    from orderbook_core._itch import ItchReplay
    from orderbook_core._l3 import L3Book
    from orderbook_core._scan import binance_frame, coinbase_l2, gateio_update, kucoin_frame
    from orderbook_core._scan_numbers import (
        bitfinex_book,
        bitmex_book,
        deribit_frame,
        kraken_futures_book,
    )
    from orderbook_core._scan_rows import cryptocom_book, huobi_depth
    from orderbook_core._text import (
        UnitScale,
        bad_level,
        book_diff,
        dict_levels,
        int_trades,
        iso_to_ns,
        json_units,
        list_levels,
    )
elif _choice == "python":
    _take(twin=True)
    IMPLEMENTATION = "python"
else:
    try:
        _take(twin=False)
        IMPLEMENTATION = "cython"
    except ImportError:
        if _choice == "cython":
            raise
        _take(twin=True)
        IMPLEMENTATION = "python"

__all__ = [
    "F_LAST",
    "F_SNAPSHOT",
    "IMPLEMENTATION",
    "Action",
    "BookError",
    "DuplicateOrderId",
    "InvalidOrderId",
    "InvalidPrice",
    "InvalidSize",
    "ItchReplay",
    "L2Book",
    "L3Book",
    "MatchingEngine",
    "OrderNotFound",
    "OrdersCrossed",
    "Side",
    "UnitScale",
    "bad_level",
    "binance_frame",
    "bitfinex_book",
    "bitmex_book",
    "book_diff",
    "coinbase_l2",
    "cryptocom_book",
    "deribit_frame",
    "dict_levels",
    "gateio_update",
    "huobi_depth",
    "int_trades",
    "iso_to_ns",
    "json_units",
    "kraken_futures_book",
    "kucoin_frame",
    "list_levels",
    "untracked",
]
