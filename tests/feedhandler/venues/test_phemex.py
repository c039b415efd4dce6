"""Phemex from the real 2021 capture: 5 USD contracts and 5 spot pairs, 13 book snapshots
(3 re-sent mid-stream, each equal to the book rebuilt from the updates) and 1,324
incrementals, sequences only increasing, at most 30 levels per side, never crossed;
scaled prices kept exact; a sequence that does not increase resyncs; malformed frames
refused with their reason; trades; listings; the live runner ends with the replay's books."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import feedhandler.venues.phemex as phemex
from feedhandler.files.replay import EXCHANGES, replay_capture
from feedhandler.frames import MalformedFrame
from feedhandler.venues import VENUES
from feedhandler.venues.phemex import PhemexParser
from hub.config import LIVE_SOURCES
from hub.events import Status, Trade
from tests.conftest import CAPTURES
from tests.feedhandler.fuzzing import Item, capture_items, fed
from tests.feedhandler.venues.capture_runner import check_capture, runner_against_capture
from tests.hub.nasty import EXAMPLES

CAPTURE = CAPTURES / "phemex_book-trades_2021-07-03.jsonl.zst"
REST = "https://api.phemex.com"
UPDATES = {
    "ATOMUSD": 115,
    "ENJUSD": 156,
    "XMRUSD": 143,
    "XTZUSD": 392,
    "YFIUSD": 108,
    "sBCHUSDT": 28,
    "sENJUSDT": 47,
    "sGRTUSDT": 154,
    "sLINKUSDT": 173,
    "sSUSHIUSDT": 8,
}
SYMBOLS = list(UPDATES)


def lines() -> list[Item]:
    return capture_items(CAPTURE)


def book(symbol: str, kind: str, seq: int, bids: str, asks: str) -> str:
    return (
        f'{{"book":{{"asks":{asks},"bids":{bids}}},"depth":30,"sequence":{seq},'
        f'"symbol":"{symbol}","timestamp":1625342241732802237,"type":"{kind}"}}'
    )


def test_the_capture_replays_13_snapshots_and_1324_updates_never_crossed() -> None:
    summary = replay_capture(CAPTURE)
    assert summary["venue"] == "phemex" and EXCHANGES["PHEMEX"] == "phemex"
    assert summary["malformed"] == 0 and summary["bad_lines"] == 0
    assert summary["stale_books"] == {}
    symbols = summary["symbols"]
    assert {s: v["book_updates"] for s, v in symbols.items()} == UPDATES
    assert sum(UPDATES.values()) == 1324
    assert sum(v["snapshots"] for v in symbols.values()) == 13
    assert sum(v["snapshots_matching"] for v in symbols.values()) == 3
    assert sum(v["snapshots_differing"] for v in symbols.values()) == 0
    for s in symbols.values():
        assert (s["gaps"], s["crossed"], s["resyncs"], s["live"]) == (0, 0, 0, True)
    assert symbols["YFIUSD"]["bids"][0] == ["32936.0000", "5488"]
    assert symbols["sGRTUSDT"]["asks"][0] == ["0.67436000", "8646.20000000"]
    parser = PhemexParser()
    fed(parser, lines())
    for sync in parser.books.values():
        bids, asks = sync.book.snapshot()
        assert len(bids) <= 30 and len(asks) <= 30
    out = check_capture(CAPTURE)
    assert json.loads(out.stdout)["venue"] == "phemex"


def test_units_and_listings_come_from_the_products() -> None:
    parser = PhemexParser()
    fed(parser, [x for x in lines() if x[0] == "http"])
    assert [u.text for u in parser.units_for("YFIUSD")] == ["0.0001", "1"]
    assert [u.text for u in parser.units_for("sGRTUSDT")] == ["0.00000001", "0.00000001"]
    btc = parser.listings["BTCUSD"]
    assert (btc.canonical, btc.settle, btc.contract_size, btc.inverse) == (
        "BTC-USD-PERP",
        "BTC",
        "1",
        True,
    )
    yfi = parser.listings["YFIUSD"]
    assert (yfi.canonical, yfi.contract_size, yfi.inverse) == ("YFI-USD-PERP", "0.0001", False)
    assert parser.listings["sBTCUSDT"].canonical == "BTC-USDT"


def test_a_sequence_that_does_not_increase_resyncs_until_the_next_snapshot() -> None:
    parser = PhemexParser()
    fed(parser, [x for x in lines() if x[0] == "http"])
    parser.on_frame(book("YFIUSD", "snapshot", 10, "[[329000000,5]]", "[[330000000,7]]"), 1)
    parser.on_frame(book("YFIUSD", "incremental", 12, "[[329000000,0]]", "[]"), 2)
    assert parser.books["YFIUSD"].book.snapshot() == ([], [(330000000, 7)])
    events = parser.on_frame(book("YFIUSD", "incremental", 12, "[[328000000,1]]", "[]"), 3)
    assert [(e.state, e.reason) for e in events if isinstance(e, Status)] == [("stale", "sequence")]
    assert parser.on_frame(book("YFIUSD", "incremental", 13, "[[328000000,1]]", "[]"), 4) == []
    assert [json.loads(m)["method"] for m in parser.recover(["YFIUSD"])] == ["orderbook.subscribe"]
    events = parser.on_frame(book("YFIUSD", "snapshot", 20, "[[328000000,2]]", "[]"), 5)
    assert [e.state for e in events if isinstance(e, Status)] == ["resynced"]
    assert parser.books["YFIUSD"].book.snapshot() == ([(328000000, 2)], [])


def test_a_mid_stream_snapshot_is_compared_with_the_rebuilt_book() -> None:
    parser = PhemexParser()
    fed(parser, [x for x in lines() if x[0] == "http"])
    parser.on_frame(book("YFIUSD", "snapshot", 10, "[[329000000,5]]", "[[330000000,7]]"), 1)
    parser.on_frame(book("YFIUSD", "snapshot", 11, "[[329000000,5]]", "[[330000000,7]]"), 2)
    parser.on_frame(book("YFIUSD", "snapshot", 12, "[[329000000,6]]", "[[330000000,7]]"), 3)
    assert parser.extra_stats("YFIUSD") == {"snapshots_matching": 1, "snapshots_differing": 1}


def test_malformed_frames_are_refused_with_a_reason() -> None:
    parser = PhemexParser()
    fed(parser, [x for x in lines() if x[0] == "http"])
    parser.on_frame(book("YFIUSD", "snapshot", 10, "[[329000000,5]]", "[[330000000,7]]"), 1)
    before = parser.books["YFIUSD"].book.snapshot()
    events = parser.on_frame(book("YFIUSD", "incremental", 11, '[["3290",5]]', "[]"), 2)
    assert events == [Status("PHEMEX", "YFIUSD", "stale", "malformed shape", 0, 2)]
    assert parser.books["YFIUSD"].book.snapshot() == before and "price" in parser.errors[-1]
    parser.on_frame(book("YFIUSD", "incremental", 12, f"[[{2**63},5]]", "[]"), 3)
    assert parser.reasons["range"] == 1
    parser.on_frame(book("NOPEUSD", "snapshot", 1, "[]", "[]"), 3)
    assert parser.reasons["symbol"] == 1
    parser.on_frame('{"error":{"code":6001,"message":"invalid argument"},"id":1}', 3)
    assert parser.reasons["venue"] == 1 and parser.malformed == 4


def test_trades_are_normalised_oldest_first_without_the_history() -> None:
    parser = PhemexParser()
    trades = [e for e in fed(parser, lines()) if isinstance(e, Trade)]
    assert len(trades) == 25 and {t.side for t in trades} <= {0, 1}
    for t in trades:
        assert t.ts_recv > 0 and t.ts_event > 1625342000 * 10**9 and t.price > 0 and t.size > 0
    yfi = [t for t in trades if t.symbol == "YFIUSD"]
    assert [t.seq for t in yfi] == list(range(1, len(yfi) + 1))
    assert yfi[0].trade_id.endswith("-0")


def test_registration_and_subscribe() -> None:
    spec = VENUES["phemex"]
    assert "phemex" in LIVE_SOURCES
    assert (spec.url, spec.rest) == ("wss://phemex.com/ws", REST)
    parser = spec.parser()
    assert isinstance(parser, PhemexParser)
    sent = [json.loads(m) for m in parser.subscribe(["BTCUSD"])]
    assert [(m["method"], m["params"]) for m in sent] == [
        ("orderbook.subscribe", ["BTCUSD"]),
        ("trade.subscribe", ["BTCUSD"]),
    ]
    assert json.loads(parser.heartbeat()[0])["method"] == "server.ping"
    assert parser.instrument_urls(REST) == [f"{REST}/exchange/public/cfg/v2/products"]


async def test_the_live_runner_against_the_capture_ends_with_the_replays_books() -> None:
    runner, mirror, venue = await runner_against_capture(CAPTURE, PhemexParser, SYMBOLS)
    parser = runner.parser
    assert isinstance(parser, PhemexParser)
    assert venue.rest_requests == ["/exchange/public/cfg/v2/products"]
    assert parser.malformed == 0
    replayed = PhemexParser()
    fed(replayed, lines())
    for symbol in SYMBOLS:
        sync = parser.books[symbol]
        assert sync.live and sync.book.snapshot() == replayed.books[symbol].book.snapshot()
        assert mirror.books[symbol].snapshot() == sync.book.snapshot()
    assert mirror.states == []


_cell = st.one_of(
    st.integers(min_value=-2, max_value=5),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), True, False, None, 1.5, "7", "", [1]]),
)
_rows = st.lists(
    st.one_of(
        st.lists(_cell, min_size=0, max_size=3),
        _cell,
        st.dictionaries(st.sampled_from(["0", "1"]), _cell, max_size=2),
        st.text(max_size=3),
    ),
    max_size=4,
)


def _outcome(read: Any, bids: Any, asks: Any) -> Any:
    try:
        return read(bids, asks)
    except MalformedFrame as exc:
        return ("refused", exc.reason, str(exc))


@settings(max_examples=EXAMPLES, deadline=None)
@given(_rows, _rows)
def test_book_rows_read_whole_are_what_the_row_by_row_reading_takes_or_refuses(
    bids: Any, asks: Any
) -> None:
    """The compiled one-pass check of a book message's rows refuses exactly what reading
    them row by row refuses, with the same reason, and takes the rest the same."""
    assert _outcome(phemex._levels, bids, asks) == _outcome(phemex._checked_levels, bids, asks)
    good = [[p, s] for p, s in ((5, 0), (2**63 - 1, 2**63 - 1), (1, 3))]
    assert phemex._levels(good, good[:1]) == (
        (0, 5, 0),
        (0, 2**63 - 1, 2**63 - 1),
        (0, 1, 3),
        (1, 5, 0),
    )


_trade_cell = st.one_of(
    _cell, st.sampled_from(["Buy", "Sell", "buy", 1_625_300_000_000_000_000, 10**19])
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.one_of(st.lists(_trade_cell, min_size=0, max_size=5), _cell), max_size=4))
def test_trade_rows_read_inline_are_what_the_checked_reading_takes_or_refuses(
    rows: list[Any],
) -> None:
    def checked(rows: list[Any], _: Any) -> Any:
        return [phemex._checked_trade(r) for r in rows]

    assert _outcome(lambda r, _: phemex._trade_rows(r), rows, None) == _outcome(checked, rows, None)
    assert phemex._trade_rows([[7, "Sell", 2**63 - 1, 1]]) == [(7, 1, 2**63 - 1, 1)]
    edges = [[0, "Buy", 1, 0], [0, "Buy", 0, 1], [-1, "Buy", 1, 1], [2**63, "Buy", 1, 1]]
    edges += [[1, "Buy", 2**63, 1], [1, "Buy", 1, 2**63], [True, "Buy", 1, 1], [1, "Buy", 1, 1.0]]
    edges += [[1, ["Buy"], 1, 1], [1, "Buy", 1], [0, "Buy", 2**63 - 1, 2**63 - 1, "x"]]
    for edge in edges:
        assert _outcome(lambda r, _: phemex._trade_rows(r), [edge], None) == _outcome(
            checked, [edge], None
        ), edge
