"""Canonical listings the existing venue parsers fill from the real captures (REST metadata
or the symbol itself): one id per instrument, contract terms per hub.symbology's rule
(``contract_size`` in quote units exactly when inverse, else base units)."""

from __future__ import annotations

import pytest

from feedhandler.files.capture import read_capture
from feedhandler.venues.base import ParserBase
from feedhandler.venues.binance import BinanceParser
from feedhandler.venues.bitget import BitgetParser
from feedhandler.venues.bitmex import BitmexParser
from feedhandler.venues.bybit import BybitParser
from feedhandler.venues.bybit_v5 import BybitV5Parser
from feedhandler.venues.coinbase import CoinbaseParser
from feedhandler.venues.kraken import KrakenParser
from feedhandler.venues.okx import OkxParser
from tests.conftest import CAPTURES

Terms = tuple[str, str, str, str, bool]  # canonical, kind, settle, contract_size, inverse


def fed(parser: ParserBase, name: str) -> ParserBase:
    for x in read_capture(CAPTURES / f"{name}.jsonl.zst"):
        if x.kind == "http":
            parser.on_http(x.url, x.data, x.ts_ns)
        elif x.kind == "recv":
            parser.on_frame(x.data, x.ts_ns)
    return parser


def terms(parser: ParserBase, native: str) -> Terms:
    x = parser.listings[native]
    assert x.native == native and x.venue == parser.venue
    return (x.canonical, x.kind, x.settle, x.contract_size, x.inverse)


CASES: list[tuple[type[ParserBase], str, int, dict[str, Terms]]] = [
    (
        OkxParser,
        "okx-spot-futures-swap_books-trades-tickers_2022-05-13",
        783,
        {
            "BTC-USDT": ("BTC-USDT", "spot", "", "", False),
            "UNI-USD-SWAP": ("UNI-USD-PERP", "perp", "UNI", "10", True),  # 10 USD
            "BTC-USD-220527": ("BTC-USD-20220527", "future", "BTC", "100", True),
        },
    ),
    (
        BitmexParser,
        "bitmex_orderbookl2-quote-trades_2021-07-22",
        34,
        {
            "XBTUSD": ("BTC-USD-PERP", "perp", "BTC", "1", True),  # 1 USD
            "XRPU21": ("XRP-BTC-20210924", "future", "BTC", "1", False),  # 1 XRP
            "ADAUSDT": ("ADA-USDT-PERP", "perp", "BTC", "", False),  # quanto: no base size
        },
    ),
    (
        BybitParser,
        "bybit-usdt-perp_orderbookl2-25-trades_2021-04-17",
        15,
        {"ETHUSDT": ("ETH-USDT-PERP", "perp", "USDT", "1", False)},
    ),
    (
        BitgetParser,
        "bitget-spot_books-trades-ticker-candles_2022-04-07",
        245,
        {"EOSUSDT": ("EOS-USDT", "spot", "", "", False)},
    ),
    (
        BinanceParser,
        "binance-spot_4-symbols_2021-10-12",
        1695,
        {"NKN-USDT": ("NKN-USDT", "spot", "", "", False)},  # keyed by the hub's symbol
    ),
    (
        CoinbaseParser,
        "coinbase-exchange-level2_10-products_2021-04-17",
        162,
        {"YFI-BTC": ("YFI-BTC", "spot", "", "", False)},
    ),
    (
        KrakenParser,
        "kraken-v1-book10_XBT-USD_2023-08-30",
        1,
        {"XBT/USD": ("BTC-USD", "spot", "", "", False)},
    ),
    (
        KrakenParser,
        "kraken-v2-book10_BTC-USD_2023-08",
        1,
        {"BTC/USD": ("BTC-USD", "spot", "", "", False)},
    ),
]


@pytest.mark.parametrize(("cls", "capture", "count", "expected"), CASES, ids=lambda v: str(v)[:24])
def test_listings_from_the_captures(
    cls: type[ParserBase], capture: str, count: int, expected: dict[str, Terms]
) -> None:
    parser = fed(cls(), capture)
    assert len(parser.listings) == count
    assert set(parser.books) <= set(parser.listings)  # every book the capture has is named
    for native, want in expected.items():
        assert terms(parser, native) == want


def test_coinbase_advanced_trade_books_are_listed() -> None:
    parser = fed(CoinbaseParser(), "coinbase-advanced-trade_BTC-USD_ETH-USD_2026-08-09")
    assert set(parser.books) == {"BTC-USD", "ETH-USD"}
    assert {n: parser.listings[n].canonical for n in parser.books} == {
        "BTC-USD": "BTC-USD",
        "ETH-USD": "ETH-USD",
    }


def test_bybit_v5_linear_perpetuals_and_futures() -> None:
    parser = BybitV5Parser()
    body = (
        '{"retCode":0,"result":{"list":['
        '{"symbol":"BTCUSDT","contractType":"LinearPerpetual","baseCoin":"BTC",'
        '"quoteCoin":"USDT","settleCoin":"USDT","deliveryTime":"0","priceScale":"2",'
        '"priceFilter":{"tickSize":"0.10"},"lotSizeFilter":{"qtyStep":"0.001"}},'
        '{"symbol":"BTC-26JUL24","contractType":"LinearFutures","baseCoin":"BTC",'
        '"quoteCoin":"USDC","settleCoin":"USDC","deliveryTime":"1721980800000",'
        '"priceScale":"2","priceFilter":{"tickSize":"0.50"},"lotSizeFilter":{"qtyStep":"0.001"}}'
        "]}}"
    )
    parser.on_http("https://api.bybit.com/v5/market/instruments-info?category=linear", body, 1)
    assert terms(parser, "BTCUSDT") == ("BTC-USDT-PERP", "perp", "USDT", "1", False)
    assert terms(parser, "BTC-26JUL24") == ("BTC-USDC-20240726", "future", "USDC", "1", False)


def test_the_feed_publishes_instruments_with_their_listing() -> None:
    """feedhandler.venues.base.instrument_from (live runner and replay) puts the parser's
    listing on the stream's Instrument event."""
    from feedhandler.venues.base import instrument_from

    parser = fed(BitmexParser(), "bitmex_orderbookl2-quote-trades_2021-07-22")
    inst = instrument_from(parser)("BITMEX", "XBTUSD")
    assert inst is not None
    assert (inst.symbol, inst.canonical, inst.kind, inst.settle, inst.contract_size) == (
        "XBTUSD",
        "BTC-USD-PERP",
        "perp",
        "BTC",
        "1",
    )
    assert inst.inverse and inst.tick_size == "0.1"  # units of 0.5 in decimals
