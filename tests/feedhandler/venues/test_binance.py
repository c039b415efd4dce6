"""Binance spot replay from the real capture: documented snapshot+diff sync with zero gaps,
and the book's top equals every bookTicker carrying the same update id."""

from __future__ import annotations

import json

from feedhandler.files.capture import read_capture
from feedhandler.files.replay import check_failures, replay_capture
from feedhandler.venues.base import TOPS_KEPT, keep_top
from feedhandler.venues.binance import BinanceParser
from tests.conftest import CAPTURES

CAPTURE = CAPTURES / "binance-spot_4-symbols_2021-10-12.jsonl.zst"
SYMBOLS = {"NKN-USDT", "BLZ-ETH", "LRC-BTC", "RUNE-EUR"}


def lines() -> list[tuple[str, str, str, int]]:
    return [
        (x.kind, x.url, x.data, x.ts_ns)
        for x in read_capture(CAPTURE)
        if x.kind in ("recv", "http")
    ]


def run(parser: BinanceParser, items: list[tuple[str, str, str, int]]) -> None:
    for kind, url, data, ts in items:
        if kind == "http":
            parser.on_http(url, data, ts)
        else:
            parser.on_frame(data, ts)


def test_every_symbol_syncs_without_gaps_and_matches_book_tickers() -> None:
    summary = replay_capture(CAPTURE)
    assert summary["malformed"] == 0
    assert set(summary["symbols"]) == SYMBOLS
    for symbol, s in summary["symbols"].items():
        assert (s["snapshots"], s["gaps"], s["resyncs"], s["crossed"]) == (1, 0, 0, 0), symbol
        assert s["book_ticker_mismatches"] == 0, symbol
    assert sum(s["book_ticker_matches"] for s in summary["symbols"].values()) == 26
    assert summary["symbols"]["NKN-USDT"]["book_updates"] == 149
    assert check_failures(summary) == []


def test_a_lost_diff_is_a_gap_that_invalidates_only_that_symbol() -> None:
    items = lines()
    nkn = [i for i, (k, _u, d, _t) in enumerate(items) if k == "recv" and '"nknusdt@depth' in d]
    del items[nkn[20]]
    parser = BinanceParser()
    run(parser, items)
    assert parser.books["NKN-USDT"].stats.gaps == 1
    assert not parser.books["NKN-USDT"].live
    assert all(
        parser.books[s].live and parser.books[s].stats.gaps == 0 for s in SYMBOLS - {"NKN-USDT"}
    )


def test_a_book_ticker_that_disagrees_is_caught() -> None:
    items = lines()
    for i, (kind, url, data, ts) in enumerate(items):
        if kind == "recv" and "lrcbtc@bookTicker" in data:
            msg = json.loads(data)
            msg["data"]["B"] = "1.00000000"
            items[i] = (kind, url, json.dumps(msg), ts)
    parser = BinanceParser()
    run(parser, items)
    assert parser.extra_stats("LRC-BTC")["book_ticker_mismatches"] > 0


def test_unexpected_rest_answer_and_bad_frames_are_counted() -> None:
    parser = BinanceParser()
    assert parser.on_http("https://x/api/v3/depth?symbol=NKNUSDT", "<html>", 0) == []
    assert parser.on_frame('{"stream": "x", "data": {"e": "depthUpdate"}}', 0) == []
    assert parser.on_frame("[]", 0) == []
    assert parser.malformed == 3
    assert (
        "REST answer from https://x/api/v3/depth?symbol=NKNUSDT: json: not JSON" in parser.errors[0]
    )


def test_unmatched_book_tickers_are_kept_within_a_bound() -> None:
    """bookTicker messages wait for the book top of their update id; ones whose top never
    comes are dropped oldest first, not kept for as long as the feed runs."""
    kept: dict[int, tuple[int, int, int, int]] = {}
    for update in range(TOPS_KEPT + 500):
        keep_top(kept, update, (update, 1, update + 1, 1))
    assert len(kept) == TOPS_KEPT and next(iter(kept)) == 500
