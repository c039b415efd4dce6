"""Deribit from the real 2021 capture: 10 option books (snapshot + 36 changes) with an
unbroken ``change_id``/``prev_change_id`` chain, never crossed, and all 89 tickers equal
to the book as of their own timestamp; a broken chain or an entry the book contradicts
makes the book stale until the snapshot a resubscribe brings; malformed frames are
refused whole; ``test_request`` is answered with ``public/test``; trades are normalised;
listings (options, futures, perpetuals) from the instruments answers; the live runner
against the capture over a real WebSocket ends with the replay's books."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import orjson
import zstandard
from hypothesis import strategies as st

from feedhandler.files.replay import EXCHANGES, check_failures, replay_capture
from feedhandler.venues import VENUES
from feedhandler.venues.deribit import DeribitParser
from hub.config import LIVE_SOURCES
from hub.events import BUY, SELL, BookUpdate, Status, Trade
from tests.conftest import CAPTURES
from tests.feedhandler.fuzzing import Case, capture_items, fuzzed
from tests.feedhandler.venues.capture_runner import check_capture, runner_against_capture
from tests.feedhandler.venues.test_okx import loaded, replayed_books

CAPTURE = CAPTURES / "deribit-options_book-raw-ticker_2021-07-22.jsonl.zst"
CHANGES = {
    "BTC-24JUN22-15000-C": 0,
    "BTC-24SEP21-34000-P": 1,
    "BTC-24SEP21-8000-P": 30,
    "BTC-25MAR22-30000-C": 0,
    "BTC-30JUL21-24000-P": 0,
    "BTC-31DEC21-300000-C": 1,
    "BTC-31DEC21-34000-P": 3,
    "ETH-23JUL21-2300-C": 0,
    "ETH-27AUG21-4000-P": 0,
    "ETH-30JUL21-2800-C": 1,
}
"""Changes per book: 36 in all, the README's figure."""
BUSY = "BTC-24SEP21-8000-P"
REST = "https://www.deribit.com/api/v2/public/get_instruments"


def changes(frames: list[tuple[str, int]], instrument: str) -> list[int]:
    marker = f'"channel":"book.{instrument}.raw","data":{{"type":"change"'
    return [i for i, (t, _) in enumerate(frames) if marker in t]


def started(instrument: str = BUSY) -> tuple[DeribitParser, list[tuple[str, int]]]:
    """A parser fed up to and including ``instrument``'s snapshot, and the frames after it."""
    parser = DeribitParser()
    frames = loaded(parser, CAPTURE)
    marker = f'"channel":"book.{instrument}.raw","data":{{"type":"snapshot"'
    at = next(i for i, (t, _) in enumerate(frames) if marker in t)
    for text, ts in frames[: at + 1]:
        parser.on_frame(text, ts)
    return parser, frames[at + 1 :]


def notification(channel: str, data: object) -> str:
    return json.dumps(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
    )


def snapshot_frame(parser: DeribitParser, instrument: str) -> str:
    """The book ``parser`` holds as Deribit would send it on a resubscribe."""
    sync = parser.books[instrument]
    tick, lot = parser.units_for(instrument)

    def side(n: int) -> str:
        return (
            "["
            + ",".join(f'["new",{tick.to_str(p)},{lot.to_str(a)}]' for p, a in sync.book.depth(n))
            + "]"
        )

    change_id = parser.change_ids[instrument]
    data = (
        f'{{"type":"snapshot","timestamp":1626993799000,"instrument_name":"{instrument}",'
        f'"change_id":{change_id},"bids":{side(0)},"asks":{side(1)}}}'
    )
    return notification(f"book.{instrument}.raw", "@").replace('"@"', data)


def test_the_capture_replays_an_unbroken_chain_and_every_ticker_equal_to_the_book() -> None:
    summary = replay_capture(CAPTURE)
    assert summary["venue"] == "deribit" and EXCHANGES["DERIBIT"] == "deribit"
    assert summary["malformed"] == 0 and summary["bad_lines"] == 0
    symbols = summary["symbols"]
    assert {s: v["book_updates"] for s, v in symbols.items()} == CHANGES
    assert sum(CHANGES.values()) == 36
    for s in symbols.values():
        assert (s["gaps"], s["crossed"], s["resyncs"], s["entry_errors"]) == (0, 0, 0, 0)
        assert s["live"] and s["snapshots"] == 1 and s["ticker_mismatches"] == 0
    assert sum(s["ticker_matches"] for s in symbols.values()) == 89
    assert symbols[BUSY]["ticker_matches"] == 31
    assert symbols[BUSY]["asks"][0] == ["0.0015", "94.7"]
    assert check_failures(summary) == []


def test_check_command_recognises_the_venue_from_the_header() -> None:
    out = check_capture(CAPTURE)
    summary = json.loads(out.stdout)
    assert summary["venue"] == "deribit"
    assert sum(s["snapshots"] for s in summary["symbols"].values()) == 10


def test_units_and_listings_from_the_instruments_answers() -> None:
    parser = DeribitParser()
    loaded(parser, CAPTURE)
    assert [u.text for u in parser.units_for(BUSY)] == ["0.0001", "0.1"]  # 0.0005, 0.1
    assert [u.text for u in parser.units_for("ETH-30JUL21-2800-C")] == ["0.0001", "1"]
    assert [u.text for u in parser.units_for("BTC-PERPETUAL")] == ["0.1", "1"]  # 0.5, 10 USD
    call = parser.listings["BTC-27AUG21-40000-C"]
    assert (call.canonical, call.kind, call.settle, call.inverse, call.contract_size) == (
        "BTC-USD-20210827-40000-C",
        "option",
        "BTC",
        False,  # sized in BTC (one rule: contract_size in quote only when inverse)
        "1",
    )
    assert (call.strike, call.right, call.expiry) == ("40000", "C", "20210827")
    swap = parser.listings["BTC-PERPETUAL"]
    assert (swap.canonical, swap.settle, swap.inverse, swap.contract_size) == (
        "BTC-USD-PERP",
        "BTC",
        True,
        "10",
    )
    assert parser.listings["BTC-24SEP21"].canonical == "BTC-USD-20210924"
    assert parser.listings["ETH-23JUL21-2050-P"].canonical == "ETH-USD-20210723-2050-P"
    linear = parser.listings["UNI_USDC-PERPETUAL"]  # the 2022 shape: future_type, settlement
    assert (linear.canonical, linear.settle, linear.inverse) == ("UNI-USDC-PERP", "USDC", False)
    assert parser.listings["SOL-24JUN22"].inverse  # future_type "reversed"
    assert len(parser.listings) == len(parser.units) == 1017


def test_a_broken_chain_makes_the_book_stale_until_the_resubscribe_snapshot() -> None:
    truth, parser = DeribitParser(interval="raw"), DeribitParser(interval="raw")
    frames = loaded(truth, CAPTURE)
    loaded(parser, CAPTURE)
    mine = changes(frames, BUSY)
    lost, nxt = mine[10], mine[11]
    for text, ts in frames[:lost]:
        truth.on_frame(text, ts)
        parser.on_frame(text, ts)
    truth.on_frame(*frames[lost])  # the parser never sees it
    for text, ts in frames[lost + 1 : nxt]:
        truth.on_frame(text, ts)
        parser.on_frame(text, ts)
    events = parser.on_frame(*frames[nxt])
    truth.on_frame(*frames[nxt])
    sync = parser.books[BUSY]
    assert [(e.state, e.reason) for e in events if isinstance(e, Status)] == [("stale", "gap")]
    assert (sync.stats.gaps, sync.live) == (1, False)
    assert [json.loads(m) for m in parser.recover([BUSY])] == [
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "public/unsubscribe",
            "params": {"channels": [f"book.{BUSY}.raw"]},
        },
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "public/subscribe",
            "params": {"channels": [f"book.{BUSY}.raw"]},
        },
    ]
    assert all(s.live for name, s in parser.books.items() if name != BUSY)
    events = parser.on_frame(snapshot_frame(truth, BUSY), 0)
    assert sync.live and sync.stats.resynced == 1
    assert [e.state for e in events if isinstance(e, Status)] == ["resynced"]
    for text, ts in frames[nxt + 1 :]:
        truth.on_frame(text, ts)
        parser.on_frame(text, ts)
    assert sync.live and sync.stats.gaps == 1
    assert sync.stats.updates == truth.books[BUSY].stats.updates - 2
    assert sync.book.snapshot() == truth.books[BUSY].book.snapshot()


def test_an_entry_the_book_contradicts_makes_it_stale() -> None:
    parser, frames = started()
    sync = parser.books[BUSY]
    before = sync.book.snapshot()
    change = json.loads(frames[changes(frames, BUSY)[0]][0])  # asks [["new",0.001,2.6]]
    data = change["params"]["data"]
    data["asks"] = [["change", 0.001, 2.7]]  # 0.001 is not on the book
    events = parser.on_frame(json.dumps(change), 5)
    why = "change of price 10 on side 1, which the book does not hold"
    assert events == [Status("DERIBIT", BUSY, "stale", why, 0, 5)]
    assert sync.book.snapshot() == before and sync.stats.gaps == 1
    assert parser.extra_stats(BUSY)["entry_errors"] == 1 and parser.malformed == 0
    parser.on_frame(snapshot_frame(parser, BUSY), 6)
    data["asks"] = [["new", 0.0015, 1.0]]  # 0.0015 is the best ask already
    (stale,) = parser.on_frame(json.dumps(change), 7)
    assert isinstance(stale, Status) and stale.state == "stale"
    # A delete then a new of the same price in one change is consistent.
    parser.on_frame(snapshot_frame(parser, BUSY), 8)
    data["asks"] = [["delete", 0.0015, 0.0], ["new", 0.0015, 1.0]]
    (update,) = parser.on_frame(json.dumps(change), 9)
    assert isinstance(update, BookUpdate) and update.changes == ((SELL, 15, 0), (SELL, 15, 10))
    assert sync.live and sync.book.depth(SELL, 1) == [(15, 10)]


def test_a_malformed_frame_is_refused_whole_with_its_reason() -> None:
    parser, frames = started()
    sync = parser.books[BUSY]
    before = sync.book.snapshot()
    change = json.loads(frames[changes(frames, BUSY)[0]][0])
    change["params"]["data"]["asks"].append(["new", "0.002", 1.0])  # a string price
    events = parser.on_frame(json.dumps(change), 3)
    assert events == [Status("DERIBIT", BUSY, "stale", "malformed shape", 0, 3)]
    assert "price must be a number, got string" in parser.errors[-1]
    assert sync.book.snapshot() == before
    assert all(s.live for name, s in parser.books.items() if name != BUSY)
    change["params"]["data"]["asks"] = [["new", 0.00125, 1.0]]  # off the 4 decimals
    parser.on_frame(json.dumps(change), 4)
    assert parser.reasons["number"] == 1
    change["params"]["data"]["type"] = "delta"
    parser.on_frame(json.dumps(change), 5)
    assert "book message type 'delta'" in parser.errors[-1]
    error = '{"jsonrpc":"2.0","id":7,"error":{"message":"Invalid params","code":-32602}}'
    assert parser.on_frame(error, 6) == []
    assert parser.reasons["venue"] == 1 and "-32602: Invalid params" in parser.errors[-1]
    ticker = notification(f"ticker.{BUSY}.raw", {"timestamp": 1, "best_bid_price": "x"})
    parser.on_frame(ticker, 7)
    assert parser.reasons["shape"] == 3
    parser.on_frame('{"jsonrpc":"2.0","id":1,"result":["book.X.raw"]}', 8)
    parser.on_frame("{not json", 9)
    assert parser.malformed == 6 and parser.reasons["json"] == 1


def test_tickers_are_compared_with_the_book_as_of_their_own_time() -> None:
    parser, frames = started()
    first = changes(frames, BUSY)[0]
    ticker = frames[first - 1][0]  # stamped like the change after it, which it reflects
    assert '"best_ask_price":0.001,' in ticker and f"ticker.{BUSY}" in ticker
    before = parser.extra_stats(BUSY)["ticker_matches"]
    parser.on_frame(*frames[first - 1])
    assert parser.extra_stats(BUSY)["ticker_mismatches"] == 1  # provisional: no change yet
    parser.on_frame(*frames[first])  # the change it reflects (same timestamp)
    parser.on_frame(*frames[first + 1])  # a later ticker, then a later change resolve it
    parser.on_frame(*frames[first + 2])
    stats = parser.extra_stats(BUSY)
    assert (stats["ticker_matches"], stats["ticker_mismatches"]) == (before + 2, 0)
    wrong = orjson.loads(frames[first + 1][0])
    wrong["params"]["data"]["best_bid_amount"] = 1.0
    wrong["params"]["data"]["timestamp"] = 1626993724400
    parser.on_frame(orjson.dumps(wrong).decode(), 1)
    later = changes(frames, BUSY)[2]
    parser.on_frame(*frames[later])  # stamped 1626993726344: judges the wrong ticker
    assert parser.extra_stats(BUSY)["ticker_mismatches"] == 1


def test_heartbeats_and_test_requests() -> None:
    parser = DeribitParser()
    subscribe, heartbeat = (json.loads(m) for m in parser.subscribe([BUSY]))
    assert subscribe["method"] == "public/subscribe" and subscribe["id"] == 0
    assert subscribe["params"]["channels"] == [
        f"book.{BUSY}.100ms",
        f"trades.{BUSY}.100ms",
        f"ticker.{BUSY}.100ms",
    ]
    assert heartbeat == {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "public/set_heartbeat",
        "params": {"interval": 30},
    }
    beat = '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}'
    assert parser.on_frame(beat, 1) == [] and parser.answers() == []
    request = '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'
    assert parser.on_frame(request, 2) == []
    assert [json.loads(m) for m in parser.answers()] == [
        {"jsonrpc": "2.0", "id": 2, "method": "public/test", "params": {}}
    ]
    assert parser.answers() == []  # each answer once
    assert parser.on_frame('{"jsonrpc":"2.0","id":2,"result":{"version":"1.2.26"}}', 3) == []
    assert parser.malformed == 0


def test_trades_are_normalised() -> None:
    parser, _frames = started()
    row = {
        "trade_seq": 30,
        "trade_id": "48079269",
        "timestamp": 1626993740123,
        "tick_direction": 2,
        "price": 0.0015,
        "mark_price": 0.00090376,
        "iv": 133.0,
        "instrument_name": BUSY,
        "index_price": 32201.67,
        "direction": "sell",
        "amount": 2.7,
    }
    (trade,) = parser.on_frame(notification(f"trades.{BUSY}.raw", [row]), 7)
    assert trade == Trade("DERIBIT", BUSY, 1, "48079269", 15, 27, SELL, 1626993740123000000, 7)
    (buy,) = parser.on_frame(
        notification(f"trades.{BUSY}.raw", [dict(row, direction="buy", trade_id=5)]), 8
    )
    assert isinstance(buy, Trade) and (buy.side, buy.trade_id, buy.seq) == (BUY, "5", 2)
    parser.on_frame(notification(f"trades.{BUSY}.raw", [dict(row, amount=0.05)]), 9)
    assert parser.reasons == {"number": 1} and parser.books[BUSY].live  # a trade stales no book


def test_registration() -> None:
    spec = VENUES["deribit"]
    assert "deribit" in LIVE_SOURCES
    assert (spec.url, spec.rest) == ("wss://www.deribit.com/ws/api/v2", "https://www.deribit.com")
    parser = spec.parser()
    assert isinstance(parser, DeribitParser) and parser.heartbeat_s == 0
    assert parser.instrument_urls(spec.rest)[0] == f"{REST}?currency=BTC&expired=false"


def with_test_request(tmp_path: Path) -> Path:
    """The capture with a ``test_request`` from the venue right after its first frame."""
    with CAPTURE.open("rb") as f:
        lines = zstandard.ZstdDecompressor().stream_reader(f).read().decode().splitlines()
    first = next(i for i, line in enumerate(lines) if json.loads(line)["t"] == "recv")
    request = {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
    recv = json.loads(lines[first])
    lines.insert(first + 1, json.dumps({**recv, "data": json.dumps(request)}))
    out = tmp_path / "deribit-test-request.jsonl"
    out.write_text("\n".join(lines) + "\n")
    return out


async def test_the_live_runner_against_the_capture_ends_with_the_replays_books(
    tmp_path: Path,
) -> None:
    path = with_test_request(tmp_path)
    symbols = list(CHANGES)
    answer = '{"jsonrpc": "2.0", "id": 2, "method": "public/test", "params": {}}'
    runner, mirror, venue = await runner_against_capture(
        path, DeribitParser, symbols, expect=[answer]
    )
    parser = runner.parser
    assert sorted(venue.rest_requests) == sorted(
        f"/api/v2/public/get_instruments?currency={c}&expired=false"
        for c in ("BTC", "ETH", "SOL", "USDC")
    )
    sent = [json.loads(m) for m in venue.received]
    assert [m["method"] for m in sent] == [
        "public/subscribe",
        "public/set_heartbeat",
        "public/test",
    ]
    assert runner.frames == len(venue.frames) and parser.malformed == 0
    expected = replayed_books(CAPTURE, DeribitParser())
    assert {s: b.snapshot() for s, b in mirror.books.items()} == expected
    assert set(expected) == set(symbols) and mirror.states == []
    assert sum(parser.extra_stats(s)["ticker_matches"] for s in symbols) == 89


@functools.cache
def fuzz_case() -> Case:
    return Case("deribit", capture_items(CAPTURE), DeribitParser, 2, 300)


@fuzzed
def test_mutated_frames_never_raise_and_books_stay_exact_or_stale(data: st.DataObject) -> None:
    """The harness of test_fuzz_venues on this venue's capture (the BTC and ETH instruments
    answers, inputs 0 and 1, are kept)."""
    fuzz_case().fuzz(data)
