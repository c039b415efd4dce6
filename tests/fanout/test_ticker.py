"""The ticker: 24 h rolling statistics of the trades (fanout.ticker), and the ``ticker``
channel over a real WebSocket: a snapshot on subscribe, then one message per trade."""

from __future__ import annotations

import asyncio
from typing import Any

from client.market import HubClient
from fanout.ticker import MINUTE_NS, Ticker, percent
from hub.events import Bar
from tests.fanout.harness import INST, started

HOUR = 60 * MINUTE_NS
T0 = 1_795_000_020 * 10**9


def stats(t: Ticker) -> tuple[Any, ...]:
    return (t.open, t.high, t.low, t.last, t.volume, t.notional, t.trades)


def test_the_window_is_the_last_1440_minutes_of_event_time() -> None:
    t = Ticker()
    assert t.add(100, 1, T0, 1) and t.add(120, 2, T0 + HOUR, 2) and t.add(90, 1, T0 + 2 * HOUR, 3)
    assert stats(t) == (100, 120, 90, 90, 4, 100 + 240 + 90, 3)
    # 23 h 59 min after the first minute: everything is still in.
    assert t.add(95, 1, T0 + 1439 * MINUTE_NS + 59 * 10**9, 4)
    assert stats(t)[:3] == (100, 120, 90) and t.trades == 4
    # One minute more: the first minute leaves, high and low are recomputed.
    assert t.add(96, 1, T0 + 1440 * MINUTE_NS, 5)
    assert stats(t) == (120, 120, 90, 96, 5, 240 + 90 + 95 + 96, 4)
    assert t.window_start == T0 + MINUTE_NS
    # A trade older than the window is not counted; a late one inside it is, in place.
    assert not t.add(500, 9, T0, 6)
    assert t.add(80, 1, T0 + 30 * MINUTE_NS, 7)
    assert (t.open, t.low, t.last, t.trades, t.seq) == (80, 80, 96, 5, 5)
    two_days = T0 + 48 * HOUR
    assert t.add(101, 3, two_days, 8, epoch=9)
    assert stats(t) == (101, 101, 101, 101, 3, 303, 1) and (t.seq, t.epoch) == (8, 9)


def test_recorded_minutes_seed_the_time_before_the_first_live_trade() -> None:
    def bar(minute: int, o: int, h: int, low: int, c: int, volume: int, trades: int) -> Bar:
        start = T0 + minute * MINUTE_NS
        return Bar("SIM", "X", 60, start, o, h, low, c, volume, c * volume, trades)

    t = Ticker()
    t.add(105, 2, T0 + 10 * MINUTE_NS + 5, 40)  # the node's first trade: minute 10
    recorded = [bar(0, 100, 130, 95, 101, 5, 3), bar(9, 101, 102, 70, 99, 1, 1)]
    recorded += [bar(10, 1, 1, 1, 1, 9, 9), bar(11, 1, 1, 1, 1, 9, 9)]  # live minutes: not taken
    recorded.append(Bar("SIM", "X", 300, T0, 1, 1, 1, 1, 1, 1, 1))  # not a one-minute bar
    assert t.seed(recorded) == 2
    assert stats(t) == (100, 130, 70, 105, 8, 505 + 99 + 210, 5)
    assert (t.seq, t.last_ts) == (40, T0 + 10 * MINUTE_NS + 5)
    assert t.seed(recorded) == 0  # once
    fresh = Ticker()  # no live trade yet: all of them, the last one's minute is the end
    assert fresh.seed(recorded[:2]) == 2
    assert (fresh.open, fresh.last, fresh.trades, fresh.seq) == (100, 99, 4, 0)
    assert fresh.last_ts == T0 + 10 * MINUTE_NS - 1
    fresh.add(110, 1, T0 + 1441 * MINUTE_NS, 1)  # a day on: minute 0 leaves the window
    assert (fresh.open, fresh.high, fresh.trades) == (101, 110, 2)


def test_fields_are_exact_decimals() -> None:
    t = Ticker()
    empty = t.fields(INST)
    assert (empty["open"], empty["change"], empty["volume"], empty["notional"]) == (
        None,
        None,
        "0",
        "0",
    )
    t.add(10_000, 3, T0, 1)
    t.add(9_950, 1, T0 + 1, 2)
    got = t.fields(INST)
    assert (got["open"], got["last"], got["change"], got["change_pct"]) == (
        "100.00",
        "99.50",
        "-0.50",
        "-0.50",
    )
    assert (got["volume"], got["notional"], got["ts_event"]) == ("4", "399.5", T0 + 1)
    assert percent(1, 3) == "33.33" and percent(-1, 30_000) == "0.00" and percent(5, 0) == "0.00"


async def test_the_ticker_channel_sends_a_snapshot_then_every_trade() -> None:
    node, market, url = await started()
    try:
        market.trade(10_000, 2, T0)
        async with HubClient(url) as client:
            answer = await client.subscribe([{"channel": "ticker", "symbol": "X"}])
            assert answer["accepted"] == [{"channel": "ticker", "venue": "SIM", "symbol": "X"}]
            seen: list[dict[str, Any]] = []

            async def read(n: int) -> None:
                async for msg in client.messages():
                    if msg["type"] == "ticker":
                        seen.append(msg)
                        if len(seen) == n:
                            return

            await asyncio.wait_for(read(1), 5)
            first = seen[0]
            assert (first["venue"], first["symbol"], first["last"], first["trades"]) == (
                "SIM",
                "X",
                "100.00",
                1,
            )
            market.trade(10_200, 1, T0 + HOUR)
            market.trade(9_800, 1, T0 + 2 * HOUR)
            await asyncio.wait_for(read(3), 5)
            last = seen[-1]
            assert [m["seq"] for m in seen] == [1, 2, 3]
            assert {k: last[k] for k in ("open", "high", "low", "last", "change", "volume")} == {
                "open": "100.00",
                "high": "102.00",
                "low": "98.00",
                "last": "98.00",
                "change": "-2.00",
                "volume": "4",
            }
            assert last["change_pct"] == "-2.00" and last["notional"] == "400"
    finally:
        await node.stop()
