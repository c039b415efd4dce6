"""Bybit v2 ``orderBookL2_25`` from the real 2021 capture: 8 snapshots and 3,252 deltas with
every id known, 25 levels a side throughout, exact prices and sizes; a message that
contradicts the id book makes it stale until the next snapshot; a bad frame is refused
whole; the live runner against the capture played over a WebSocket ends with the replay's
books."""

from __future__ import annotations

import json
from typing import Any

import pytest

from feedhandler.files.replay import EXCHANGES, replay_capture
from feedhandler.venues import VENUES
from feedhandler.venues.bybit import BybitParser
from hub.config import LIVE_SOURCES
from hub.events import BookUpdate, Status, Trade
from orderbook_core import L2Book
from tests.conftest import CAPTURES
from tests.feedhandler.fuzzing import Item, capture_items, fed
from tests.feedhandler.venues.capture_runner import check_capture, runner_against_capture
from tests.feedhandler.venues.id_fuzz import fuzz_test

CAPTURE = CAPTURES / "bybit-usdt-perp_orderbookl2-25-trades_2021-04-17.jsonl.zst"
SYMBOLS = ["BCHUSDT", "XTZUSDT", "UNIUSDT", "LTCUSDT", "DOTUSDT", "LINKUSDT", "ADAUSDT", "ETHUSDT"]
SNAPSHOT = '"orderBookL2_25.BCHUSDT","type":"snapshot"'


def lines() -> list[Item]:
    return capture_items(CAPTURE)


def started() -> tuple[BybitParser, list[tuple[str, str, str, int]]]:
    """A parser fed up to and including BCHUSDT's snapshot, and the lines after it."""
    items = lines()
    at = next(n for n, x in enumerate(items) if SNAPSHOT in x[2])
    parser = BybitParser()
    fed(parser, items[: at + 1])
    return parser, items[at + 1 :]


def delta(**parts: list[dict[str, Any]]) -> str:
    data = {key: parts.get(key, []) for key in ("delete", "update", "insert")}
    return json.dumps(
        {
            "topic": "orderBookL2_25.BCHUSDT",
            "type": "delta",
            "data": data,
            "cross_seq": "999999999999",
            "timestamp_e6": "1618677790000000",
        }
    )


def test_the_capture_replays_every_id_known_and_25_levels_a_side() -> None:
    parser = BybitParser()
    mirrors: dict[str, L2Book] = {}
    for event in fed(parser, lines()):
        if isinstance(event, BookUpdate):
            book = mirrors.setdefault(event.symbol, L2Book())
            book.apply(event.changes)
            assert not book.is_crossed()
            assert book.level_count(0) == book.level_count(1) == 25
    assert sorted(parser.books) == sorted(SYMBOLS) == sorted(mirrors)
    stats = [s.stats for s in parser.books.values()]
    assert sum(s.snapshots for s in stats) == 8 and sum(s.updates for s in stats) == 3252
    assert sum(s.gaps + s.crossed + s.resyncs for s in stats) == 0
    assert parser.malformed == 0
    for symbol, sync in parser.books.items():
        assert sync.live and mirrors[symbol].snapshot() == sync.book.snapshot()
        assert parser.extra_stats(symbol) == {
            "id_errors": 0,
            "depth_violations": 0,
            "cross_seq_regressions": 0,
        }
    assert sum(parser.trades.values()) == 101


def test_prices_and_sizes_are_the_integers_of_their_text() -> None:
    parser, _rest = started()
    tick, lot = parser.units_for("BCHUSDT")
    assert (tick.text, lot.text) == ("0.01", "0.01")  # price_scale 2, qty_step "0.01"
    assert parser.instruments["BCHUSDT"]["tick_size"] == "0.05"
    book = parser.books["BCHUSDT"].book
    assert book.depth(0)[-1] == (105305, 263)  # "1053.05" x 2.63: the snapshot's lowest bid
    assert parser.ids["BCHUSDT"].level("10530500") == (0, 105305)
    # A size printed from a 32-bit float is the lot it stands for; one off the grid is refused.
    assert parser.on_frame(delta(update=[row("10530500", "Buy", "1053.05", "12.849999")]), 5)
    assert book.depth(0)[-1] == (105305, 1285)
    parser.on_frame(delta(update=[row("10530500", "Buy", "1053.05", "12.855")]), 6)
    assert parser.reasons == {"number": 1} and "12.855' is off the lot grid" in parser.errors[-1]
    assert not parser.books["BCHUSDT"].live


def row(i: str, side: str, price: str, size: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"price": price, "symbol": "BCHUSDT", "id": i, "side": side}
    if size is not None:
        out["size"] = json.loads(size)  # a JSON number, as Bybit sends
    return out


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (lambda: delta(delete=[row("1", "Buy", "0.01")]), "delete of unknown id 1"),
        (lambda: delta(update=[row("1", "Buy", "0.01", "1")]), "update of unknown id 1"),
        (
            lambda: delta(insert=[row("10530500", "Buy", "1053.05", "1")]),
            "insert of id 10530500, which the book already holds",
        ),
        (
            lambda: delta(delete=[row("10530500", "Sell", "1053.05")]),
            "delete of id 10530500 names another level than the book holds",
        ),
    ],
)
def test_a_message_the_id_book_contradicts_makes_it_stale_until_the_next_snapshot(
    frame: Any, why: str
) -> None:
    parser, rest = started()
    sync = parser.books["BCHUSDT"]
    before = sync.book.snapshot()
    events = parser.on_frame(frame(), 7)
    assert events == [Status("BYBIT", "BCHUSDT", "stale", why, 0, 7)]
    assert sync.book.snapshot() == before and not sync.live  # nothing of it applied
    assert sync.stats.gaps == 1 and parser.extra_stats("BCHUSDT")["id_errors"] == 1
    assert parser.malformed == 0
    fed(parser, rest[:50])  # deltas while stale are dropped, not checked
    assert not sync.live and parser.extra_stats("BCHUSDT")["id_errors"] == 1
    snapshot = json.loads(next(x[2] for x in lines() if SNAPSHOT in x[2]))
    snapshot["cross_seq"] = "999999999999"  # as a resubscription brings it
    events = parser.on_frame(json.dumps(snapshot), 8)
    assert sync.live and sync.stats.resynced == 1
    assert events[-1] == Status("BYBIT", "BCHUSDT", "resynced", "snapshot", 1618677786389362000, 8)
    assert parser.recover(["BCHUSDT"]) == [
        '{"op": "unsubscribe", "args": ["orderBookL2_25.BCHUSDT"]}',
        '{"op": "subscribe", "args": ["orderBookL2_25.BCHUSDT"]}',
    ]


def test_a_side_short_of_25_levels_or_a_falling_cross_seq_is_a_gap() -> None:
    parser, _rest = started()
    parser.on_frame(delta(delete=[row("10530500", "Buy", "1053.05")]), 9)
    assert parser.extra_stats("BCHUSDT")["depth_violations"] == 1
    assert parser.books["BCHUSDT"].stale_reason == "24 bid and 25 ask levels, not 25"
    parser, _rest = started()
    old = json.loads(delta())
    old["cross_seq"] = "864131773"  # the snapshot's own
    events = parser.on_frame(json.dumps(old), 9)
    assert events[0] == Status(
        "BYBIT", "BCHUSDT", "stale", "cross_seq 864131773 after 864131773", 0, 9
    )
    assert parser.extra_stats("BCHUSDT")["cross_seq_regressions"] == 1


def test_a_malformed_delta_is_refused_whole_with_its_reason() -> None:
    parser, _rest = started()
    sync = parser.books["BCHUSDT"]
    before = sync.book.snapshot()
    good = row("10530500", "Buy", "1053.05", "3")
    bad = row("10531000", "Buy", "1053.10", "1")
    bad["price"] = "9" * 70
    events = parser.on_frame(delta(update=[good, bad]), 10)
    assert events == [Status("BYBIT", "BCHUSDT", "stale", "malformed range", 0, 10)]
    assert sync.book.snapshot() == before and parser.ids["BCHUSDT"].level("10530500")
    assert parser.reasons == {"range": 1} and "price has 70 characters" in parser.errors[-1]
    others = [s for s in SYMBOLS if s in parser.books and s != "BCHUSDT"]
    assert all(parser.books[s].live for s in others)
    # A frame that names no book it could be pinned on stales every book of the connection.
    parser.on_frame('{"topic": 5}', 11)
    assert parser.reasons == {"range": 1, "shape": 1}
    assert not any(s.live for s in parser.books.values())


def test_trades_are_normalised() -> None:
    parser = BybitParser()
    trades = [e for e in fed(parser, lines()) if isinstance(e, Trade)]
    first = trades[0]
    assert (first.symbol, first.trade_id, first.price, first.size, first.side) == (
        "BCHUSDT",
        "01cacfe9-8d1c-5ee4-995d-d79a43f955a6",
        105390,
        14,
        0,
    )
    recv = next(x[3] for x in lines() if x[0] == "recv")
    assert first.ts_event == 1618677785116 * 1_000_000 and first.ts_recv == recv


def test_subscribe_heartbeat_and_the_check_command() -> None:
    spec = VENUES["bybit-v2"]
    assert "bybit-v2" in LIVE_SOURCES and EXCHANGES["BYBIT"] == "bybit"  # v5, reads v2 too
    assert (spec.url, spec.rest) == (
        "wss://stream.bybit.com/realtime_public",
        "https://api.bybit.com",
    )
    parser = spec.parser()
    assert isinstance(parser, BybitParser)
    assert parser.subscribe(["BTCUSDT"]) == [
        '{"op": "subscribe", "args": ["trade.BTCUSDT"]}',
        '{"op": "subscribe", "args": ["orderBookL2_25.BTCUSDT"]}',
    ]
    assert parser.heartbeat() == ['{"op":"ping"}'] and parser.heartbeat_s == 20.0
    pong = '{"success":true,"ret_msg":"pong","conn_id":"x","request":{"op":"ping","args":null}}'
    assert parser.on_frame(pong, 1) == [] and parser.malformed == 0
    out = check_capture(CAPTURE)
    summary = json.loads(out.stdout)
    assert summary["venue"] == "bybit" and summary["malformed"] == 0
    symbols = summary["symbols"]
    assert sum(s["snapshots"] for s in symbols.values()) == 8
    assert sum(s["book_updates"] for s in symbols.values()) == 3252
    assert all(s["crossed"] == s["gaps"] == s["id_errors"] == 0 for s in symbols.values())
    assert symbols["BCHUSDT"]["bids"][0] == ["1056.25", "24.33"]
    assert replay_capture(CAPTURE, "bybit-v2")["symbols"] == symbols  # the v2 parser's own


async def test_the_live_runner_against_the_capture_ends_with_the_replays_books() -> None:
    runner, mirror, venue = await runner_against_capture(CAPTURE, BybitParser, SYMBOLS, 1.0)
    parser = runner.parser
    assert venue.rest_requests == ["/v2/public/symbols"]
    assert '{"op":"ping"}' in venue.received  # the runner sends the parser's heartbeats
    assert json.loads(venue.received[0]) == json.loads(parser.subscribe(SYMBOLS)[0])
    replayed = BybitParser()
    fed(replayed, lines())
    replay = replay_capture(CAPTURE)["symbols"]
    for symbol in SYMBOLS:
        sync = parser.books[symbol]
        assert sync.live and sync.book.snapshot() == replayed.books[symbol].book.snapshot()
        assert mirror.books[symbol].snapshot() == sync.book.snapshot()
        assert sync.stats.updates == replay[symbol]["book_updates"]
        tick, lot = parser.units_for(symbol)
        bids = [[tick.to_str(p), lot.to_str(s)] for p, s in sync.book.depth(0, 5)]
        assert bids == replay[symbol]["bids"]
    assert mirror.states == []


test_mutated_frames_never_raise_and_books_stay_exact_or_stale = fuzz_test(
    "bybit-v2", CAPTURE, BybitParser
)
