"""Gemini market data v2 from the real 2021 capture: 10 full books (the first
``l2_updates`` of each symbol, the one carrying ``trades``) and 645 updates, never
crossed; a crossed book is stale until the resubscription's full book; frames that come
before their symbol's details wait for them; malformed frames are refused with their
reason; trades; listings; the live runner ends with the replay's books."""

from __future__ import annotations

import json

from feedhandler.files.replay import EXCHANGES, replay_capture
from feedhandler.venues import VENUES
from feedhandler.venues.gemini import GeminiParser
from hub.config import LIVE_SOURCES
from hub.events import BookUpdate, Status, Trade
from tests.conftest import CAPTURES
from tests.feedhandler.fuzzing import Item, capture_items, fed
from tests.feedhandler.venues.capture_runner import check_capture, runner_against_capture

CAPTURE = CAPTURES / "gemini-spot_l2-trades_2021-06-24.jsonl.zst"
REST = "https://api.gemini.com"
UPDATES = {
    "ALCXUSD": 21,
    "ANKRUSD": 106,
    "BATBTC": 46,
    "BTCGBP": 152,
    "ETHEUR": 55,
    "FILUSD": 167,
    "GRTUSD": 75,
    "LINKETH": 15,
    "LTCETH": 2,
    "ZECLTC": 6,
}
SYMBOLS = list(UPDATES)


def lines() -> list[Item]:
    return capture_items(CAPTURE)


def update(symbol: str, *changes: tuple[str, str, str]) -> str:
    return json.dumps(
        {"type": "l2_updates", "symbol": symbol, "changes": [list(c) for c in changes]}
    )


def test_the_capture_replays_ten_full_books_and_645_updates_never_crossed() -> None:
    summary = replay_capture(CAPTURE)
    assert summary["venue"] == "gemini" and EXCHANGES["GEMINI"] == "gemini"
    assert summary["malformed"] == 0 and summary["bad_lines"] == 0
    symbols = summary["symbols"]
    assert {s: v["book_updates"] for s, v in symbols.items()} == UPDATES
    assert sum(UPDATES.values()) == 645
    for s in symbols.values():
        assert (s["snapshots"], s["gaps"], s["crossed"], s["resyncs"], s["live"]) == (
            1,
            0,
            0,
            0,
            True,
        )
    assert sum(s["trades"] for s in symbols.values()) == 16
    assert symbols["BTCGBP"]["bids"][0] == ["24175.82", "0.14802333"]
    assert symbols["LINKETH"]["asks"][0] == ["0.0093512", "54.189994"]
    out = check_capture(CAPTURE)
    assert json.loads(out.stdout)["venue"] == "gemini"


def test_units_and_listings_come_from_the_symbol_details() -> None:
    parser = GeminiParser()
    fed(parser, [x for x in lines() if x[0] == "http"])
    assert [u.text for u in parser.units_for("BTCGBP")] == ["0.01", "0.00000001"]
    assert [u.text for u in parser.units_for("LINKETH")] == ["0.0000001", "0.000001"]
    assert parser.listings["BTCUSD"].canonical == "BTC-USD"
    assert parser.listings["1INCHUSD"].canonical == "1INCH-USD"


def test_frames_before_their_details_wait_for_them() -> None:
    """The order the live runner sees: the subscription's frames, then the details."""
    items = lines()
    details = [x for x in items if x[0] == "http"]
    replayed, parser = GeminiParser(), GeminiParser()
    fed(replayed, items)
    parser.subscribe(SYMBOLS)
    assert fed(parser, [x for x in items if x[0] == "recv"]) == []
    assert sorted(parser.pending) == sorted(SYMBOLS)
    assert parser.snapshot_urls(REST, ["BTCGBP"]) == [f"{REST}/v1/symbols/details/btcgbp"]
    events = fed(parser, details)
    assert sum(isinstance(e, BookUpdate) for e in events) == 655 and parser.pending == {}
    for symbol in SYMBOLS:
        assert parser.books[symbol].book.snapshot() == replayed.books[symbol].book.snapshot()
    assert parser.snapshot_urls(REST, ["BTCGBP"]) == []


def test_a_crossed_book_is_stale_until_the_resubscriptions_full_book() -> None:
    parser = GeminiParser()
    items = lines()
    fed(parser, items)
    sync = parser.books["BTCGBP"]
    ask = sync.book.best_ask()
    assert ask is not None
    tick = parser.units_for("BTCGBP")[0]
    events = parser.on_frame(update("BTCGBP", ("buy", tick.to_str(ask[0] + 1), "1")), 3)
    assert [(e.state, e.reason) for e in events if isinstance(e, Status)] == [("stale", "crossed")]
    assert [json.loads(m) for m in parser.recover(["BTCGBP"])] == [
        {"type": "unsubscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCGBP"]}]},
        {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCGBP"]}]},
    ]
    assert parser.on_frame(update("BTCGBP", ("sell", "30000.00", "1")), 4) == []  # dropped
    first = json.loads(next(x[2] for x in items if '"BTCGBP"' in x[2] and '"trades"' in x[2]))
    events = parser.on_frame(json.dumps(first), 5)
    assert [e.state for e in events if isinstance(e, Status)] == ["resynced"]
    fresh = GeminiParser()
    fed(fresh, [x for x in items if x[0] == "http"])
    fresh.on_frame(json.dumps(first), 5)
    assert sync.live and sync.book.snapshot() == fresh.books["BTCGBP"].book.snapshot()


def test_malformed_frames_are_refused_with_a_reason() -> None:
    parser = GeminiParser()
    fed(parser, lines()[:120])
    before = parser.books["BTCGBP"].book.snapshot()
    events = parser.on_frame(update("BTCGBP", ("buy", "9" * 70, "1")), 1)
    assert events == [Status("GEMINI", "BTCGBP", "stale", "malformed range", 0, 1)]
    assert parser.books["BTCGBP"].book.snapshot() == before and "price" in parser.errors[-1]
    assert [s for s, b in parser.books.items() if not b.live] == ["BTCGBP"]
    parser.on_frame(update("BTCGBP", ("bid", "24000.00", "1")), 1)
    assert parser.reasons["shape"] == 1 and "side" in parser.errors[-1]
    trade = '{"type":"trade","symbol":"FILUSD","event_id":1,"timestamp":1,"price":"x"}'
    assert parser.on_frame(trade, 1) == [] and parser.reasons["number"] == 1
    events = parser.on_frame(update("NOPEUSD", ("buy", "1", "1")), 1)
    assert parser.reasons["symbol"] == 1 and not any(b.live for b in parser.books.values())
    parser.on_frame('{"type":"l3_updates","symbol":"BTCGBP"}', 1)
    assert parser.reasons["shape"] == 2
    assert parser.on_frame('{"type":"heartbeat","timestamp":1624493666869}', 1) == []
    bad = '{"symbol":"X","base_currency":"X","quote_currency":"USD","tick_size":"1E-8",'
    parser.on_http(f"{REST}/v1/symbols/details/x", bad + '"quote_increment":0.01}', 1)
    assert parser.reasons["shape"] == 3 and "X" not in parser.units  # a string, not a number
    assert parser.malformed == 6


def test_trades_are_normalised() -> None:
    parser = GeminiParser()
    trades = [e for e in fed(parser, lines()) if isinstance(e, Trade)]
    assert len(trades) == 16  # the full books' recent trades are history, not published
    first = trades[0]
    assert (first.symbol, first.trade_id, first.price, first.size, first.side) == (
        "ANKRUSD",
        "45465818387",
        7946,
        1020482111,
        0,
    )
    assert first.ts_event == 1624493670759 * 1_000_000 and first.seq == 1
    assert {t.side for t in trades} <= {0, 1}


def test_registration_and_subscribe() -> None:
    spec = VENUES["gemini"]
    assert "gemini" in LIVE_SOURCES
    assert (spec.url, spec.rest) == ("wss://api.gemini.com/v2/marketdata", REST)
    parser = spec.parser()
    assert isinstance(parser, GeminiParser)
    assert [json.loads(m) for m in parser.subscribe(["BTCUSD", "ETHUSD"])] == [
        {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSD", "ETHUSD"]}]}
    ]
    assert parser.heartbeat_s == 0 and parser.instrument_urls(REST) == []


async def test_the_live_runner_against_the_capture_ends_with_the_replays_books() -> None:
    runner, mirror, venue = await runner_against_capture(CAPTURE, GeminiParser, SYMBOLS)
    parser = runner.parser
    assert isinstance(parser, GeminiParser)
    assert json.loads(venue.received[0]) == json.loads(parser.subscribe(SYMBOLS)[0])
    assert sorted(venue.rest_requests) == sorted(
        f"/v1/symbols/details/{s.lower()}" for s in SYMBOLS
    )
    assert parser.malformed == 0 and parser.pending == {}
    replayed = GeminiParser()
    fed(replayed, lines())
    for symbol in SYMBOLS:
        sync = parser.books[symbol]
        assert sync.live and sync.book.snapshot() == replayed.books[symbol].book.snapshot()
        assert mirror.books[symbol].snapshot() == sync.book.snapshot()
    assert mirror.states == []
