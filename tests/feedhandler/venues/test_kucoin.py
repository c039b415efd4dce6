"""KuCoin spot from the real 2021 capture: 3,853 level2 messages for 9 symbols, 48 covered by
their REST snapshot and 3,805 applied with 0 gaps; every ticker at an applied message's
sequenceEnd equals the book's best; changes inside a bridging message at or before the
snapshot sequence skipped; a gap resyncs; malformed frames named and dropped; trades; the
live runner ends with the replay's books."""

from __future__ import annotations

import asyncio
import json

import pytest

from feedhandler.files.capture import read_capture
from feedhandler.files.replay import EXCHANGES, replay_capture
from feedhandler.frames import MalformedFrame
from feedhandler.venues import VENUES
from feedhandler.venues.kucoin import KucoinParser
from feedhandler.venues.runner import LiveRunner
from hub.backoff import Backoff
from hub.events import BookUpdate, Event, Status, Trade
from testing.mock_venue import MockCaptureVenue
from tests.conftest import CAPTURES
from tests.feedhandler.venues.capture_runner import Books, runner_against_capture

CAPTURE = CAPTURES / "kucoin-spot_level2-rest-ticker-match_2021-04-25.jsonl.zst"
REST = "https://api.kucoin.com"
SYMBOLS = [
    "BCHSV-USDT", "SNX-BTC", "CAPP-BTC", "ANKR-BTC", "FET-BTC", "DAPPT-BTC", "NRG-BTC",
    "COV-BTC", "EQZ-BTC",
]  # fmt: skip
SYMBOLS_BODY = json.dumps(
    {
        "code": "200000",
        "data": [
            {
                "symbol": "BTC-USDT",
                "baseCurrency": "BTC",
                "quoteCurrency": "USDT",
                "priceIncrement": "0.1",
                "baseIncrement": "0.00000001",
            }
        ],
    }
)


def fed(parser: KucoinParser) -> list[Event]:
    out: list[Event] = []
    for x in read_capture(CAPTURE):
        if x.kind == "http":
            out += parser.on_http(x.url, x.data, x.ts_ns)
        elif x.kind == "recv":
            out += parser.on_frame(x.data, x.ts_ns)
    return out


def l2(start: int, end: int, bids: list[list[str]], asks: list[list[str]]) -> str:
    changes = {"bids": bids, "asks": asks}
    data = {"sequenceStart": start, "sequenceEnd": end, "symbol": "BTC-USDT", "changes": changes}
    return json.dumps({"data": data, "subject": "trade.l2update", "type": "message"})


def snapshot(parser: KucoinParser, seq: int) -> list[Event]:
    body = {"code": "200000", "data": {"time": 1, "sequence": str(seq)}}
    body["data"].update(bids=[["100.0", "1"]], asks=[["101.0", "2"]])  # type: ignore[attr-defined]
    url = f"{REST}/api/v3/market/orderbook/level2?symbol=BTC-USDT"
    return parser.on_http(url, json.dumps(body), 2)


def test_the_capture_replays_with_the_readme_figures() -> None:
    assert EXCHANGES["KUCOIN"] == "kucoin" and "kucoin" in VENUES
    summary = replay_capture(CAPTURE)
    assert summary["malformed"] == 0 and summary["stale_books"] == {}
    per = summary["symbols"]
    assert sorted(per) == sorted(SYMBOLS)
    total = {k: sum(v[k] for v in per.values()) for k, x in next(iter(per.values())).items()
             if type(x) is int}  # fmt: skip
    assert total["level2_messages"] == 3853
    assert total["level2_applied"] == 3805 and total["level2_dropped"] == 48
    assert total["gaps"] == 0 and total["crossed"] == 0 and total["snapshots"] == 9
    assert total["book_updates"] == 3805
    # 810 at messages after the bridging one, 8 at the bridging messages themselves.
    assert total["ticker_matches"] == 818 and total["ticker_mismatches"] == 0
    assert total["trades"] == 18


def test_the_bridging_message_skips_changes_the_snapshot_covers_and_a_gap_resyncs() -> None:
    p = KucoinParser()
    p.on_http(f"{REST}/api/v1/symbols", SYMBOLS_BODY, 1)
    assert p.listings["BTC-USDT"].canonical == "BTC-USDT"
    assert p.on_frame(l2(5, 6, [["99.0", "3", "5"]], []), 1) == []  # buffered
    assert (
        p.on_frame(l2(9, 11, [["99.0", "4", "9"], ["98.0", "5", "11"]], [["0", "0", "10"]]), 1)
        == []
    )
    snapshot(p, 9)
    book = p.books["BTC-USDT"].book
    unit, lot = 10**10, 10**11  # 10 price decimals; the size increment's 8 plus 3
    # 5..6 dropped whole; in 9..11 the change at 9 is covered, 11 applies, 10 is sequence only.
    assert book.depth(0) == [(100 * unit, lot), (98 * unit, 5 * lot)]
    assert p.books["BTC-USDT"].venue_id == 11
    out = p.on_frame(l2(13, 13, [], [["101.0", "0", "13"]]), 3)
    assert [e.state for e in out if isinstance(e, Status)] == ["stale"]
    assert p.books["BTC-USDT"].stats.gaps == 1
    assert p.snapshot_urls(REST, ["BTC-USDT"]) == [
        f"{REST}/api/v3/market/orderbook/level2?symbol=BTC-USDT"
    ]
    p.on_frame(l2(14, 14, [], [["102.0", "1", "14"]]), 4)
    out = snapshot(p, 13)
    assert any(isinstance(e, BookUpdate) for e in out)
    assert p.books["BTC-USDT"].live and p.books["BTC-USDT"].venue_id == 14


def test_malformed_frames_are_named_and_dropped() -> None:
    p = KucoinParser()
    p.on_http(f"{REST}/api/v1/symbols", SYMBOLS_BODY, 1)
    snapshot(p, 1)
    out = p.on_frame(l2(2, 2, [["abc", "1", "2"]], []), 2)
    assert p.malformed == 1 and p.reasons == {"number": 1}
    assert [e.state for e in out if isinstance(e, Status)] == ["stale"]
    p.on_frame("{not json", 3)
    assert p.reasons["json"] == 1


def test_trades_are_normalised_and_pings_answered() -> None:
    p = KucoinParser()
    p.on_http(f"{REST}/api/v1/symbols", SYMBOLS_BODY, 1)
    data = {"symbol": "BTC-USDT", "side": "sell", "size": "0.5", "price": "50000.1"}
    data.update(tradeId="abc123", time="1619378327739050725")
    frame = {"data": data, "subject": "trade.l3match", "type": "message"}
    [t] = p.on_frame(json.dumps(frame), 7)
    assert isinstance(t, Trade)
    assert (t.trade_id, t.side, t.ts_event, t.ts_recv) == ("abc123", 1, 1619378327739050725, 7)
    p.on_frame('{"id": "x", "type": "ping"}', 8)
    assert p.answers() == ['{"id": "x", "type": "pong"}']
    assert json.loads(p.heartbeat()[0])["type"] == "ping"


def test_the_connect_token_answer_gives_the_address_and_the_ping_interval() -> None:
    p = KucoinParser()
    assert p.token_url(REST) == "https://api.kucoin.com/api/v1/bullet-public"
    server = {"endpoint": "wss://ws-api-spot.kucoin.com/", "pingInterval": 20000}
    body = {"code": "200000", "data": {"token": "a b+c", "instanceServers": [server]}}
    assert p.connect_url(json.dumps(body)) == (
        "wss://ws-api-spot.kucoin.com/?token=a+b%2Bc&connectId=mdhub-1"
    )
    assert p.heartbeat_s == 20.0
    assert p.connect_url(json.dumps(body)).endswith("connectId=mdhub-2")  # one per connect
    bad = [
        "<html>busy</html>",
        json.dumps({"code": "200000", "data": {"token": "t", "instanceServers": []}}),
        json.dumps({"code": "200000", "data": {"token": "", "instanceServers": [server]}}),
        json.dumps({"code": "400100", "msg": "x"}),
        json.dumps({"code": "200000", "data": {"token": "t", "instanceServers": [{}]}}),
        json.dumps(
            {"code": "200000", "data": {"token": "t", "instanceServers": [
                {"endpoint": "https://x/", "pingInterval": 1}]}}
        ),
    ]  # fmt: skip
    for text in bad:
        with pytest.raises(MalformedFrame):
            p.connect_url(text)
    assert p.heartbeat_s == 20.0  # a refused answer changes nothing


async def test_the_live_runner_fetches_a_token_for_each_connection_and_pings_as_told() -> None:
    runner, mirror, venue = await runner_against_capture(
        CAPTURE, KucoinParser, SYMBOLS, 0.05, tokens=True
    )
    parser = runner.parser
    assert venue.rest_requests[0] == "/api/v1/symbols"
    assert (runner.token_fetches, runner.connections, venue.refused) == (1, 1, 0)
    assert parser.heartbeat_s == 0.05  # the answer's pingInterval, not the default 18 s
    assert any(json.loads(m).get("type") == "ping" for m in venue.received)
    assert parser.malformed == 0
    replayed = KucoinParser()
    fed(replayed)
    for symbol in SYMBOLS:
        sync = parser.books[symbol]
        assert sync.live and sync.book.snapshot() == replayed.books[symbol].book.snapshot()
        assert mirror.books[symbol].snapshot() == sync.book.snapshot()


async def test_a_connection_without_a_token_is_refused_and_a_failed_token_request_retried() -> None:
    mock = MockCaptureVenue(CAPTURE, tokens=True)
    port = await mock.start()
    no_rest = LiveRunner(
        KucoinParser(), f"ws://127.0.0.1:{port}", SYMBOLS, Books(), backoff=Backoff(0.01, 0.02)
    )
    dead_rest = LiveRunner(
        KucoinParser(),
        f"ws://127.0.0.1:{port}",
        SYMBOLS,
        Books(),
        rest=f"http://127.0.0.1:{port}",  # the WebSocket server: it takes no POST
        backoff=Backoff(0.01, 0.02),
    )
    tasks = [asyncio.create_task(r.run()) for r in (no_rest, dead_rest)]
    try:
        for _ in range(1000):  # a bound for a hang
            if no_rest.disconnects >= 2 and dead_rest.rest_failures >= 2:
                break
            await asyncio.sleep(0.01)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await mock.stop()
    assert no_rest.connections == 0 and no_rest.disconnects >= 2
    assert mock.refused == no_rest.disconnects  # each attempt refused for want of a token
    assert dead_rest.rest_failures >= 2 and dead_rest.connections == 0
    assert mock.connections == 0 and mock.issued == set()
