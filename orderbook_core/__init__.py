"""The hub's book core: L2 books, the matching engine and the venue-text readers, no I/O.

The compiled implementation (``orderbook_core._book``) is used by default.
Set ``ORDERBOOK_CORE=python`` to select the pure-Python twin
(``orderbook_core._pybook``), which has the same API and results;
``ORDERBOOK_CORE=cython`` insists on the compiled one and fails loudly if it
is not built.
"""

from __future__ import annotations

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
if TYPE_CHECKING:
    from orderbook_core._book import L2Book
    from orderbook_core._engine import MatchingEngine
    from orderbook_core._itch import ItchReplay
    from orderbook_core._l3 import L3Book
    from orderbook_core._scan import (
        binance_frame,
        bitfinex_book,
        bitmex_book,
        coinbase_l2,
        cryptocom_book,
        deribit_ticker,
        kraken_futures_book,
        kucoin_level2,
    )
    from orderbook_core._text import (
        UnitScale,
        bad_level,
        book_diff,
        dict_levels,
        iso_to_ns,
        json_units,
        list_levels,
    )
elif _choice == "python":
    from orderbook_core._pybook import L2Book
    from orderbook_core._pyengine import MatchingEngine
    from orderbook_core._pyitch import ItchReplay
    from orderbook_core._pyl3 import L3Book
    from orderbook_core._pyscan import (
        binance_frame,
        bitfinex_book,
        bitmex_book,
        coinbase_l2,
        cryptocom_book,
        deribit_ticker,
        kraken_futures_book,
        kucoin_level2,
    )
    from orderbook_core._pytext import (
        UnitScale,
        bad_level,
        book_diff,
        dict_levels,
        iso_to_ns,
        json_units,
        list_levels,
    )

    IMPLEMENTATION = "python"
else:
    try:
        from orderbook_core._book import L2Book
        from orderbook_core._engine import MatchingEngine
        from orderbook_core._itch import ItchReplay
        from orderbook_core._l3 import L3Book
        from orderbook_core._scan import (
            binance_frame,
            bitfinex_book,
            bitmex_book,
            coinbase_l2,
            cryptocom_book,
            deribit_ticker,
            kraken_futures_book,
            kucoin_level2,
        )
        from orderbook_core._text import (
            UnitScale,
            bad_level,
            book_diff,
            dict_levels,
            iso_to_ns,
            json_units,
            list_levels,
        )

        IMPLEMENTATION = "cython"
    except ImportError:
        if _choice == "cython":
            raise
        from orderbook_core._pybook import L2Book
        from orderbook_core._pyengine import MatchingEngine
        from orderbook_core._pyitch import ItchReplay
        from orderbook_core._pyl3 import L3Book
        from orderbook_core._pyscan import (
            binance_frame,
            bitfinex_book,
            bitmex_book,
            coinbase_l2,
            cryptocom_book,
            deribit_ticker,
            kraken_futures_book,
            kucoin_level2,
        )
        from orderbook_core._pytext import (
            UnitScale,
            bad_level,
            book_diff,
            dict_levels,
            iso_to_ns,
            json_units,
            list_levels,
        )

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
    "deribit_ticker",
    "dict_levels",
    "iso_to_ns",
    "json_units",
    "kraken_futures_book",
    "kucoin_level2",
    "list_levels",
]
