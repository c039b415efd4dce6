"""Bitget v1 spot from the real capture: every checksum verifies, a corrupted update fails
its checksum and the book recovers at the next snapshot, malformed frames are refused
whole, prices are exact ticks, and the live runner against the capture played back over
a real WebSocket ends with the replay's books."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import pytest
from hypothesis import strategies as st

from feedhandler.files.replay import EXCHANGES, replay_capture
from feedhandler.venues import VENUES
from feedhandler.venues.bitget import BitgetParser
from hub.events import Status, Trade
from testing.mock_venue import MockCaptureVenue
from tests.conftest import CAPTURES, stack_env
from tests.feedhandler.fuzzing import Case, capture_items, fuzzed
from tests.feedhandler.venues.capture_runner import check_capture, runner_against_capture
from tests.feedhandler.venues.test_okx import kafka_books, loaded, replayed_books
from tests.test_live_feed import VenueThread

CAPTURE = CAPTURES / "bitget-spot_books-trades-ticker-candles_2022-04-07.jsonl.zst"
VERIFIED = {
    "AVAXUSDT": 56,
    "CULTUSDT": 52,
    "EOSUSDT": 56,
    "GOGUSDT": 57,
    "HOTUSDT": 55,
    "STGUSDT": 56,
    "SUNUSDT": 56,
    "VVSUSDT": 55,
}
"""Per book; 443 in all, the figure the captures README names."""


def test_capture_replay_verifies_all_443_checksums() -> None:
    summary = replay_capture(CAPTURE)
    assert summary["venue"] == "bitget" and EXCHANGES["BITGET"] == "bitget"
    assert summary["malformed"] == 0 and summary["bad_lines"] == 0
    got = {s: v["checksums_verified"] for s, v in summary["symbols"].items()}
    assert got == VERIFIED and sum(got.values()) == 443
    for s in summary["symbols"].values():
        assert (s["checksums_failed"], s["gaps"], s["crossed"], s["resyncs"]) == (0, 0, 0, 0)
        assert s["live"] and s["snapshots"] == 1
    assert sum(s["trades"] for s in summary["symbols"].values()) == 30
    assert sum(s["book_updates"] for s in summary["symbols"].values()) == 435


def test_check_command_recognises_the_venue_from_the_header() -> None:
    out = check_capture(CAPTURE)
    summary = json.loads(out.stdout)
    assert summary["venue"] == "bitget"
    assert sum(s["checksums_verified"] for s in summary["symbols"].values()) == 443


def test_products_metadata_and_exact_prices() -> None:
    parser = BitgetParser()
    frames = loaded(parser, CAPTURE)
    assert [u.text for u in parser.units_for("CULTUSDT")] == ["0.00000001", "1"]
    assert [u.text for u in parser.units_for("EOSUSDT")] == ["0.0001", "0.0001"]
    assert parser.rest_ids["EOSUSDT"] == "EOSUSDT_SPBL"
    for text, ts in frames:
        parser.on_frame(text, ts)
        if '"snapshot"' in text and '"books"' in text and '"CULTUSDT"' in text:
            snap = json.loads(text)
            break
    assert snap["data"][0]["asks"][0] == ["0.00003530", "145214"]
    assert parser.books["CULTUSDT"].book.depth(1, 1) == [(3530, 145214)]
    assert parser.texts["CULTUSDT"].sides[1][3530] == "0.00003530:145214"


def bitget_snapshot(parser: BitgetParser, symbol: str) -> str:
    """The book ``parser`` holds as Bitget would send it on a resubscribe."""
    book, texts = parser.books[symbol].book, parser.texts[symbol]

    def rows(side: int) -> list[list[str]]:
        return [texts.sides[side][p].split(":") for p, _s in book.depth(side)]

    crc = texts.checksum(book, parser.units_for(symbol))
    data = {"asks": rows(1), "bids": rows(0), "checksum": crc, "ts": "1649290100000"}
    arg = {"instType": "sp", "channel": "books", "instId": symbol}
    return json.dumps({"action": "snapshot", "arg": arg, "data": [data]})


def test_corrupted_update_fails_its_checksum_then_the_next_snapshot_recovers() -> None:
    truth, parser = BitgetParser(), BitgetParser()
    frames = loaded(truth, CAPTURE)
    loaded(parser, CAPTURE)
    symbol = "EOSUSDT"
    books = [i for i, (t, _) in enumerate(frames) if '"books"' in t and f'"{symbol}"' in t]
    at, nxt = books[5], books[6]
    for text, ts in frames[:at]:
        truth.on_frame(text, ts)
        parser.on_frame(text, ts)
    bad = json.loads(frames[at][0])
    level = next(lv for lv in bad["data"][0]["bids"] + bad["data"][0]["asks"] if lv[1] != "0")
    level[1] = level[1][:-1] + ("1" if level[1][-1] != "1" else "2")  # a size changed
    events = parser.on_frame(json.dumps(bad), frames[at][1])
    truth.on_frame(*frames[at])
    sync = parser.books[symbol]
    assert sync.stats.checksums_failed == 1 and not sync.live and sync.stale_reason == "checksum"
    assert [e.state for e in events if isinstance(e, Status)] == ["stale"]
    assert json.loads(parser.recover([symbol])[1]) == {
        "op": "subscribe",
        "args": [{"instType": "SP", "channel": "books", "instId": symbol}],
    }
    for text, ts in frames[at + 1 : nxt + 1]:
        truth.on_frame(text, ts)
        parser.on_frame(text, ts)
    assert sync.stats.updates == truth.books[symbol].stats.updates - 1  # the next: dropped
    events = parser.on_frame(bitget_snapshot(truth, symbol), 0)
    assert sync.live and sync.stats.resynced == 1
    assert [e.state for e in events if isinstance(e, Status)] == ["resynced"]
    for text, ts in frames[nxt + 1 :]:
        truth.on_frame(text, ts)
        parser.on_frame(text, ts)
    assert sync.stats.checksums_failed == 1 and sync.live
    assert sync.stats.checksums_ok == VERIFIED[symbol] - 2 + 1  # lost 2, gained the snapshot
    assert sync.book.snapshot() == truth.books[symbol].book.snapshot()


def test_malformed_frames_are_refused_whole_with_a_reason() -> None:
    parser = BitgetParser()
    frames = loaded(parser, CAPTURE)
    for text, ts in frames[:70]:
        parser.on_frame(text, ts)
    symbol = "STGUSDT"
    sync = parser.books[symbol]
    before = sync.book.snapshot()
    update = json.loads(next(t for t, _ in frames[70:] if '"books"' in t and symbol in t))
    update["data"][0]["asks"].append(["3.1", "-1"])
    events = parser.on_frame(json.dumps(update), 0)
    assert parser.malformed == 1 and parser.reasons == {"range": 1}
    assert "size '-1'" in parser.errors[-1]
    assert sync.book.snapshot() == before and not sync.live
    assert [e.state for e in events if isinstance(e, Status)] == ["stale"]
    # A books push whose channel name is damaged is no silently lost update (fuzz).
    other = "HOTUSDT"
    while not parser.books[other].live:
        parser.on_frame(*frames.pop(70))
    renamed = next(t for t, _ in frames[70:] if '"books"' in t and other in t)
    events = parser.on_frame(renamed.replace('"channel":"books"', '"channel":"boks"'), 0)
    assert parser.reasons["shape"] == 1 and "unknown channel 'boks'" in parser.errors[-1]
    assert [(e.symbol, e.state) for e in events if isinstance(e, Status)] == [(other, "stale")]
    ticker = '{"action":"snapshot","arg":{"instType":"sp","channel":"ticker","instId":"X"}}'
    assert parser.on_frame(ticker, 0) == [] and parser.malformed == 2
    trade = '{"action":"update","arg":{"instType":"sp","channel":"trade","instId":"STGUSDT"},'
    parser.on_frame(trade + '"data":[["1649290078140","3.05","1","hold"]]}', 0)
    assert parser.reasons["shape"] == 2 and "side must be 'buy' or 'sell'" in parser.errors[-1]
    parser.on_frame(trade + '"data":[["1649290078140","3.0505","1","buy"]]}', 0)
    assert "not a multiple of '0.001'" in parser.errors[-1]
    parser.on_frame('{"event":"error","code":30001,"msg":"instType:sp,channel:x not exist"}', 0)
    assert parser.reasons["venue"] == 1
    assert parser.on_frame("pong", 0) == [] and parser.malformed == 5
    products = '{"code":"00000","data":[{"symbol":"A_SPBL","symbolName":"A","priceScale":"x"}]}'
    parser.on_http("https://api.bitget.com/api/spot/v1/public/products", products, 0)
    assert parser.malformed == 6 and "A" not in parser.units


def test_trades_are_normalised_and_history_is_not_published() -> None:
    parser = BitgetParser()
    frames = loaded(parser, CAPTURE)
    trades = [e for t, ts in frames for e in parser.on_frame(t, ts) if isinstance(e, Trade)]
    assert len(trades) == 30  # the 8 history snapshots are left out
    hot = next(t for t in trades if t.symbol == "HOTUSDT")
    assert (hot.trade_id, hot.price, hot.size, hot.side) == ("1649290077777:1", 56130, 8908000, 0)
    assert hot.ts_event == 1649290077777 * 1_000_000


def test_subscribe_heartbeat_and_registry() -> None:
    parser = BitgetParser()
    assert json.loads(parser.subscribe(["EOSUSDT"])[0]) == {
        "op": "subscribe",
        "args": [
            {"instType": "SP", "channel": "books", "instId": "EOSUSDT"},
            {"instType": "SP", "channel": "trade", "instId": "EOSUSDT"},
        ],
    }
    assert parser.heartbeat() == ["ping"] and 0 < parser.heartbeat_s <= 30
    spec = VENUES["bitget"]
    assert (spec.url, spec.rest) == ("wss://ws.bitget.com/spot/v1/stream", "https://api.bitget.com")


async def test_live_runner_over_a_mock_venue_ends_with_the_replays_books() -> None:
    symbols = list(VERIFIED)
    runner, books, mock = await runner_against_capture(CAPTURE, BitgetParser, symbols)
    assert runner.frames == len(mock.frames) and runner.connections == 1
    assert mock.rest_requests == ["/api/spot/v1/public/products"]
    parser = runner.parser
    assert parser.malformed == 0
    assert sum(s.stats.checksums_ok for s in parser.books.values()) == 443
    expected = replayed_books(CAPTURE, BitgetParser())
    assert {s: b.snapshot() for s, b in books.books.items()} == expected
    assert set(expected) == set(symbols)


@functools.cache
def fuzz_case() -> Case:
    return Case("bitget", capture_items(CAPTURE), BitgetParser, 0, 400, chained=False)


@fuzzed
def test_mutated_frames_never_raise_and_books_stay_exact_or_stale(data: st.DataObject) -> None:
    """The harness of test_fuzz_venues on this venue's capture (REST answers and frames)."""
    fuzz_case().fuzz(data)


@pytest.mark.services
def test_hub_feed_through_kafka_ends_with_the_replays_books(
    hub_process: Any, unique: str, services: dict[str, str]
) -> None:
    thread = VenueThread(MockCaptureVenue(CAPTURE))  # type: ignore[arg-type]
    port = thread.start()
    try:
        hub_process(
            "feed",
            "--source",
            "bitget",
            "--url",
            f"ws://127.0.0.1:{port}",
            "--rest-url",
            f"http://127.0.0.1:{port}",
            "--symbols",
            ",".join(VERIFIED),
            "--metrics-port",
            "0",
            env=stack_env(services, unique),
        )
        thread.wait_done(60)
        want = replayed_books(CAPTURE, BitgetParser())
        seen, seqs = asyncio.run(kafka_books(services["kafka"], f"{unique}.book", want))
    finally:
        thread.stop()
    assert seen == want
    for symbol in VERIFIED:
        assert seqs[symbol] == list(range(1, len(seqs[symbol]) + 1)), "gap-free per symbol"


def test_a_frame_on_no_symbol_resyncs_every_book() -> None:
    """Input 270 of the capture changes AVAXUSDT only past its top 25 levels: lost, no
    checksum would ever show it, so a frame that names no symbol must resync them all."""
    parser = BitgetParser()
    frames = loaded(parser, CAPTURE)
    for text, ts in frames[:200]:
        parser.on_frame(text, ts)
    live = [s for s, sync in parser.books.items() if sync.live]
    assert len(live) == 8
    events = parser.on_frame("null", 0)
    assert parser.reasons == {"shape": 1}
    assert sorted(e.symbol for e in events if isinstance(e, Status)) == sorted(live)
    assert not any(sync.live for sync in parser.books.values())
