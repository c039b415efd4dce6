"""A bad book delta is refused as a whole and makes exactly its symbol stale, at once: for
every venue, one real delta from its capture with a price past int64 (which raised
OverflowError in the book core before) or of the wrong type. The refusal is counted per
reason in hub_feed_malformed_frames_total; every other symbol stays live and untouched."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from feedhandler.venues.base import ParserBase
from feedhandler.venues.binance import BinanceParser
from feedhandler.venues.binance_futures import CoinMParser
from feedhandler.venues.bitfinex import BitfinexParser
from feedhandler.venues.bitstamp import BitstampParser
from feedhandler.venues.coinbase import CoinbaseParser
from feedhandler.venues.coinbase_l3 import CoinbaseL3Parser
from feedhandler.venues.deribit import DeribitParser
from feedhandler.venues.gemini import GeminiParser
from feedhandler.venues.huobi import HuobiCoinSwapParser, HuobiSpotParser
from feedhandler.venues.kraken import KrakenParser
from feedhandler.venues.kraken_futures import KrakenFuturesParser
from hub.events import BookUpdate, Status
from hub.ops import metrics
from tests.conftest import CAPTURES
from tests.feedhandler.fuzzing import Raw, capture_items, dump, feed, load
from tests.feedhandler.venues.test_fuzz_venues import l3_items

HUGE = "9" * 70


def kraken_v1(msg: Any) -> None:
    part = next(p for p in msg[1:-2] if isinstance(p, dict) and ("a" in p or "b" in p))
    (part.get("a") or part["b"])[0][0] = HUGE


def kraken_v2(msg: Any) -> None:
    item = msg["data"][0]
    (item["bids"] or item["asks"])[0]["price"] = Raw("1e400")


def binance(msg: Any) -> None:
    d = msg["data"]
    (d["b"] or d["a"])[0][0] = HUGE


def advanced(msg: Any) -> None:
    msg["events"][0]["updates"][0]["price_level"] = HUGE


def exchange(msg: Any) -> None:
    msg["changes"][0][1] = [64000]  # a list where a decimal string belongs


def level3(msg: Any) -> None:
    msg["price"] = HUGE


def kraken_futures(msg: Any) -> None:
    msg["price"] = Raw(HUGE)


def deribit(msg: Any) -> None:
    data = msg["params"]["data"]
    (data["bids"] or data["asks"])[0][1] = Raw(HUGE)


def bitfinex(msg: Any) -> None:
    msg[1][0] = Raw(HUGE)  # [chanId, [price, count, amount], seq]


def bitstamp(msg: Any) -> None:
    d = msg["data"]
    (d["bids"] or d["asks"])[0][0] = HUGE


def gemini(msg: Any) -> None:
    msg["changes"][0][1] = HUGE


def huobi(msg: Any) -> None:
    msg["tick"]["bids"][0][0] = Raw(HUGE)


CASES: dict[str, tuple[str, Callable[[], ParserBase], str, str, Callable[[Any], None]]] = {
    # name: (capture, parser, symbol, text marking the symbol's deltas, mutation)
    "kraken-v1": (
        "kraken-v1-book10_XBT-USD_2023-08-30.jsonl.zst",
        KrakenParser,
        "XBT/USD",
        '"book-10"',
        kraken_v1,
    ),
    "kraken-v2": (
        "kraken-v2-book10_BTC-USD_2023-08.jsonl.zst",
        KrakenParser,
        "BTC/USD",
        '"type":"update"',
        kraken_v2,
    ),
    "binance": (
        "binance-spot_4-symbols_2021-10-12.jsonl.zst",
        BinanceParser,
        "NKN-USDT",
        '"nknusdt@depth',
        binance,
    ),
    "binance-coinm": (
        "binance-delivery_depth-rest-bookticker_2021-07-22.jsonl.zst",
        CoinMParser,
        "ETHUSD_210924",
        '"ethusd_210924@depth',
        binance,
    ),
    "coinbase-advanced": (
        "coinbase-advanced-trade_BTC-USD_ETH-USD_2026-08-09.jsonl.zst",
        CoinbaseParser,
        "ETH-USD",
        '"type":"update","product_id":"ETH-USD"',
        advanced,
    ),
    "coinbase-exchange": (
        "coinbase-exchange-level2_10-products_2021-04-17.jsonl.zst",
        lambda: CoinbaseParser("exchange"),
        "DASH-BTC",
        '"l2update","product_id":"DASH-BTC"',
        exchange,
    ),
    "coinbase-l3": ("", CoinbaseL3Parser, "BTC-USD", '"type": "open"', level3),
    "kraken-futures": (
        "kraken-futures_book-seq-ticker-trades_2021-07-22.jsonl.zst",
        KrakenFuturesParser,
        "PI_ETHUSD",
        '"feed":"book","product_id":"PI_ETHUSD"',
        kraken_futures,
    ),
    "deribit": (
        "deribit-options_book-raw-ticker_2021-07-22.jsonl.zst",
        DeribitParser,
        "BTC-24SEP21-8000-P",
        '"channel":"book.BTC-24SEP21-8000-P.raw","data":{"type":"change"',
        deribit,
    ),
    "bitfinex": (
        "bitfinex-spot_book-p0-seq-trades-ticker_2021-04-17.jsonl.zst",
        BitfinexParser,
        "tDOGUSD",
        "[225206,[2",  # an update of tDOGUSD's book channel (prices 2xxxxx)
        bitfinex,
    ),
    "bitstamp": (
        "bitstamp-spot_diff-book-rest-trades_2022-01-05.jsonl.zst",
        BitstampParser,
        "ethusd",
        '"channel":"diff_order_book_ethusd"',
        bitstamp,
    ),
    "gemini": (
        "gemini-spot_l2-trades_2021-06-24.jsonl.zst",
        GeminiParser,
        "BTCGBP",
        '"symbol":"BTCGBP","changes"',
        gemini,
    ),
    "huobi": (
        "huobi-spot_depth-step0-trades_2021-04-17.jsonl.zst",
        HuobiSpotParser,
        "omgbtc",
        '"ch":"market.omgbtc.depth.step0"',
        huobi,
    ),
    "huobi-coin-swap": (
        "huobi-coin-swap_depth-step0-trades_2022-02-19.jsonl.zst",
        HuobiCoinSwapParser,
        "ATOM-USD",
        '"ch":"market.ATOM-USD.depth.step0"',
        huobi,
    ),
}


def malformed_count(venue: str, reason: str) -> float:
    value = metrics("feed").get_sample_value(
        "hub_feed_malformed_frames_total", {"venue": venue, "reason": reason}
    )
    return value or 0.0


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_bad_delta_makes_exactly_its_symbol_stale(name: str) -> None:
    capture, make, symbol, marker, mutation = CASES[name]
    items = l3_items() if not capture else capture_items(CAPTURES / capture)
    parser = make()
    target = None
    for n, item in enumerate(items):
        kind, _url, data, _ts = item
        sync = parser.books.get(symbol)
        if n > 40 and kind == "recv" and marker in data and sync is not None and sync.live:
            target = n
            break
        feed(parser, *item)
    assert target is not None
    others = {s: sync.book.snapshot() for s, sync in parser.books.items() if s != symbol}
    live = {s for s, sync in parser.books.items() if sync.live}
    book = parser.books[symbol].book.snapshot()
    before = malformed_count(parser.venue, "range") + malformed_count(parser.venue, "shape")
    msg = load(items[target][2])
    mutation(msg)
    events = parser.on_frame(dump(msg), 1)
    reason = parser.errors[-1].split(":")[1].strip()
    assert events == [Status(parser.venue, symbol, "stale", f"malformed {reason}", 0, 1)]
    assert not any(isinstance(e, BookUpdate) for e in events)
    assert parser.malformed == 1 and reason in ("range", "shape")
    after = malformed_count(parser.venue, "range") + malformed_count(parser.venue, "shape")
    assert after == before + 1
    assert parser.books[symbol].book.snapshot() == book and not parser.books[symbol].live
    assert {s for s, sync in parser.books.items() if sync.live} == live - {symbol}
    assert {s: sync.book.snapshot() for s, sync in parser.books.items() if s != symbol} == others
    assert json.dumps(parser.errors[-1])  # the log line names the field and the text
    assert ("price" in parser.errors[-1]) or ("level" in parser.errors[-1])
