"""Gate.io v4 spot from the real 2021 capture: 172 order_book_update messages for 10 pairs,
13 dropped (u < id + 1 of their REST book) and 159 applied with 0 gaps; a gap resyncs;
malformed frames named and dropped; trades; the live runner ends with the replay's books."""

from __future__ import annotations

import json

from feedhandler.files.capture import read_capture
from feedhandler.files.replay import EXCHANGES, replay_capture
from feedhandler.venues import VENUES
from feedhandler.venues.gateio import GateioParser
from hub.events import Event, Status, Trade
from tests.conftest import CAPTURES
from tests.feedhandler.venues.capture_runner import runner_against_capture

CAPTURE = CAPTURES / "gateio-spot_book-update-rest-trades_2021-04-22.jsonl.zst"
REST = "https://api.gateio.ws"
PAIRS = [
    "INK_USDT", "HAI_ETH", "BTC_USDC", "NANO_USDT", "QTUM3S_USDT", "DIS_USDT", "NEO_BTC",
    "FAST_USDT", "ZKS_ETH", "OMG_USDT",
]  # fmt: skip
PAIRS_BODY = json.dumps(
    [{"id": "BTC_USDT", "base": "BTC", "quote": "USDT", "precision": 2, "amount_precision": 4}]
)


def fed(parser: GateioParser) -> list[Event]:
    out: list[Event] = []
    for x in read_capture(CAPTURE):
        if x.kind == "http":
            out += parser.on_http(x.url, x.data, x.ts_ns)
        elif x.kind == "recv":
            out += parser.on_frame(x.data, x.ts_ns)
    return out


def update(first: int, last: int, bids: list[list[str]], asks: list[list[str]]) -> str:
    result = {"t": 1619093532978, "s": "BTC_USDT", "U": first, "u": last, "b": bids, "a": asks}
    return json.dumps({"channel": "spot.order_book_update", "event": "update", "result": result})


def book(parser: GateioParser, seq: int) -> list[Event]:
    body = {"id": seq, "bids": [["100.00", "1"]], "asks": [["101.00", "2"]]}
    url = f"{REST}/api/v4/spot/order_book?currency_pair=BTC_USDT&limit=100&with_id=true"
    return parser.on_http(url, json.dumps(body), 2)


def test_the_capture_replays_with_the_readme_figures() -> None:
    assert EXCHANGES["GATEIO"] == "gateio" and "gateio" in VENUES
    summary = replay_capture(CAPTURE)
    assert summary["malformed"] == 0 and summary["stale_books"] == {}
    per = summary["symbols"]
    assert sorted(per) == sorted(PAIRS)
    assert sum(v["book_updates"] for v in per.values()) == 172
    assert sum(v["book_updates_applied"] for v in per.values()) == 159
    assert sum(v["book_updates_dropped"] for v in per.values()) == 13
    assert sum(v["gaps"] + v["crossed"] for v in per.values()) == 0
    assert per["BTC_USDC"]["book_updates_applied"] == per["INK_USDT"]["book_updates_applied"] == 0


def test_the_first_update_bridges_the_book_id_and_a_gap_resyncs() -> None:
    p = GateioParser()
    p.on_http(f"{REST}/api/v4/spot/currency_pairs", PAIRS_BODY, 1)
    assert p.listings["BTC_USDT"].canonical == "BTC-USDT"
    p.on_frame(update(3, 5, [["99.00", "3"]], []), 1)  # u < id + 1: dropped
    p.on_frame(update(6, 8, [["98.00", "4"]], [["101.00", "0"]]), 1)  # U <= 7 <= u
    book(p, 6)
    sync = p.books["BTC_USDT"]
    price, size = 10**10, 10**10  # 10 decimals (the precisions plus 2 and 3 are coarser)
    assert sync.book.depth(0) == [(100 * price, size), (98 * price, 4 * size)]
    assert sync.book.depth(1) == [] and sync.venue_id == 8
    assert sync.stats.dropped == 1 and sync.stats.updates == 1
    out = p.on_frame(update(10, 10, [], [["102.00", "1"]]), 3)
    assert [e.state for e in out if isinstance(e, Status)] == ["stale"]
    assert sync.stats.gaps == 1
    assert p.snapshot_urls(REST, ["BTC_USDT"]) == [
        f"{REST}/api/v4/spot/order_book?currency_pair=BTC_USDT&limit=100&with_id=true"
    ]


def test_malformed_frames_are_named_and_dropped() -> None:
    p = GateioParser()
    p.on_http(f"{REST}/api/v4/spot/currency_pairs", PAIRS_BODY, 1)
    book(p, 1)
    out = p.on_frame(update(2, 2, [["1.0", "x"]], []), 2)
    assert p.malformed == 1 and p.reasons == {"number": 1}
    assert [e.state for e in out if isinstance(e, Status)] == ["stale"]
    p.on_frame(update(3, 2, [], []), 3)
    assert p.reasons["inconsistent"] == 1


def test_trades_are_normalised_and_subscriptions_follow_the_docs() -> None:
    p = GateioParser()
    p.on_http(f"{REST}/api/v4/spot/currency_pairs", PAIRS_BODY, 1)
    result = {"id": 816995772, "create_time_ms": "1619093543708.2642", "side": "sell"}
    result.update(currency_pair="BTC_USDT", amount="0.2010000000", price="121.5800000000")
    [t] = p.on_frame(json.dumps({"channel": "spot.trades", "event": "update", "result": result}), 9)
    assert isinstance(t, Trade)
    assert (t.trade_id, t.side, t.ts_event, t.ts_recv) == ("816995772", 1, 1619093543708264200, 9)
    subs = [json.loads(m) for m in p.subscribe(["BTC_USDT"])]
    assert [(m["channel"], m["payload"]) for m in subs] == [
        ("spot.order_book_update", ["BTC_USDT", "100ms"]),
        ("spot.trades", ["BTC_USDT"]),
    ]
    assert json.loads(p.heartbeat()[0])["channel"] == "spot.ping"


async def test_the_live_runner_against_the_capture_ends_with_the_replays_books() -> None:
    runner, mirror, venue = await runner_against_capture(CAPTURE, GateioParser, PAIRS, 0.01)
    parser = runner.parser
    assert venue.rest_requests[0] == "/api/v4/spot/currency_pairs"
    assert parser.malformed == 0
    replayed = GateioParser()
    fed(replayed)
    for pair in PAIRS:
        sync = parser.books[pair]
        assert sync.live and sync.book.snapshot() == replayed.books[pair].book.snapshot()
        assert mirror.books[pair].snapshot() == sync.book.snapshot()
