"""``db:VENUE:SYMBOL`` replays what the recorder stored (real PostgreSQL + TimescaleDB,
written by the recorder's own ``write_batch``): trades and top-of-book snapshots in event
time, each in the units that applied at its time (a tick-size change mid-range sends a
new ``instrument`` before the first row under it), a range, merging with a file source,
and refusals for a stream the database does not hold or a node without a database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.files import replay_opener
from bus.local import MemorySnapshots
from client.market import BookMirror
from fanout.node import FanoutNode
from feedhandler.files.sample import write_samples
from hub.config import FanoutConfig
from hub.db import migrate
from hub.events import BookSnapshot, Instrument, Trade
from hub.ops import bound_port
from recorder.writer import write_batch
from tests.fanout.test_replay_endpoint import GEMINI, messages

T0 = 1_790_000_000 * 10**9  # 2026-09-21, ns
S = 10**9
OLD = Instrument("SIM", "BTC-USD", "0.01", "0.001", canonical="BTC-USD", kind="spot")
NEW = Instrument("SIM", "BTC-USD", "0.1", "0.01", canonical="BTC-USD", kind="spot")


def trade(seq: int, price: int) -> Trade:
    ts = T0 + seq * S
    return Trade("SIM", "BTC-USD", seq, f"t{seq}", price, 3, seq % 2, ts, ts + 5, epoch=7)


def snap(seq: int, ts: int, bid: int) -> BookSnapshot:
    bids, asks = ((bid, 40), (bid - 1, 7)), ((bid + 2, 5),)
    return BookSnapshot("SIM", "BTC-USD", seq, ts, bids, asks, epoch=7)


@pytest.fixture
def recorded(database: str) -> str:
    """Trades 1-10 a second apart under OLD units (a snapshot at 5.5 s), then 11-20 under
    NEW (a snapshot at 15.5 s)."""
    migrate(database)

    async def write() -> None:
        conn = await asyncpg.connect(database)
        try:
            before = [trade(n, 10_000 + n) for n in range(1, 11)]
            after = [trade(n, 1_000 + n) for n in range(11, 21)]
            await write_batch(conn, before, [OLD], snapshots=[snap(1, T0 + 55 * S // 10, 10_000)])
            await write_batch(conn, after, [NEW], snapshots=[snap(2, T0 + 155 * S // 10, 1_000)])
        finally:
            await conn.close()

    asyncio.run(write())
    return database


def replay(dsn: str, query: str, folder: Path | None = None) -> tuple[list[dict[str, Any]], Any]:
    async def run() -> tuple[list[dict[str, Any]], Any]:
        dirs = (str(folder),) if folder else ()
        cfg = FanoutConfig(port=0, anonymous=True, replay_dirs=dirs)
        node = FanoutNode(cfg, MemorySnapshots(), dsn=dsn)
        node.replays.opener = replay_opener(cfg)
        server = await node.start()
        try:
            return await messages(f"ws://127.0.0.1:{bound_port(server)}/replay?{query}")
        finally:
            await node.stop()

    return asyncio.run(run())


def test_recorded_trades_and_books_replay_in_the_units_of_their_time(recorded: str) -> None:
    msgs, close = replay(recorded, "sources=db:SIM:BTC-USD")
    assert close == (1000, "replay ended")
    body = [m for m in msgs if m["type"] in ("instrument", "trade", "snapshot")]
    kinds = [m["type"] if m["type"] != "trade" else m["seq"] for m in body]
    # OLD's units, trades 1-5, the snapshot at 5.5 s, trades 6-10; NEW's units from the
    # first row stored under them (trade 11), the snapshot at 15.5 s.
    assert kinds == [
        "instrument", 1, 2, 3, 4, 5, "snapshot", 6, 7, 8, 9, 10,
        "instrument", 11, 12, 13, 14, 15, "snapshot", 16, 17, 18, 19, 20,
    ]  # fmt: skip
    units = [(m["tick_size"], m["lot_size"]) for m in body if m["type"] == "instrument"]
    assert units == [("0.01", "0.001"), ("0.1", "0.01")]
    trades = {m["seq"]: m for m in msgs if m["type"] == "trade"}
    assert (trades[1]["price"], trades[1]["size"], trades[1]["side"]) == ("100.01", "0.003", "sell")
    assert (trades[11]["price"], trades[11]["size"]) == ("101.1", "0.03")
    assert trades[11]["epoch"] == 7 and trades[11]["ts_recv"] == T0 + 11 * S + 5
    snaps = [m for m in msgs if m["type"] == "snapshot"]
    assert [(s["reason"], s["depth"], s["seq"], s["epoch"]) for s in snaps] == [
        ("recorded", 2, 1, 7),
        ("recorded", 2, 2, 7),
    ]
    assert snaps[0]["bids"] == [["100.00", "0.040"], ["99.99", "0.007"]]
    assert snaps[1]["bids"] == [["100.0", "0.40"], ["99.9", "0.07"]]
    for s, tick, lot in ((snaps[0], "0.01", "0.001"), (snaps[1], "0.1", "0.01")):
        assert BookMirror(tick, lot, s["depth"]).apply(s)  # its checksum verified
    assert msgs[-1]["state"] == "ended" and msgs[-1]["clock"] == T0 + 20 * S


def test_a_recorded_range_merges_with_a_file_source(recorded: str, tmp_path: Path) -> None:
    write_samples(tmp_path, 1)
    query = f"sources=capture:{GEMINI},db:SIM:BTC-USD&channels=trades&from={T0 + 12 * S}"
    msgs, _ = replay(recorded, query, tmp_path)
    trades = [m for m in msgs if m["type"] == "trade"]
    assert [t["seq"] for t in trades if t["venue"] == "SIM"] == list(range(12, 21))
    assert not any(t["venue"] == "GEMINI" for t in trades)  # all of it before 2026
    # Without the range both play, the 2019 capture first.
    msgs, _ = replay(recorded, f"sources=capture:{GEMINI},db:SIM:BTC-USD&channels=trades", tmp_path)
    venues = [m["venue"] for m in msgs if m["type"] == "trade"]
    assert venues == sorted(venues, key=lambda v: v == "SIM") and venues[-1] == "SIM"
    assert venues.count("SIM") == 20 and venues.count("GEMINI") > 0


def test_an_unknown_stream_or_no_database_is_refused_by_name(recorded: str) -> None:
    msgs, close = replay(recorded, "sources=db:SIM:DOGE-USD")
    assert msgs[0]["code"] == "bad_request" and close[0] == 1008
    assert "db:SIM:DOGE-USD: the database holds no stream SIM DOGE-USD" in msgs[0]["message"]
    msgs, _ = replay(recorded, "sources=db:SIM")
    assert "write db:VENUE:SYMBOL" in msgs[0]["message"]
    msgs, _ = replay("", "sources=db:SIM:BTC-USD", Path("."))
    assert "this node has no database (fanout.database)" in msgs[0]["message"]
