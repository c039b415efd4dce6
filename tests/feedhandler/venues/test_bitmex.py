"""BitMEX ``orderBookL2`` from the real 2021 capture: 10 partials and 1,969 messages (554
insert, 1,490 update and 543 delete rows) with every id known, never crossed, exact
prices from JSON numbers; quotes agree with the book's best 343 of 426 times; a message
that contradicts the id book makes it stale until the next partial; a bad frame is
refused whole; the live runner against the capture ends with the replay's books."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from feedhandler.files.replay import EXCHANGES
from feedhandler.venues import VENUES
from feedhandler.venues.bitmex import BitmexParser
from feedhandler.venues.exact import exact_json
from hub.config import LIVE_SOURCES
from hub.events import BookUpdate, Status, Trade
from orderbook_core import L2Book
from tests.conftest import CAPTURES
from tests.feedhandler.fuzzing import Item, capture_items, fed
from tests.feedhandler.venues.capture_runner import check_capture, runner_against_capture
from tests.feedhandler.venues.id_fuzz import fuzz_test

CAPTURE = CAPTURES / "bitmex_orderbookl2-quote-trades_2021-07-22.jsonl.zst"
SYMBOLS = [
    "XRPU21",
    "UNIUSDT",
    "XBTUSD",
    "ADAUSDT",
    "SOLUSDT",
    "TRXU21",
    "EOSUSDT",
    "TRXUSDT",
    "BCHUSD",
    "MATICUSDT",
]
PARTIAL = '"table":"orderBookL2","action":"partial"'


def lines() -> list[Item]:
    return capture_items(CAPTURE)


def started(symbol: str = "XBTUSD") -> tuple[BitmexParser, list[tuple[str, str, str, int]]]:
    """A parser fed up to and including ``symbol``'s partial, and the lines after it."""
    items = lines()
    at = next(n for n, x in enumerate(items) if PARTIAL in x[2] and f'"{symbol}"' in x[2])
    parser = BitmexParser()
    fed(parser, items[: at + 1])
    return parser, items[at + 1 :]


def message(action: str, *rows: dict[str, Any]) -> str:
    return json.dumps({"table": "orderBookL2", "action": action, "data": list(rows)})


def test_the_capture_replays_every_id_known_and_never_crossed() -> None:
    rows: Counter[str] = Counter()
    for kind, _url, data, _ts in lines():
        msg = json.loads(data) if kind == "recv" and '"orderBookL2"' in data else {}
        if msg.get("action") in ("insert", "update", "delete"):
            rows[msg["action"]] += len(msg["data"])
    assert rows == {"insert": 554, "update": 1490, "delete": 543}
    parser = BitmexParser()
    mirrors: dict[str, L2Book] = {}
    for event in fed(parser, lines()):
        if isinstance(event, BookUpdate):
            book = mirrors.setdefault(event.symbol, L2Book())
            book.apply(event.changes)
            assert not book.is_crossed()
    assert sorted(parser.books) == sorted(SYMBOLS) == sorted(mirrors)
    stats = [s.stats for s in parser.books.values()]
    assert sum(s.snapshots for s in stats) == 10 and sum(s.updates for s in stats) == 1969
    assert sum(s.gaps + s.crossed + s.resyncs for s in stats) == 0
    assert parser.malformed == 0
    checks = Counter[str]()
    for symbol, sync in parser.books.items():
        assert sync.live and mirrors[symbol].snapshot() == sync.book.snapshot()
        checks.update(parser.extra_stats(symbol))
    assert checks == {
        "id_errors": 0,
        "quote_agrees": 343,
        "quote_disagrees": 83,
        "quote_sizes_agree": 94,
    }
    assert sum(parser.trades.values()) == 17  # inserts; the partials' old trades are not new


def test_prices_are_the_integers_of_their_json_number_text() -> None:
    parser, _rest = started("XRPU21")
    tick, lot = parser.units_for("XRPU21")
    assert (tick.text, lot.text) == ("0.00000001", "1")  # tickSize 1e-08, lotSize 1
    assert parser.instruments["XRPU21"]["multiplier"] == "100000000"
    assert parser.instruments["XBTUSD"]["isInverse"] == "true"
    book = parser.books["XRPU21"].book
    # {"id":56799992101,"side":"Sell","size":3000,"price":7.899e-05}
    assert parser.ids["XRPU21"].level(56799992101) == (1, 7899)
    assert (7899, 3000) in book.depth(1)
    assert exact_json('{"p": 7.899e-05}')["p"] == "7.899e-05"
    update = {"symbol": "XRPU21", "id": 56799992101, "side": "Sell", "size": 3500}
    assert parser.on_frame(message("update", update), 5)
    assert (7899, 3500) in book.depth(1)
    row = {"symbol": "XRPU21", "id": 1, "side": "Sell", "size": 1, "price": 1.2345e-09}
    parser.on_frame(message("insert", row), 6)
    assert parser.reasons == {"number": 1} and "more than 8 decimals" in parser.errors[-1]


@pytest.mark.parametrize(
    ("action", "row", "why"),
    [
        ("delete", {"id": 1, "side": "Buy"}, "delete of unknown id 1"),
        ("update", {"id": 1, "side": "Buy", "size": 5}, "update of unknown id 1"),
        (
            "insert",
            {"id": 56799992101, "side": "Sell", "size": 5, "price": 7.899e-05},
            "insert of id 56799992101, which the book already holds",
        ),
        (
            "update",
            {"id": 56799992101, "side": "Buy", "size": 5},
            "update of id 56799992101 names another level than the book holds",
        ),
    ],
)
def test_a_message_the_id_book_contradicts_makes_it_stale_until_the_next_partial(
    action: str, row: dict[str, Any], why: str
) -> None:
    parser, _rest = started("XRPU21")
    sync = parser.books["XRPU21"]
    before = sync.book.snapshot()
    events = parser.on_frame(message(action, {"symbol": "XRPU21", **row}), 7)
    assert events == [Status("BITMEX", "XRPU21", "stale", why, 0, 7)]
    assert sync.book.snapshot() == before and not sync.live
    assert sync.stats.gaps == 1 and parser.extra_stats("XRPU21")["id_errors"] == 1
    assert parser.malformed == 0
    partial = next(x[2] for x in lines() if PARTIAL in x[2] and '"XRPU21"' in x[2])
    events = parser.on_frame(partial, 8)
    assert sync.live and sync.stats.resynced == 1 and events[-1].state == "resynced"
    assert sync.book.snapshot() == before
    assert parser.recover(["XRPU21"]) == [
        '{"op": "unsubscribe", "args": ["orderBookL2:XRPU21"]}',
        '{"op": "subscribe", "args": ["orderBookL2:XRPU21"]}',
    ]


def test_a_malformed_message_is_refused_whole_with_its_reason() -> None:
    parser, _rest = started("XRPU21")
    sync = parser.books["XRPU21"]
    before = sync.book.snapshot()
    good = {"symbol": "XRPU21", "id": 56799992101, "side": "Sell", "size": 1}
    bad = {"symbol": "XRPU21", "id": 56799989301, "side": "Sell", "size": 1.5}
    events = parser.on_frame(message("update", good, bad), 9)
    assert events == [Status("BITMEX", "XRPU21", "stale", "malformed number", 0, 9)]
    assert sync.book.snapshot() == before
    assert (
        parser.reasons == {"number": 1}
        and "size '1.5' has more than 0 decimals" in parser.errors[-1]
    )
    assert all(s.live for name, s in parser.books.items() if name != "XRPU21")
    parser.on_frame('{"table": "orderBookL2", "action": "upsert", "data": []}', 10)
    assert parser.reasons == {"number": 1, "shape": 1}
    assert not any(s.live for s in parser.books.values())  # no symbol to pin it on
    error = '{"status":400,"error":"Unknown table: orderBookL3","meta":{}}'
    parser.on_frame(error, 11)
    assert parser.reasons["venue"] == 1 and "Unknown table" in parser.errors[-1]


def test_trades_are_normalised() -> None:
    parser = BitmexParser()
    trades = [e for e in fed(parser, lines()) if isinstance(e, Trade)]
    first = trades[0]
    assert (first.symbol, first.trade_id, first.price, first.size, first.side) == (
        "UNIUSDT",
        "39744121-c20e-44ba-8cc8-a6b8cdf72885",
        17297,
        52,
        0,
    )
    assert first.ts_event == 1626993370014000000


def test_registration_subscribe_heartbeat_and_the_check_command() -> None:
    spec = VENUES["bitmex"]
    assert "bitmex" in LIVE_SOURCES and EXCHANGES["BITMEX"] == "bitmex"
    assert (spec.url, spec.rest) == ("wss://ws.bitmex.com/realtime", "https://www.bitmex.com")
    parser = spec.parser()
    assert isinstance(parser, BitmexParser)
    assert parser.subscribe(["XBTUSD"]) == [
        '{"op": "subscribe", "args": ["orderBookL2:XBTUSD", "quote:XBTUSD", "trade:XBTUSD"]}'
    ]
    assert parser.heartbeat() == ["ping"] and parser.on_frame("pong", 1) == []
    assert parser.instrument_urls("https://www.bitmex.com") == [
        "https://www.bitmex.com/api/v1/instrument/active"
    ]
    out = check_capture(CAPTURE)
    summary = json.loads(out.stdout)
    assert summary["venue"] == "bitmex" and summary["malformed"] == 0
    symbols = summary["symbols"]
    assert sum(s["snapshots"] for s in symbols.values()) == 10
    assert sum(s["book_updates"] for s in symbols.values()) == 1969
    assert sum(s["quote_agrees"] for s in symbols.values()) == 343
    assert all(s["crossed"] == s["gaps"] == s["id_errors"] == 0 for s in symbols.values())
    assert symbols["XBTUSD"]["bids"][0] == ["32186.5", "1407700"]


async def test_the_live_runner_against_the_capture_ends_with_the_replays_books() -> None:
    runner, mirror, venue = await runner_against_capture(CAPTURE, BitmexParser, SYMBOLS, 1.0)
    parser = runner.parser
    assert venue.rest_requests == ["/api/v1/instrument/active"]
    assert json.loads(venue.received[0]) == json.loads(parser.subscribe(SYMBOLS)[0])
    assert "ping" in venue.received
    replayed = BitmexParser()
    fed(replayed, lines())
    for symbol in SYMBOLS:
        sync = parser.books[symbol]
        assert sync.live and sync.book.snapshot() == replayed.books[symbol].book.snapshot()
        assert mirror.books[symbol].snapshot() == sync.book.snapshot()
        assert sync.stats.updates == replayed.books[symbol].stats.updates
    assert mirror.states == []


test_mutated_frames_never_raise_and_books_stay_exact_or_stale = fuzz_test(
    "bitmex", CAPTURE, BitmexParser
)
