"""The feed bench's playback inputs for cryptofeed: the books a capture subscribed (its send
lines) and the symbol answers matched to cryptofeed's routes (without cryptofeed)."""

from __future__ import annotations

import json
from typing import Any

from bench import peer_books as pb
from bench.peer_cryptofeed import _symbol_data


def sent(*messages: Any) -> list[pb.Line]:
    return [("send", "", json.dumps(m, separators=(",", ":")), 0.0) for m in messages]


def test_books_are_read_from_what_the_capture_sent() -> None:
    huobi = sent({"sub": "market.btcusdt.depth.step0", "id": 1}, {"sub": "market.x.trade"})
    assert pb.matching(r'"sub":"market\.(\w+)\.depth')(huobi) == ["btcusdt"]
    futures = sent(
        {"event": "subscribe", "feed": "book", "product_ids": ["pi_xbtusd", "fi_ethusd_211231"]},
        {"event": "subscribe", "feed": "trade", "product_ids": ["pi_ltcusd"]},
    )
    assert pb.kraken_futures(futures) == ["pi_xbtusd", "fi_ethusd_211231"]
    okx = sent(
        {"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]},
        {"op": "subscribe", "args": [{"channel": "trades", "instId": "ETH-USDT"}]},
        {"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]},
    )
    assert pb.okx(okx) == ["BTC-USDT"]


def test_bitmex_expiries_become_datetimes() -> None:
    body = [{"symbol": "XBTU21", "expiry": "2021-09-24T12:00:00.000Z"}, {"symbol": "XBTUSD"}]
    lines: list[pb.Line] = [("http", "https://x/api/v1/instrument/active", json.dumps(body), 0)]
    (future, perp) = pb.bitmex_symbols(lines)
    assert future["expiry"].isoformat() == "2021-09-24T12:00:00+00:00"
    assert "expiry" not in perp


class _Route:
    def __init__(self, routes: list[str]) -> None:
        self.routes = routes


class _Exchange:
    """cryptofeed's view of a venue's symbol routes (several lists on one path, as OKX)."""

    rest_endpoints = [
        _Route(["https://x/instruments?instType=SPOT", "https://x/instruments?instType=SWAP"])
    ]

    @classmethod
    def _symbol_endpoint_prepare(cls, ep: _Route) -> list[str]:
        return ep.routes


def test_symbol_answers_are_matched_by_path_and_query() -> None:
    lines: list[pb.Line] = [
        ("http", "https://x/instruments?instType=SWAP&expired=false", '["swap"]', 0.0),
        ("http", "https://x/instruments?instType=SPOT", '["spot"]', 0.0),
    ]
    assert _symbol_data(_Exchange, lines) == [["spot"], ["swap"]]
