"""One set of bars: the recorder's SQL bars (recorder.writer, real PostgreSQL) and the
fanout's in-memory candles (fanout.stream.BarBuilder, the embedded hub's) built from the
same trades, late and out-of-order ones included, are equal for every interval."""

from __future__ import annotations

import asyncio
import random
import re

import asyncpg
import pytest

from fanout.protocol import CANDLE_INTERVALS
from fanout.stream import BarBuilder
from hub.db import SQL_DIR, bar_from_row, migrate
from hub.events import BAR_INTERVALS, Bar, Instrument, Trade
from recorder.writer import write_batch

DAY_NS = 86_400 * 10**9
T0 = 1_790_035_200 * 10**9 - 2 * 3600 * 10**9  # 2026-09-22 00:00 UTC less 2 h: two days
Key = tuple[str, str, int, int]


def make_trades(seed: int, n: int) -> list[Trade]:
    """Trades over four hours across midnight, in nanoseconds (not whole microseconds, as
    venues stamp them), with groups that share a microsecond or a timestamp."""
    rng = random.Random(seed)
    out: list[Trade] = []
    seq = {"BTC-USD": 0, "ETH-USD": 0}
    while len(out) < n:
        symbol = rng.choice(list(seq))
        ts = T0 + rng.randrange(4 * 3600 * 10**9)
        if rng.random() < 0.2:  # a burst in one microsecond (or one nanosecond)
            stamps = [ts + rng.choice([0, rng.randrange(1000)]) for _ in range(rng.randint(2, 4))]
        else:
            stamps = [ts]
        for at in stamps:
            seq[symbol] += 1
            out.append(
                Trade(
                    "SIM",
                    symbol,
                    seq[symbol],
                    f"{symbol}-{seq[symbol]}",
                    rng.randrange(99_000, 101_000),
                    rng.randrange(1, 500),
                    rng.randrange(3),
                    at,
                    at,
                )
            )
    return out


def delivery(trades: list[Trade], seed: int) -> list[list[Trade]]:
    """The trades as batches arrive: shuffled, then the late quarter after everything else."""
    rng = random.Random(seed)
    on_time, late = trades[: len(trades) * 3 // 4], trades[len(trades) * 3 // 4 :]
    rng.shuffle(on_time)
    rng.shuffle(late)
    stream = on_time + late
    batches, i = [], 0
    while i < len(stream):
        size = rng.randint(1, 300)
        batches.append(stream[i : i + size])
        i += size
    return batches


def fanout_bars(batches: list[list[Trade]]) -> tuple[dict[Key, Bar], dict[Key, Bar]]:
    """The builder's bars, and the last copy it handed out for each bucket."""
    builder = BarBuilder(CANDLE_INTERVALS)
    sent: dict[Key, Bar] = {}
    for batch in batches:
        for t in batch:
            for bar in builder.add(t.venue, t.symbol, t.price, t.size, t.ts_event, t.seq):
                sent[bar.venue, bar.symbol, bar.interval_s, bar.start] = bar
    return dict(builder.bars), sent


@pytest.mark.services
@pytest.mark.parametrize("seed", [1, 2])
def test_recorder_bars_equal_fanout_candles(database: str, seed: int) -> None:
    migrate(database)
    trades = make_trades(seed, 2500)
    batches = delivery(trades, seed)
    built, sent = fanout_bars(batches)

    async def recorded() -> tuple[dict[Key, Bar], dict[Key, Bar]]:
        conn = await asyncpg.connect(database)
        published: dict[Key, Bar] = {}
        try:
            inst = [Instrument("SIM", s, "0.01", "0.0001") for s in ("BTC-USD", "ETH-USD")]
            for i, batch in enumerate(batches):
                bars: list[Bar] = []
                await write_batch(conn, batch, inst if i == 0 else [], bars=bars)
                for bar in bars:
                    published[bar.venue, bar.symbol, bar.interval_s, bar.start] = bar
            rows = await conn.fetch("SELECT * FROM bars")
        finally:
            await conn.close()
        stored = {}
        for r in rows:
            bar = bar_from_row(r)
            stored[bar.venue, bar.symbol, bar.interval_s, bar.start] = bar
        return stored, published

    stored, published = asyncio.run(recorded())
    for interval in BAR_INTERVALS:
        mine = {k: b for k, b in stored.items() if k[2] == interval}
        theirs = {k: b for k, b in built.items() if k[2] == interval}
        assert mine, interval
        assert mine == theirs, interval
    assert len({k[3] for k in stored if k[2] == 86_400}) == 2  # both days have a bar
    assert published == stored  # what the recorder publishes is what it stored
    assert sent == built  # and the candles the fanout sent last are its final bars


def test_the_migration_allows_exactly_the_bar_intervals() -> None:
    sql = (SQL_DIR / "002_bars_dead_letters.sql").read_text()
    allowed = re.search(r"CHECK \(interval_s IN \(([\d, ]+)\)\)", sql)
    assert allowed is not None
    assert tuple(int(x) for x in allowed[1].split(",")) == BAR_INTERVALS
    assert CANDLE_INTERVALS == BAR_INTERVALS
