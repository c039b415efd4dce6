"""Bybit v5 public linear (``orderbook.50``, ``publicTrade``) from the venue's documented
messages: a snapshot and deltas chained by ``u``, a skipped ``u`` is a gap that stales the
book until the next snapshot, exact decimal strings, trades; and the live runner against
a recording of such traffic played over a WebSocket ends with the replay's book."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from feedhandler.files.replay import replay_capture
from feedhandler.venues import VENUES
from feedhandler.venues.bybit_v5 import BybitV5Parser
from feedhandler.venues.runner import LiveRunner
from hub.backoff import Backoff
from hub.config import LIVE_SOURCES
from hub.events import BookUpdate, Status, Trade
from testing.mock_venue import MockCaptureVenue
from tests.feedhandler.venues.capture_runner import Books as Mirrors

INSTRUMENTS_URL = "https://api.bybit.com/v5/market/instruments-info?category=linear&limit=1000"
INSTRUMENTS = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "category": "linear",
        "list": [
            {
                "symbol": "BTCUSDT",
                "contractType": "LinearPerpetual",
                "status": "Trading",
                "baseCoin": "BTC",
                "quoteCoin": "USDT",
                "priceScale": "2",
                "priceFilter": {"minPrice": "0.10", "maxPrice": "199999.80", "tickSize": "0.10"},
                "lotSizeFilter": {
                    "maxOrderQty": "100.000",
                    "minOrderQty": "0.001",
                    "qtyStep": "0.001",
                },
            }
        ],
        "nextPageCursor": "",
    },
}


def book(kind: str, u: int, bids: list[list[Any]], asks: list[list[Any]]) -> str:
    return json.dumps(
        {
            "topic": "orderbook.50.BTCUSDT",
            "type": kind,
            "ts": 1672304484978 + u,
            "data": {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": 7961638724 + u},
            "cts": 1672304484976,
        }
    )


FRAMES = [
    '{"success":true,"ret_msg":"","conn_id":"c","op":"subscribe"}',
    book(
        "snapshot",
        18521288,
        [["16493.50", "0.006"], ["16493.00", "0.100"]],
        [["16611.00", "0.029"]],
    ),
    book("delta", 18521289, [["16493.50", "0"], ["16492.90", "1.250"]], []),
    json.dumps(
        {
            "topic": "publicTrade.BTCUSDT",
            "type": "snapshot",
            "ts": 1672304486868,
            "data": [
                {
                    "T": 1672304486865,
                    "s": "BTCUSDT",
                    "S": "Buy",
                    "v": "0.001",
                    "p": "16578.50",
                    "L": "PlusTick",
                    "i": "20f43950-d8dd-5b31-9112-a178eb6023af",
                    "BT": False,
                }
            ],
        }
    ),
    book("delta", 18521290, [], [["16611.00", "0.500"], ["16612.10", "2.000"]]),
    '{"success":true,"ret_msg":"pong","conn_id":"c","op":"ping"}',
]


def started() -> BybitV5Parser:
    parser = BybitV5Parser()
    parser.on_http(INSTRUMENTS_URL, json.dumps(INSTRUMENTS), 1)
    return parser


def test_snapshot_and_chained_deltas_give_the_exact_book() -> None:
    parser = started()
    events = [e for n, f in enumerate(FRAMES) for e in parser.on_frame(f, 10 + n)]
    sync = parser.books["BTCUSDT"]
    assert sync.live and sync.venue_id == 18521290 and sync.stats.updates == 2
    assert sync.book.snapshot() == (
        [(1649300, 100), (1649290, 1250)],
        [(1661100, 500), (1661210, 2000)],
    )
    assert [e.seq for e in events if isinstance(e, BookUpdate)] == [1, 2, 3]
    (trade,) = [e for e in events if isinstance(e, Trade)]
    assert (trade.trade_id, trade.price, trade.size, trade.side) == (
        "20f43950-d8dd-5b31-9112-a178eb6023af",
        1657850,
        1,
        0,
    )
    assert trade.ts_event == 1672304486865 * 1_000_000
    assert parser.malformed == 0
    assert parser.instruments["BTCUSDT"]["tick_size"] == "0.10"


def test_a_skipped_update_id_is_a_gap_until_the_next_snapshot() -> None:
    parser = started()
    parser.on_frame(FRAMES[1], 1)
    events = parser.on_frame(book("delta", 18521291, [["16490.00", "1.000"]], []), 2)
    sync = parser.books["BTCUSDT"]
    assert events == [Status("BYBIT", "BTCUSDT", "stale", "gap", 0, 2)]
    assert sync.stats.gaps == 1 and not sync.live
    assert parser.recover(["BTCUSDT"]) == [
        '{"op": "unsubscribe", "args": ["orderbook.50.BTCUSDT"]}',
        '{"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]}',
    ]
    # Bybit's service restart: a snapshot with u = 1 starts the chain again.
    parser.on_frame(book("snapshot", 1, [["16480.00", "2.000"]], [["16500.00", "1.000"]]), 3)
    parser.on_frame(book("delta", 2, [["16481.00", "0.500"]], []), 4)
    assert sync.live and sync.stats.resynced == 1 and sync.book.best_bid() == (1648100, 500)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (book("delta", 18521289, [["16493.555", "1"]], []), "number"),
        (book("delta", 18521289, [[16493.5, "1"]], []), "shape"),
        (book("delta", 18521289, [["9" * 70, "1"]], []), "range"),
    ],
)
def test_a_malformed_delta_is_refused_whole(frame: str, reason: str) -> None:
    parser = started()
    parser.on_frame(FRAMES[1], 1)
    before = parser.books["BTCUSDT"].book.snapshot()
    events = parser.on_frame(frame, 2)
    assert events == [Status("BYBIT", "BTCUSDT", "stale", f"malformed {reason}", 0, 2)]
    assert parser.books["BTCUSDT"].book.snapshot() == before and parser.reasons == {reason: 1}


def test_registration_and_subscription() -> None:
    spec = VENUES["bybit"]
    assert "bybit" in LIVE_SOURCES
    assert (spec.url, spec.rest) == (
        "wss://stream.bybit.com/v5/public/linear",
        "https://api.bybit.com",
    )
    parser = spec.parser()
    assert isinstance(parser, BybitV5Parser) and parser.heartbeat() == ['{"op":"ping"}']
    assert parser.subscribe(["BTCUSDT"]) == [
        '{"op": "subscribe", "args": ["publicTrade.BTCUSDT"]}',
        '{"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]}',
    ]
    with pytest.raises(ValueError, match="depth"):
        BybitV5Parser(depth=25)


def capture(path: Path) -> Path:
    lines: list[dict[str, Any]] = [{"t": "header", "format": 2, "exchange": "BYBIT"}]
    lines.append(
        {
            "t": "http",
            "conn": "h",
            "ts": 1.0,
            "url": INSTRUMENTS_URL,
            "data": json.dumps(INSTRUMENTS),
        }
    )
    lines.append({"t": "send", "conn": "w", "ts": 1.5, "data": "{}"})
    lines += [{"t": "recv", "conn": "w", "ts": 2.0 + n, "data": f} for n, f in enumerate(FRAMES)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


async def test_the_live_runner_ends_with_the_replays_book(tmp_path: Path) -> None:
    recorded = capture(tmp_path / "bybit-v5.jsonl")
    venue = MockCaptureVenue(recorded)
    port = await venue.start()
    parser = BybitV5Parser()
    mirror = Mirrors()
    runner = LiveRunner(
        parser,
        f"ws://127.0.0.1:{port}",
        ["BTCUSDT"],
        mirror,
        rest=f"http://127.0.0.1:{port}",
        backoff=Backoff(0.05, 0.2, "full"),
        seed=5,
    )
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(venue.done.wait(), 30)
        for _ in range(250):
            if runner.frames >= len(venue.frames):
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await venue.stop()
    assert venue.rest_requests == ["/v5/market/instruments-info?category=linear&limit=1000"]
    summary = replay_capture(recorded, "bybit")["symbols"]["BTCUSDT"]
    sync = parser.books["BTCUSDT"]
    assert sync.live and mirror.books["BTCUSDT"].snapshot() == sync.book.snapshot()
    tick, lot = parser.units_for("BTCUSDT")
    assert [[tick.to_str(p), lot.to_str(s)] for p, s in sync.book.depth(0)] == summary["bids"]
    assert [[tick.to_str(p), lot.to_str(s)] for p, s in sync.book.depth(1)] == summary["asks"]
    assert summary["book_updates"] == 2 and summary["gaps"] == 0
