"""Coinbase Advanced Trade and Exchange replays from the real captures."""

from __future__ import annotations

import json

from feedhandler.files.capture import read_capture
from feedhandler.files.replay import check_failures, replay_capture
from feedhandler.venues.coinbase import CoinbaseParser
from hub.events import Trade
from tests.conftest import CAPTURES

ADVANCED = CAPTURES / "coinbase-advanced-trade_BTC-USD_ETH-USD_2026-08-09.jsonl.zst"
EXCHANGE = CAPTURES / "coinbase-exchange-level2_10-products_2021-04-17.jsonl.zst"


def test_advanced_trade_no_gaps_never_crossed_ticker_mostly_agrees() -> None:
    summary = replay_capture(ADVANCED)
    assert summary["malformed"] == 0
    assert set(summary["symbols"]) == {"BTC-USD", "ETH-USD"}
    for symbol, s in summary["symbols"].items():
        assert (s["sequence_gaps"], s["gaps"], s["crossed"], s["snapshots"]) == (0, 0, 0, 1), symbol
        assert s["ticker_agrees"] > 2 * s["ticker_disagrees"], symbol
        assert s["trades"] > 0 and s["book_updates"] > 300
    assert check_failures(summary) == []


def test_exchange_level2_never_crossed_and_ticker_agrees() -> None:
    summary = replay_capture(EXCHANGE)
    assert summary["malformed"] == 0
    assert len(summary["symbols"]) == 10
    for symbol, s in summary["symbols"].items():
        assert s["crossed"] == 0 and s["snapshots"] == 1, symbol
        assert s["ticker_disagrees"] == 0, symbol
    assert sum(s["book_updates"] for s in summary["symbols"].values()) == 9719
    assert sum(s["ticker_agrees"] for s in summary["symbols"].values()) > 80


def test_a_missing_sequence_number_invalidates_the_connections_books() -> None:
    frames = [x.data for x in read_capture(ADVANCED) if x.kind == "recv"]
    parser = CoinbaseParser()
    for line in read_capture(ADVANCED):
        if line.kind == "http":
            parser.on_http(line.url, line.data, 0)
    l2 = [i for i, f in enumerate(frames) if '"l2_data"' in f]
    del frames[l2[50]]
    for f in frames:
        parser.on_frame(f, 0)
    assert parser.sequence_gaps == 1
    assert all(not sync.live for sync in parser.books.values())


def test_maker_side_becomes_the_opposite_aggressor() -> None:
    parser = CoinbaseParser()
    parser.on_http("https://x/products", json.dumps([{"id": "A-B", "quote_increment": "0.01"}]), 0)
    (trade,) = parser.on_frame(
        json.dumps(
            {
                "type": "match",
                "product_id": "A-B",
                "trade_id": 7,
                "price": "1.25",
                "size": "2",
                "side": "sell",
                "time": "2021-04-17T16:43:37.089723Z",
            }
        ),
        0,
    )
    assert isinstance(trade, Trade)
    assert (trade.side, trade.price, trade.size, trade.trade_id) == (0, 125, 200_000_000, "7")
    assert trade.ts_event == 1618677817089723000
