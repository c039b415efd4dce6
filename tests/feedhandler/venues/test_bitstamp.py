"""Bitstamp v2 from the real 2022 capture: 10 REST snapshots and 717 diffs, of which the
102 at or before their snapshot's microtimestamp are dropped and 615 applied, never
crossed; diffs that arrive before their snapshot wait for it; a crossed book is stale
until a fresh snapshot, fetched once the diff subscription is confirmed; malformed frames
are refused with their reason; trades; listings; the live runner ends with the replay's
books."""

from __future__ import annotations

import json

from feedhandler.files.replay import EXCHANGES, replay_capture
from feedhandler.venues import VENUES
from feedhandler.venues.bitstamp import BitstampParser
from hub.config import LIVE_SOURCES
from hub.events import Status, Trade
from tests.conftest import CAPTURES
from tests.feedhandler.fuzzing import Item, capture_items, fed
from tests.feedhandler.venues.capture_runner import check_capture, runner_against_capture

CAPTURE = CAPTURES / "bitstamp-spot_diff-book-rest-trades_2022-01-05.jsonl.zst"
REST = "https://www.bitstamp.net"
DIFFS = {  # pair: (received, applied)
    "adaeur": (62, 57),
    "batbtc": (136, 111),
    "bateur": (89, 75),
    "ethusd": (85, 73),
    "galaeur": (27, 25),
    "sgbeur": (0, 0),
    "usdteur": (101, 89),
    "usdtusd": (74, 61),
    "xlmgbp": (73, 60),
    "xrpeur": (70, 64),
}
PAIRS = list(DIFFS)


def lines() -> list[Item]:
    return capture_items(CAPTURE)


def diff(pair: str, micros: int, bids: list[list[str]], asks: list[list[str]]) -> str:
    data = {"microtimestamp": str(micros), "bids": bids, "asks": asks}
    return json.dumps({"data": data, "channel": f"diff_order_book_{pair}", "event": "data"})


def test_the_capture_drops_the_diffs_its_snapshots_cover_and_applies_the_rest() -> None:
    summary = replay_capture(CAPTURE)
    assert summary["venue"] == "bitstamp" and EXCHANGES["BITSTAMP"] == "bitstamp"
    assert summary["malformed"] == 0 and summary["bad_lines"] == 0
    symbols = summary["symbols"]
    assert {p: (s["diffs"], s["diffs_applied"]) for p, s in symbols.items()} == DIFFS
    assert sum(s["diffs"] for s in symbols.values()) == 717
    assert sum(s["diffs_dropped"] for s in symbols.values()) == 102
    assert sum(s["book_updates"] for s in symbols.values()) == 615
    for s in symbols.values():
        assert (s["snapshots"], s["gaps"], s["crossed"], s["resyncs"], s["live"]) == (
            1,
            0,
            0,
            0,
            True,
        )
    assert sum(s["trades"] for s in symbols.values()) == 10
    assert symbols["ethusd"]["bids"][0] == ["3800.78", "0.60000000"]
    assert symbols["usdteur"]["asks"][0] == ["0.88657", "9000.00000"]
    out = check_capture(CAPTURE)
    assert json.loads(out.stdout)["venue"] == "bitstamp"


def test_diffs_received_before_their_snapshot_wait_for_it() -> None:
    """The order the live runner sees: diffs flowing, then the snapshots answered."""
    items = lines()
    snapshots = [x for x in items if x[0] == "http" and "/order_book/" in x[1]]
    live_order = [x for x in items if x not in snapshots] + snapshots
    replayed, parser = BitstampParser(), BitstampParser()
    fed(replayed, items)
    fed(parser, live_order)
    for pair in PAIRS:
        sync = parser.books[pair]
        assert sync.live and sync.stats.updates == DIFFS[pair][1]
        assert sync.book.snapshot() == replayed.books[pair].book.snapshot()


def test_the_snapshot_microsecond_decides_and_one_microsecond_holds_several_diffs() -> None:
    parser = BitstampParser()
    fed(parser, [x for x in lines() if x[0] == "http"][:1])  # the trading pairs
    body = {"microtimestamp": "1000", "bids": [["3800.00", "1"]], "asks": [["3801.00", "1"]]}
    parser.on_http(f"{REST}/api/v2/order_book/ethusd", json.dumps(body), 0)
    sync = parser.books["ethusd"]
    parser.on_frame(diff("ethusd", 1000, [["3799.00", "5"]], []), 1)  # covered: dropped
    parser.on_frame(diff("ethusd", 1001, [["3799.50", "2"]], []), 2)
    parser.on_frame(diff("ethusd", 1001, [["3799.50", "3"]], []), 3)  # same microsecond
    assert sync.book.depth(0) == [(380000, 100000000), (379950, 300000000)]
    assert (sync.stats.updates, parser.diffs["ethusd"]) == (2, 3)


def test_a_crossed_book_is_stale_until_a_fresh_snapshot_fetched_once_subscribed() -> None:
    truth, parser = BitstampParser(), BitstampParser()
    items = lines()
    at = [i for i, x in enumerate(items) if "diff_order_book_ethusd" in x[2]][-20]
    fed(truth, items[:at])
    fed(parser, items[:at])
    ask = parser.books["ethusd"].book.best_ask()
    assert ask is not None
    after = parser._last["ethusd"][0] + 1
    crossing = diff(
        "ethusd", after, [[parser.units_for("ethusd")[0].to_str(ask[0] + 100), "1.0"]], []
    )
    events = parser.on_frame(crossing, 7)
    assert [(e.state, e.reason) for e in events if isinstance(e, Status)] == [("stale", "crossed")]
    assert parser.snapshot_urls(REST, ["ethusd"]) == [f"{REST}/api/v2/order_book/ethusd"]
    parser.subscribe(PAIRS)  # a new connection: wait for the venue's confirmation
    assert parser.snapshot_urls(REST, ["ethusd"]) == []
    parser.on_frame(
        '{"event":"bts:subscription_succeeded","channel":"diff_order_book_ethusd","data":{}}', 8
    )
    assert parser.snapshot_urls(REST, ["ethusd"]) == [f"{REST}/api/v2/order_book/ethusd"]
    assert BitstampParser().snapshot_urls(REST, ["ethusd"]) == [
        f"{REST}/api/v2/trading-pairs-info/"
    ]
    book = truth.books["ethusd"].book
    tick, lot = truth.units_for("ethusd")
    body = {
        "microtimestamp": str(after - 1),
        "bids": [[tick.to_str(p), lot.to_str(q)] for p, q in book.depth(0)],
        "asks": [[tick.to_str(p), lot.to_str(q)] for p, q in book.depth(1)],
    }
    url = f"{REST}/api/v2/order_book/ethusd"
    assert parser.on_http(url, json.dumps(body), 9) == []  # older than the crossing diff
    assert parser.reasons == {"inconsistent": 1} and not parser.books["ethusd"].live
    body["microtimestamp"] = str(after)  # the venue's book as of the crossing microsecond
    events = parser.on_http(url, json.dumps(body), 9)
    assert [e.state for e in events if isinstance(e, Status)] == ["resynced"]
    fed(truth, items[at:])
    fed(parser, items[at:])
    sync = parser.books["ethusd"]
    assert sync.live and sync.book.snapshot() == book.snapshot()


def test_malformed_frames_are_refused_with_a_reason() -> None:
    parser = BitstampParser()
    items = lines()
    fed(parser, items[:60])
    before = parser.books["ethusd"].book.snapshot()
    events = parser.on_frame(diff("ethusd", 1641343799000000, [["9" * 70, "1"]], []), 1)
    assert events == [Status("BITSTAMP", "ethusd", "stale", "malformed range", 0, 1)]
    assert parser.books["ethusd"].book.snapshot() == before and "price" in parser.errors[-1]
    assert [p for p, s in parser.books.items() if not s.live] == ["ethusd"]
    bad_time = json.loads(diff("xrpeur", 0, [], []))
    bad_time["data"]["microtimestamp"] = 1641343799000000  # a number: Bitstamp sends text
    parser.on_frame(json.dumps(bad_time), 1)
    assert parser.reasons["shape"] == 1 and not parser.books["xrpeur"].live
    trade = '{"data":{"id":1,"type":2},"channel":"live_trades_ethusd","event":"trade"}'
    assert parser.on_frame(trade, 1) == [] and parser.reasons["shape"] == 2
    assert parser.on_frame('{"event":"bts:error","channel":"","data":{"code":null}}', 1) == []
    assert parser.reasons["venue"] == 1
    events = parser.on_frame('{"event":"data","channel":"diff_order_bok_ethusd","data":{}}', 1)
    assert parser.reasons["shape"] == 3 and not any(s.live for s in parser.books.values())
    assert (
        parser.on_frame('{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}', 1)
        == []
    )
    assert parser.malformed == 5


def test_a_reconnect_request_stales_every_book() -> None:
    parser = BitstampParser()
    fed(parser, lines())
    events = parser.on_frame('{"event":"bts:request_reconnect","channel":"","data":""}', 4)
    assert sorted(e.symbol for e in events) == sorted(PAIRS)
    assert {e.reason for e in events if isinstance(e, Status)} == {"venue asked to reconnect"}


def test_trades_are_normalised() -> None:
    parser = BitstampParser()
    trades = [e for e in fed(parser, lines()) if isinstance(e, Trade)]
    assert len(trades) == 10 and {t.symbol for t in trades} == {"ethusd"}
    first = trades[0]
    assert (first.trade_id, first.price, first.size, first.side, first.seq) == (
        "216000477",
        380544,
        7920000,
        0,
        1,
    )
    assert first.ts_event == 1641343699596000 * 1000 and first.ts_recv == 1641343699529292032
    assert trades[1].side == 1  # type 1: a sell took the bid


def test_units_and_listings_come_from_the_trading_pairs() -> None:
    parser = BitstampParser()
    fed(parser, lines()[:2])
    assert [u.text for u in parser.units_for("usdteur")] == ["0.00001", "0.00001"]
    assert [u.text for u in parser.units_for("batbtc")] == ["0.00000001", "0.00000001"]
    assert parser.listings["btcusd"].canonical == "BTC-USD"
    assert parser.listings["usdteur"].canonical == "USDT-EUR"
    assert parser.listings["ethusd"].kind == "spot"


def test_registration_subscribe_and_heartbeat() -> None:
    spec = VENUES["bitstamp"]
    assert "bitstamp" in LIVE_SOURCES
    assert (spec.url, spec.rest) == ("wss://ws.bitstamp.net", REST)
    parser = spec.parser()
    assert isinstance(parser, BitstampParser)
    assert [json.loads(m) for m in parser.subscribe(["btcusd"])] == [
        {"event": "bts:subscribe", "data": {"channel": "diff_order_book_btcusd"}},
        {"event": "bts:subscribe", "data": {"channel": "live_trades_btcusd"}},
    ]
    assert parser.heartbeat() == ['{"event": "bts:heartbeat"}'] and parser.heartbeat_s > 0
    assert parser.recover(["btcusd"]) == []  # books come back over REST
    assert parser.instrument_urls(REST) == [f"{REST}/api/v2/trading-pairs-info/"]


async def test_the_live_runner_against_the_capture_ends_with_the_replays_books() -> None:
    runner, mirror, venue = await runner_against_capture(CAPTURE, BitstampParser, PAIRS, 0.01)
    parser = runner.parser
    assert json.loads(venue.received[0]) == json.loads(parser.subscribe(PAIRS)[0])
    assert '{"event": "bts:heartbeat"}' in venue.received
    assert venue.rest_requests[0] == "/api/v2/trading-pairs-info/"
    assert sorted(venue.rest_requests[1:]) == sorted(f"/api/v2/order_book/{p}" for p in PAIRS)
    assert parser.malformed == 0
    replayed = BitstampParser()
    fed(replayed, lines())
    for pair in PAIRS:
        sync = parser.books[pair]
        assert sync.live and sync.book.snapshot() == replayed.books[pair].book.snapshot()
        assert mirror.books[pair].snapshot() == sync.book.snapshot()
    assert mirror.states == []
