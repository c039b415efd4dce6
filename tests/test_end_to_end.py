"""First end-to-end path against the real local Kafka (Tansu), Redis and TimescaleDB.

simulated exchange → book core → Kafka → fanout node → WebSocket client,
with the latest snapshot in Redis and trades recorded by the recorder. The
expected books and trades are rebuilt independently from the same seed.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import redis

from client.market import BookMirror, HubClient, connect, messages, mirror_for, request
from hub.decimals import Unit
from hub.events import BookSnapshot, BookUpdate, Trade, decode, decode_as
from orderbook_core import L2Book
from tests.conftest import stack_env
from tests.faults import components
from trading.simulator import SimulatedExchange

pytestmark = pytest.mark.services

SYMBOLS = ["BTC-USD", "ETH-USD"]
SEED = 42
ORDERS = 3000


TOPS: dict[str, list[tuple[Any, ...]]] = {}
"""Per symbol: (seq, bid, bid size, ask, ask size) at every update that moved the top."""
DEPTH: dict[str, dict[int, tuple[Any, ...]]] = {}
"""Per symbol and book seq: the top 10 levels as the recorder's arrays."""


def rebuild(symbol: str) -> tuple[SimulatedExchange, list[Trade], int]:
    """What the feed must have produced for one symbol: final book, trades, last book seq
    (and, in TOPS, the top-of-book changes, from a book rebuilt out of the updates alone)."""
    x = SimulatedExchange("SIM", symbol, SEED)
    trades: list[Trade] = []
    seq = 0
    book, tops, last = L2Book(), TOPS.setdefault(symbol, []), None
    for _ in range(ORDERS):
        for e in x.step(0):
            if isinstance(e, Trade):
                trades.append(e)
            elif isinstance(e, BookUpdate):
                seq = e.seq
                book.apply(e.changes)
                top = (*(book.best_bid() or (0, 0)), *(book.best_ask() or (0, 0)))
                if top != last:
                    tops.append((seq, *top))
                    last = top
                bids, asks = book.snapshot(10)
                DEPTH.setdefault(symbol, {})[seq] = (
                    [p for p, _ in bids],
                    [q for _, q in bids],
                    [p for p, _ in asks],
                    [q for _, q in asks],
                )
    return x, trades, seq


async def follow_book(url: str, symbol: str, final_seq: int) -> tuple[BookMirror, list[int], int]:
    """Subscribe like a trader; apply snapshot + deltas until the final seq."""
    async with connect(url) as ws:
        mirror = await mirror_for(ws, symbol)
        applied: list[int] = []
        trades_seen = 0
        deadline = time.monotonic() + 60
        while mirror is None:
            assert time.monotonic() < deadline, "the node never listed the symbol"
            await asyncio.sleep(0.2)
            mirror = await mirror_for(ws, symbol)
        await request(
            ws,
            {
                "op": "subscribe",
                "id": 2,
                "channels": [
                    {"channel": "book", "symbol": symbol},
                    {"channel": "trades", "symbol": symbol},
                ],
            },
        )
        async for msg in messages(ws):
            assert time.monotonic() < deadline, f"book stuck at seq {mirror.seq} of {final_seq}"
            if msg["type"] == "subscribed":
                assert msg["refused"] == []
            elif msg["type"] in ("snapshot", "book"):
                mirror.apply(msg)
                if msg["type"] == "book":
                    applied.append(msg["seq"])
                assert not mirror.crossed()
                if mirror.seq == final_seq:
                    return mirror, applied, trades_seen
            elif msg["type"] == "trade":
                trades_seen += 1
    raise AssertionError("connection closed early")


def test_feed_to_fanout_redis_and_timescaledb(
    hub_process: Any, database: str, unique: str, services: dict[str, str]
) -> None:
    env = {
        **stack_env(services, unique),
        "HUB_POSTGRES__DSN": database,
    }
    migrate = hub_process("db", "migrate", env=env)
    assert migrate.wait() == 0, migrate.stderr()
    assert "001_trades.sql" in "".join(migrate.output)

    # Rebuilt before the feed starts: done after it (seconds of CPU on a loaded machine),
    # the clients subscribed once most of the stream had passed.
    expected = {s: rebuild(s) for s in SYMBOLS}
    recorder = hub_process("recorder", "--group", unique, "--metrics-port", "0", env=env)
    recorder_ops = int(recorder.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics").group(1))
    fanout = hub_process("fanout", "--port", "0", env={**env, "HUB_FANOUT__ANONYMOUS": "true"})
    port = int(fanout.wait_for(r"serving ws://127.0.0.1:(\d+)/ws").group(1))
    feed = hub_process(
        "feed",
        "--symbols",
        ",".join(SYMBOLS),
        "--seed",
        str(SEED),
        "--rate",
        "1000",
        "--max-orders",
        str(ORDERS),
        "--metrics-port",
        "0",
        env=env,
    )
    feed_ops = int(feed.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics").group(1))

    url = f"ws://127.0.0.1:{port}/ws"

    async def follow_all() -> dict[str, tuple[BookMirror, list[int], int]]:
        results = await asyncio.gather(*(follow_book(url, s, expected[s][2]) for s in SYMBOLS))
        return dict(zip(SYMBOLS, results, strict=True))

    followed = asyncio.run(follow_all())
    for symbol, (mirror, applied, _trades_seen) in followed.items():
        x, _trades, final_seq = expected[symbol]
        # The client's book, built from snapshot + deltas, equals the feed's book exactly.
        assert mirror.depth(0) == [(p, s) for p, s, _n in x.engine.depth(0)]
        assert mirror.depth(1) == [(p, s) for p, s, _n in x.engine.depth(1)]
        assert len(applied) > final_seq // 2, "most of the stream must arrive as deltas"
        assert applied == list(range(final_seq - len(applied) + 1, final_seq + 1)), (
            "deltas gap-free"
        )

    # Redis holds the final snapshot of each book with its seq.
    r = redis.Redis.from_url(services["redis"])
    for symbol in SYMBOLS:
        x, _trades, final_seq = expected[symbol]
        snap = decode(r.get(f"{unique}:book:SIM:{symbol}"))  # type: ignore[arg-type]
        assert isinstance(snap, BookSnapshot)
        assert snap.seq == final_seq
        assert list(snap.bids) == [(p, s) for p, s, _n in x.engine.depth(0)]
        assert list(snap.asks) == [(p, s) for p, s, _n in x.engine.depth(1)]

    # Every trade is in the hypertable exactly once, with exact values.
    epochs = {s: decode_as(r.get(f"{unique}:book:SIM:{s}"), BookSnapshot).epoch for s in SYMBOLS}  # type: ignore[arg-type]
    want = sorted(  # the feed's trade ids name its epoch: unique across restarts
        (s, t.seq, f"{epochs[s]}-{t.seq}", t.price, t.size, t.side)
        for s in SYMBOLS
        for t in expected[s][1]
    )
    rows: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + 60
    with psycopg.connect(database, autocommit=True) as conn:
        while time.monotonic() < deadline:
            rows = conn.execute(
                "SELECT symbol, seq, trade_id, price_ticks, size_lots, side FROM trades "
                "ORDER BY symbol, seq"
            ).fetchall()
            if len(rows) >= len(want):
                break
            time.sleep(0.3)
        assert [tuple(r) for r in rows] == want
        hypertables = conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables"
        ).fetchall()
        assert ("trades",) in hypertables
        first = expected["BTC-USD"][1][0]
        price, size = conn.execute(
            "SELECT price::text, size::text FROM trades_decimal "
            "WHERE symbol = 'BTC-USD' AND seq = 1"
        ).fetchone()  # type: ignore[misc]
        inst = expected["BTC-USD"][0].instrument
        assert (price, size) == (inst.tick.to_str(first.price), inst.lot.to_str(first.size))
        # Every top-of-book change, once, as a book rebuilt from the updates says.
        want_tops = [(s, *t) for s in sorted(SYMBOLS) for t in TOPS[s]]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            tops = conn.execute(
                "SELECT symbol, seq, bid_ticks, bid_lots, ask_ticks, ask_lots FROM top_of_book "
                "ORDER BY symbol, seq"
            ).fetchall()
            if len(tops) >= len(want_tops):
                break
            time.sleep(0.3)
        assert [tuple(r) for r in tops] == want_tops and len(want_tops) > 1000
        # Periodic top-10 snapshots: each is the book rebuilt from the updates at its seq,
        # and the final books are there.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            snaps = conn.execute(
                "SELECT symbol, seq, bid_ticks, bid_lots, ask_ticks, ask_lots "
                "FROM book_snapshots ORDER BY symbol, seq"
            ).fetchall()
            if {(s, expected[s][2]) for s in SYMBOLS} <= {(r[0], r[1]) for r in snaps}:
                break
            time.sleep(0.3)
        assert {(s, expected[s][2]) for s in SYMBOLS} <= {(r[0], r[1]) for r in snaps}
        for symbol, seq, *levels in snaps:
            assert tuple(levels) == DEPTH[symbol][seq], (symbol, seq)
        assert len(snaps) > 2 * len(SYMBOLS)

        # The candles channel shows the bars the database holds (the recorder publishes
        # each bar it stores to Kafka; the fanout node serves them).
        for interval in (1, 60):
            db_bars = {
                (r[0], r[1]): tuple(r[2:])
                for r in conn.execute(
                    "SELECT symbol, (extract(epoch FROM bucket) * 1e9)::bigint, open, high, "
                    "low, close, volume::bigint, notional, trades FROM bars "
                    "WHERE interval_s = %s",
                    (interval,),
                ).fetchall()
            }
            assert db_bars
            # The recorder publishes a batch's bars right after its commit: the node may
            # be a moment behind the database.
            deadline = time.monotonic() + 15
            served = asyncio.run(candles(url, interval))
            while served != db_bars and time.monotonic() < deadline:
                time.sleep(0.3)
                served = asyncio.run(candles(url, interval))
            assert served == db_bars

    # Each process exports its own components' metrics only (a recorder's "database up"
    # is never diluted by zeros from processes that have no database).
    assert components(feed_ops) == {"feed", "kafka"}
    assert components(port) == {"fanout"}
    assert components(recorder_ops) == {"recorder"}
    for p in (fanout, feed, recorder):
        assert p.stop() == 0, p.stderr()


async def candles(url: str, interval: int) -> dict[tuple[str, int], tuple[Any, ...]]:
    """Every symbol's recent candles from the node, back in integer ticks and lots."""
    out: dict[tuple[str, int], tuple[Any, ...]] = {}
    async with HubClient(url) as client:
        await client.subscribe(
            [{"channel": "candles", "symbol": s, "interval": interval} for s in SYMBOLS]
        )
        seen = 0
        async for msg in client.messages():
            if msg["type"] != "candles":
                continue
            s = client.streams["SIM", msg["symbol"]]
            tick, lot = Unit(s["tick_size"]), Unit(s["lot_size"])
            for b in msg["bars"]:
                out[msg["symbol"], b["start"]] = (
                    tick.to_units(b["open"]),
                    tick.to_units(b["high"]),
                    tick.to_units(b["low"]),
                    tick.to_units(b["close"]),
                    lot.to_units(b["volume"]),
                    Decimal(b["notional"]) / Decimal(s["tick_size"]) / Decimal(s["lot_size"]),
                    b["trades"],
                )
            seen += 1
            if seen == len(SYMBOLS):
                return out
    raise AssertionError("connection closed early")
