"""Binance futures from the real COIN-M capture, and USD-M from frames of the documented
shapes: the futures depth rule (drop u < lastUpdateId; the first applied event spans
lastUpdateId; then pu = previous u), bookTicker agreement, listings, trades, malformed
frames, and the live runner and ``hub feed`` against the capture played back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from feedhandler.files.capture import CaptureWriter, read_capture
from feedhandler.files.replay import EXCHANGES, check_failures, replay_capture
from feedhandler.sync import BookSync, Delta, Snapshot
from feedhandler.venues import VENUES
from feedhandler.venues.binance_futures import CoinMParser, UsdMParser
from hub.config import LIVE_SOURCES
from hub.events import BookUpdate, Status, Trade
from orderbook_core import L2Book
from testing.mock_venue import MockCaptureVenue
from tests.conftest import CAPTURES, stack_env
from tests.feedhandler.venues.capture_runner import check_capture, runner_against_capture
from tests.feedhandler.venues.test_okx import kafka_books, replayed_books
from tests.test_live_feed import VenueThread

CAPTURE = CAPTURES / "binance-delivery_depth-rest-bookticker_2021-07-22.jsonl.zst"
APPLIED = {
    "BCHUSD_210924": 101,
    "BCHUSD_PERP": 208,
    "BTCUSD_211231": 191,
    "EOSUSD_PERP": 180,
    "ETCUSD_PERP": 215,
    "ETHUSD_210924": 228,
    "LINKUSD_211231": 122,
    "LINKUSD_PERP": 228,
    "TRXUSD_PERP": 139,
    "XRPUSD_PERP": 176,
}
"""Depth events applied per contract: 1,788 in all (259 dropped), the captures README's figures."""
Items = list[tuple[str, str, str, int]]


def items() -> Items:
    return [(x.kind, x.url, x.data, x.ts_ns) for x in read_capture(CAPTURE) if x.kind != "connect"]


def run(parser: CoinMParser | UsdMParser, inputs: Items) -> list[Any]:
    out: list[Any] = []
    for kind, url, data, ts in inputs:
        out += parser.on_http(url, data, ts) if kind == "http" else parser.on_frame(data, ts)
    return out


def test_capture_replay_syncs_every_contract_with_zero_gaps() -> None:
    summary = replay_capture(CAPTURE)
    assert summary["venue"] == "binance-coinm" and EXCHANGES["BINANCE_DELIVERY"] == "binance-coinm"
    assert (summary["malformed"], summary["bad_lines"], summary["stale_books"]) == (0, 0, {})
    symbols = summary["symbols"]
    assert {s: v["book_updates"] for s, v in symbols.items()} == APPLIED
    assert sum(v["dropped"] for v in symbols.values()) == 259
    for s, v in symbols.items():
        assert (v["snapshots"], v["gaps"], v["resyncs"], v["crossed"], v["live"]) == (
            1,
            0,
            0,
            0,
            True,
        ), s
        assert v["book_ticker_mismatches"] == 0, s
    # 212 bookTickers name an applied depth event's u, one more BCHUSD_210924's snapshot id.
    assert sum(v["book_ticker_matches"] for v in symbols.values()) == 213
    assert sum(v["trades"] for v in symbols.values()) == 51
    assert symbols["BTCUSD_211231"]["bids"][0] == ["32627.7", "77"]
    assert check_failures(summary) == []


def test_check_command_recognises_the_capture() -> None:
    out = check_capture(CAPTURE)
    symbols = json.loads(out.stdout)["symbols"]
    assert sum(v["book_updates"] for v in symbols.values()) == 1788


def test_the_futures_rule_in_the_sync_engine() -> None:
    """Unlike spot, the event ending at lastUpdateId applies, the first one only has to span
    it, and later ones chain by pu (their U is not the previous u + 1)."""
    sync = BookSync("X", "S", continuous=True)
    buffered = [Delta(((0, 10, 1),), 90, 99, prev=80), Delta(((0, 11, 1),), 101, 120, prev=99)]
    for d in buffered:
        sync.delta(d, 0)
    sync.snapshot(Snapshot(((0, 9, 5),), seq=120), 0)
    assert (sync.stats.dropped, sync.stats.updates) == (1, 1)  # u = 99 < 120; u = 120 applies
    sync.delta(Delta(((0, 12, 2),), 150, 160, prev=120), 0)  # U far past 121: pu chains it
    assert sync.live and sync.venue_id == 160 and sync.stats.gaps == 0
    events = sync.delta(Delta(((0, 13, 2),), 170, 180, prev=165), 0)
    assert sync.stats.gaps == 1 and not sync.live
    assert [(e.state, e.reason) for e in events if isinstance(e, Status)] == [("stale", "gap")]
    late = BookSync("X", "S", continuous=True)
    late.snapshot(Snapshot((), seq=100), 0)
    late.delta(Delta(((0, 10, 1),), 101, 110, prev=95), 0)  # U > lastUpdateId: not spanned
    assert late.stats.gaps == 1 and not late.live
    spot = BookSync("X", "S", continuous=True)
    spot.snapshot(Snapshot((), seq=120), 0)
    spot.delta(Delta(((0, 10, 1),), 101, 120), 0)  # spot: u <= lastUpdateId is covered
    assert (spot.stats.dropped, spot.stats.updates) == (1, 0)


def test_a_lost_event_is_a_gap_for_that_contract_and_a_fresh_snapshot_recovers() -> None:
    inputs = items()
    mine = [i for i, x in enumerate(inputs) if '"ethusd_210924@depth' in x[2]]
    lost = mine[100]
    truth, parser = CoinMParser(), CoinMParser()
    run(truth, inputs[:lost])
    run(parser, inputs[:lost])
    run(truth, inputs[lost : lost + 1])
    events = run(parser, inputs[lost + 1 : mine[101] + 1])  # the next one shows the gap
    sync = parser.books["ETHUSD_210924"]
    assert (sync.stats.gaps, sync.live, sync.stale_reason) == (1, False, "gap")
    assert [e.state for e in events if isinstance(e, Status)] == ["stale"]
    assert all(parser.books[s].live for s in APPLIED if s != "ETHUSD_210924")
    assert parser.snapshot_urls("https://dapi.binance.com", ["ETHUSD_210924"]) == [
        "https://dapi.binance.com/dapi/v1/depth?symbol=ETHUSD_210924&limit=1000"
    ]
    # The venue's answer: its book at some later update id.
    at = mine[110]
    run(truth, inputs[lost + 1 : at + 1])
    run(parser, inputs[mine[101] + 1 : at + 1])
    book, last = truth.books["ETHUSD_210924"].book, truth.books["ETHUSD_210924"].venue_id
    tick, lot = truth.units_for("ETHUSD_210924")
    body = {
        "lastUpdateId": last,
        "bids": [[tick.to_str(p), lot.to_str(s)] for p, s in book.depth(0)],
        "asks": [[tick.to_str(p), lot.to_str(s)] for p, s in book.depth(1)],
    }
    url = "https://dapi.binance.com/dapi/v1/depth?symbol=ETHUSD_210924&limit=1000"
    events = parser.on_http(url, json.dumps(body), 0)
    assert sync.live and [e.state for e in events if isinstance(e, Status)] == ["resynced"]
    run(truth, inputs[at + 1 :])
    run(parser, inputs[at + 1 :])
    assert sync.book.snapshot() == truth.books["ETHUSD_210924"].book.snapshot()
    assert sync.stats.gaps == 1 and sync.live


def test_book_tickers_that_disagree_are_caught() -> None:
    inputs = items()
    for i, (kind, url, data, ts) in enumerate(inputs):
        if kind == "recv" and "xrpusd_perp@bookTicker" in data:
            msg = json.loads(data)
            msg["data"]["A"] = str(int(msg["data"]["A"]) + 1)
            inputs[i] = (kind, url, json.dumps(msg), ts)
    parser = CoinMParser()
    run(parser, inputs)
    assert parser.extra_stats("XRPUSD_PERP") == {
        "book_ticker_matches": 0,
        "book_ticker_mismatches": 44,
    }


def test_malformed_depth_updates_are_named_and_dropped() -> None:
    inputs = items()
    parser = CoinMParser()
    at = next(i for i, x in enumerate(inputs) if i > 400 and '"bchusd_perp@depth' in x[2])
    run(parser, inputs[:at])
    before = parser.books["BCHUSD_PERP"].book.snapshot()
    msg = json.loads(inputs[at][2])
    msg["data"]["pu"] = "167006084238"
    events = parser.on_frame(json.dumps(msg), 1)
    assert events == [Status("BINANCE_COINM", "BCHUSD_PERP", "stale", "malformed shape", 0, 1)]
    assert "pu must be an integer" in parser.errors[-1]
    msg["data"]["pu"] = msg["data"]["U"]
    parser.on_frame(json.dumps(msg), 1)
    assert parser.reasons == {"shape": 1, "inconsistent": 1}
    assert parser.books["BCHUSD_PERP"].book.snapshot() == before
    assert all(parser.books[s].live for s in APPLIED if s != "BCHUSD_PERP")


def test_trades_are_normalised() -> None:
    trades = [e for e in run(CoinMParser(), items()) if isinstance(e, Trade)]
    assert len(trades) == 51
    first = trades[0]
    assert (first.venue, first.symbol, first.trade_id) == (
        "BINANCE_COINM",
        "BCHUSD_PERP",
        "11285749",
    )
    assert (first.price, first.size, first.side) == (42791, 3, 1)  # m: the buyer made, a sell
    assert first.ts_event == 1626916403852 * 1_000_000 and first.ts_recv > first.ts_event
    assert {t.side for t in trades} == {0, 1}


def test_listings_and_units_from_exchange_info() -> None:
    parser = CoinMParser()
    run(parser, items()[:1])
    perp = parser.listings["BTCUSD_PERP"]
    assert (perp.canonical, perp.kind, perp.settle, perp.contract_size, perp.inverse) == (
        "BTC-USD-PERP",
        "perp",
        "BTC",
        "100",
        True,
    )
    quarterly = parser.listings["BTCUSD_210924"]
    assert (quarterly.canonical, quarterly.expiry, quarterly.contract_size) == (
        "BTC-USD-20210924",
        "20210924",
        "100",
    )
    assert parser.listings["ETHUSD_PERP"].contract_size == "10" and len(parser.listings) == 36
    assert [u.text for u in parser.units_for("TRXUSD_PERP")] == ["0.00001", "1"]
    assert parser.filters["BTCUSD_PERP"] == ("0.1", "1")


USDM_INFO = {
    "symbols": [
        {
            "symbol": s,
            "pair": "BTCUSDT",
            "contractType": kind,
            "deliveryDate": delivery,
            "status": "TRADING",
            "baseAsset": "BTC",
            "quoteAsset": "USDT",
            "marginAsset": "USDT",
            "pricePrecision": 2,
            "quantityPrecision": 3,
            "filters": [
                {"filterType": "PRICE_FILTER", "tickSize": "0.10"},
                {"filterType": "LOT_SIZE", "stepSize": "0.001"},
            ],
        }
        for s, kind, delivery in (
            ("BTCUSDT", "PERPETUAL", 4133404800000),
            ("BTCUSDT_210924", "CURRENT_QUARTER", 1632470400000),
        )
    ]
}


def usdm_stream(data: dict[str, Any]) -> str:
    return json.dumps({"stream": f"btcusdt@{data['e'].replace('Update', '')}", "data": data})


def test_usd_m_linear_contracts_sync_by_the_same_rule() -> None:
    parser = UsdMParser()
    rest = VENUES["binance-usdm"].rest
    assert {"binance-coinm", "binance-usdm"} <= set(LIVE_SOURCES)
    assert EXCHANGES["BINANCE_FUTURES"] == EXCHANGES["BINANCE_USDM"] == "binance-usdm"
    assert parser.instrument_urls(rest) == ["https://fapi.binance.com/fapi/v1/exchangeInfo"]
    parser.on_http(parser.instrument_urls(rest)[0], json.dumps(USDM_INFO), 0)
    assert parser.listings["BTCUSDT"].canonical == "BTC-USDT-PERP"
    assert (parser.listings["BTCUSDT"].contract_size, parser.listings["BTCUSDT"].inverse) == (
        "1",
        False,
    )
    assert parser.listings["BTCUSDT_210924"].canonical == "BTC-USDT-20210924"
    assert [u.text for u in parser.units_for("BTCUSDT")] == ["0.01", "0.001"]

    def depth(first: int, last: int, prev: int, bids: list[list[str]]) -> str:
        data = {"e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSDT", "U": first, "u": last}
        return usdm_stream(data | {"pu": prev, "b": bids, "a": []})

    parser.on_frame(depth(90, 99, 80, [["29000.10", "1.000"]]), 0)
    parser.on_frame(depth(100, 130, 99, [["29000.20", "2.500"]]), 0)
    (url,) = parser.snapshot_urls(rest, ["BTCUSDT"])
    assert url == "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
    snapshot = {"lastUpdateId": 120, "E": 1, "T": 1, "bids": [["29000.00", "3.000"]], "asks": []}
    parser.on_http(url, json.dumps(snapshot), 0)  # fapi's answer names no symbol
    parser.on_frame(depth(140, 150, 130, [["29000.20", "0"]]), 0)
    ticker = {"e": "bookTicker", "u": 150, "s": "BTCUSDT", "b": "29000.00", "B": "3.000"}
    parser.on_frame(usdm_stream(ticker | {"a": "0", "A": "0", "T": 1, "E": 1}), 0)
    sync = parser.books["BTCUSDT"]
    # u = 99 < lastUpdateId: dropped; 100..130 spans 120 and applies; 140..150 chains by pu.
    assert sync.book.snapshot() == ([(2900000, 3000)], [])
    assert (sync.stats.dropped, sync.stats.updates, sync.stats.gaps) == (1, 2, 0)
    assert parser.ticker_checks["BTCUSDT"] == [1, 0]
    assert VENUES["binance-usdm"].ws_url(VENUES["binance-usdm"].url, ["BTCUSDT"]) == (
        "wss://fstream.binance.com/stream?streams="
        "btcusdt@depth@100ms/btcusdt@aggTrade/btcusdt@bookTicker"
    )


async def test_live_runner_over_a_mock_venue_ends_with_the_replays_books() -> None:
    symbols = sorted(APPLIED)
    runner, books, mock = await runner_against_capture(CAPTURE, CoinMParser, symbols)
    assert runner.frames == len(mock.frames) and runner.connections == 1
    assert mock.rest_requests[0] == "/dapi/v1/exchangeInfo"
    assert sorted(mock.rest_requests[1:]) == sorted(
        f"/dapi/v1/depth?symbol={s}&limit=1000" for s in symbols
    )
    parser = runner.parser
    assert parser.malformed == 0
    assert all(s.live and s.stats.gaps == 0 for s in parser.books.values())
    expected = replayed_books(CAPTURE, CoinMParser())
    assert {s: b.snapshot() for s, b in books.books.items()} == expected
    assert set(expected) == set(symbols)


def test_events_rebuild_the_replays_books() -> None:
    parser = CoinMParser()
    mirrors: dict[str, L2Book] = {}
    for event in run(parser, items()):
        if isinstance(event, BookUpdate):
            mirrors.setdefault(event.symbol, L2Book()).apply(event.changes)
            assert not mirrors[event.symbol].is_crossed()
    assert {s: m.snapshot() for s, m in mirrors.items()} == {
        s: sync.book.snapshot() for s, sync in parser.books.items()
    }


@pytest.mark.services
def test_hub_feed_through_kafka_ends_with_the_replays_books(
    hub_process: Any, unique: str, services: dict[str, str]
) -> None:
    """``hub feed --source binance-coinm`` as a real process against the capture played back
    by a mock venue (WebSocket and REST), publishing to the real Kafka."""
    thread = VenueThread(MockCaptureVenue(CAPTURE))  # type: ignore[arg-type]
    port = thread.start()
    symbols = sorted(APPLIED)
    try:
        hub_process(
            "feed",
            "--source",
            "binance-coinm",
            "--url",
            f"ws://127.0.0.1:{port}",
            "--rest-url",
            f"http://127.0.0.1:{port}",
            "--symbols",
            ",".join(symbols),
            "--metrics-port",
            "0",
            env=stack_env(services, unique),
        )
        thread.wait_done(60)
        want = replayed_books(CAPTURE, CoinMParser())
        seen, seqs = asyncio.run(kafka_books(services["kafka"], f"{unique}.book", want))
    finally:
        thread.stop()
    assert seen == want
    for symbol in symbols:
        assert seqs[symbol] == list(range(1, len(seqs[symbol]) + 1)), "gap-free per symbol"


def test_capture_lines_are_what_the_readme_names() -> None:
    depth = [x for x in read_capture(CAPTURE) if x.kind == "recv" and "depthUpdate" in x.data]
    assert len(depth) == 2047


def usdm_capture(path: Path) -> Path:
    """A recording of USD-M traffic as the venue documents it (there is no USD-M capture):
    exchangeInfo, depth events chained by ``pu`` around a REST snapshot (the first two
    end before or span its ``lastUpdateId``), aggTrades; for the mock venue and the
    end-to-end test."""
    rest = VENUES["binance-usdm"].rest

    def depth(
        first: int, last: int, prev: int, bids: list[list[str]], asks: list[list[str]]
    ) -> str:
        data = {"e": "depthUpdate", "E": last, "T": last, "s": "BTCUSDT", "U": first, "u": last}
        return usdm_stream(data | {"pu": prev, "b": bids, "a": asks})

    def trade(n: int, price: str, qty: str, maker: bool) -> str:
        data = {"e": "aggTrade", "E": 1626912000000 + n, "s": "BTCUSDT", "a": 5933014 + n}
        data |= {"p": price, "q": qty, "f": 100 + n, "l": 100 + n, "T": 1626912000000 + n}
        return usdm_stream(data | {"m": maker})

    frames = [
        depth(90, 99, 80, [["29000.10", "1.000"]], []),
        depth(100, 130, 99, [["29000.20", "2.500"]], [["29001.00", "0.400"]]),
        depth(140, 150, 130, [["29000.20", "0"]], [["29001.50", "1.200"]]),
        trade(1, "29001.00", "0.150", False),
        depth(151, 160, 150, [["28999.90", "0.750"]], [["29001.00", "0.250"]]),
        trade(2, "29000.00", "0.500", True),
        depth(161, 175, 160, [], [["29001.00", "0"], ["29002.30", "3.000"]]),
    ]
    snapshot = {
        "lastUpdateId": 120,
        "E": 1,
        "T": 1,
        "bids": [["29000.00", "3.000"], ["28999.50", "1.100"]],
        "asks": [["29001.50", "0.800"]],
    }
    out = CaptureWriter(path, "BINANCE_USDM", {"venue": "binance-usdm"})
    out.http("h", f"{rest}/fapi/v1/exchangeInfo", json.dumps(USDM_INFO), 1 * 10**9)
    for n, frame in enumerate(frames):
        if n == 2:  # the snapshot is taken after the first two events
            url = f"{rest}/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
            out.http("h", url, json.dumps(snapshot), 4 * 10**9)
        out.recv("w", frame, (5 + n) * 10**9)
    out.close()
    return path


def test_the_usd_m_recording_replays_exactly(tmp_path: Path) -> None:
    summary = replay_capture(usdm_capture(tmp_path / "usdm.jsonl"))
    btc = summary["symbols"]["BTCUSDT"]
    assert (btc["book_updates"], btc["gaps"], summary["malformed"]) == (4, 0, 0)
    assert btc["bids"] == [["29000.00", "3.000"], ["28999.90", "0.750"], ["28999.50", "1.100"]]
    assert btc["asks"] == [["29001.50", "1.200"], ["29002.30", "3.000"]]
    assert btc["trades"] == 2
