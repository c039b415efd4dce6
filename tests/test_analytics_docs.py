"""Every query in docs/analytics.md runs against a filled database, and its answer equals
the same figure computed independently in Python."""

from __future__ import annotations

import asyncio
import random
import re
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

import asyncpg
import pytest

from hub.db import migrate
from hub.events import BookSnapshot, Instrument, TopOfBook, Trade
from hub.symbology import listed, spot
from recorder.writer import DeadLetter, write_batch
from tests.conftest import ROOT
from tests.recorder.test_writer import T0, make_trades

pytestmark = pytest.mark.services
TICK = Decimal("0.01")
LOT = Decimal("0.0001")


def queries() -> dict[str, str]:
    doc = (ROOT / "docs" / "analytics.md").read_text()
    return dict(re.findall(r"```sql name=(\w+)\n(.*?)```", doc, re.S))


EPOCHS = (1_790_000_000_000_000_001, 1_790_000_005_000_000_002)
"""Two incarnations of the SIM streams: a restart started the second, its seqs again at 1."""


def data() -> tuple[list[Trade], list[Trade]]:
    sim = [
        replace(t, epoch=EPOCHS[0])
        if t.seq <= 2000
        else replace(t, epoch=EPOCHS[1], seq=t.seq - 2000)
        for t in make_trades(11, 4000)
        if t.seq % 97 != 0  # holes: seqs 97, 194, ... (in both epochs' numbering)
    ]
    other = [
        Trade(
            "OTHER",
            "XBT/USD",  # Kraken's name of BTC-USD
            t.seq,
            f"o{t.seq}",
            t.price + 3,
            t.size,
            t.side,
            t.ts_event + 1000,
            t.ts_recv,
        )
        for t in make_trades(12, 500)
    ]
    return sim, other


def tops() -> list[TopOfBook]:
    """Top-of-book changes over three hours for both symbols; some with an empty side."""
    rng = random.Random(13)
    out = []
    for seq in range(1, 1500):
        symbol = rng.choice(["BTC-USD", "ETH-USD"])
        ts = T0 + seq * 7 * 10**9 + rng.randrange(10**9)
        bid = rng.randrange(99_000, 100_000)
        ask = bid + rng.randrange(1, 50)
        if rng.random() < 0.03:
            bid = 0  # no bids for a moment: no spread
        out.append(
            TopOfBook(
                "SIM",
                symbol,
                seq,
                ts,
                ts,
                bid,
                rng.randrange(1, 500) if bid else 0,
                ask,
                rng.randrange(1, 500),
            )
        )
    return out


def other_tops() -> list[TopOfBook]:
    """The other venue's quotes of XBT/USD (canonical BTC-USD), a little off SIM's."""
    rng = random.Random(19)
    out = []
    for seq in range(1, 900):
        ts = T0 + seq * 11 * 10**9 + rng.randrange(10**9)
        bid = rng.randrange(99_000, 100_000)
        out.append(
            TopOfBook("OTHER", "XBT/USD", seq, ts, ts, bid, 5, bid + rng.randrange(1, 50), 7)
        )
    return out


def snapshots() -> list[BookSnapshot]:
    """Top-10 snapshots every 20 s for two hours, both symbols, 3 to 10 levels a side."""
    rng = random.Random(17)
    out = []
    for i in range(360):
        for symbol in ("BTC-USD", "ETH-USD"):
            ts = T0 + i * 20 * 10**9
            mid = 100_000 + rng.randrange(-50, 50)
            bids = tuple((mid - k, rng.randrange(1, 900)) for k in range(1, rng.randrange(4, 11)))
            asks = tuple((mid + k, rng.randrange(1, 900)) for k in range(1, rng.randrange(4, 11)))
            out.append(BookSnapshot("SIM", symbol, i + 1, ts, bids, asks))
    return out


def micros(t: Trade) -> int:
    return t.ts_event // 1000


def expected(name: str, sim: list[Trade], other: list[Trade]) -> list[tuple[Any, ...]]:
    def when(us: int) -> datetime:
        return datetime.fromtimestamp(us // 10**6, tz=UTC)

    def ordered(ts: list[Trade]) -> list[Trade]:
        return sorted(ts, key=lambda t: (t.ts_event, t.epoch, t.seq))  # as the SQL

    if name == "bars_any_interval":
        groups: dict[int, list[Trade]] = defaultdict(list)
        for t in (t for t in sim if t.symbol == "BTC-USD"):
            groups[micros(t) // (900 * 10**6)].append(t)
        return [
            (
                when(b * 900 * 10**6),
                ordered(ts)[0].price * TICK,
                max(t.price for t in ts) * TICK,
                min(t.price for t in ts) * TICK,
                ordered(ts)[-1].price * TICK,
                sum(t.size for t in ts) * LOT,
                len(ts),
            )
            for b, ts in sorted(groups.items())
        ]
    if name == "vwap_per_hour":
        hours: dict[tuple[str, int], list[Trade]] = defaultdict(list)
        for t in sim:
            hours[t.symbol, micros(t) // (3600 * 10**6)].append(t)
        return [
            (
                when(h * 3600 * 10**6),
                s,
                Decimal(sum(t.price * t.size for t in ts)) / sum(t.size for t in ts) * TICK,
            )
            for (s, h), ts in sorted(hours.items())
        ]
    if name == "trade_size_distribution":
        counts: dict[tuple[str, int], int] = defaultdict(int)
        for t in sim:
            counts[t.symbol, len(str(t.size)) - 1] += 1
        return [(s, m, n) for (s, m), n in sorted(counts.items())]
    if name == "feed_gaps":
        out = []
        for symbol in ("BTC-USD", "ETH-USD"):
            for epoch in EPOCHS:
                seqs = [0, *sorted(t.seq for t in sim if (t.symbol, t.epoch) == (symbol, epoch))]
                out += [
                    ("SIM", symbol, epoch, a + 1, b - 1) for a, b in pairwise(seqs) if b - a > 1
                ]
        return out

    def exact(us: int) -> datetime:
        return when(us).replace(microsecond=us % 10**6)

    if name == "epochs":
        streams: dict[tuple[str, str, int], list[Trade]] = defaultdict(list)
        for t in [*sim, *other]:
            streams[t.venue, t.symbol, t.epoch].append(t)
        return sorted(
            (
                (
                    v,
                    s,
                    e,
                    exact(min(micros(t) for t in ts)),
                    exact(max(micros(t) for t in ts)),
                    min(t.seq for t in ts),
                    max(t.seq for t in ts),
                    len(ts),
                )
                for (v, s, e), ts in streams.items()
            ),
            key=lambda r: (r[0], r[1], r[3]),
        )
    if name == "venue_comparison":
        rows: dict[tuple[int, str, str], list[Trade]] = defaultdict(list)
        for t in [*sim, *other]:
            if t.symbol in ("BTC-USD", "XBT/USD"):
                rows[micros(t) // (3600 * 10**6), t.venue, t.symbol].append(t)
        return [
            (
                when(h * 3600 * 10**6),
                v,
                s,
                Decimal(sum(t.price * t.size for t in ts)) / sum(t.size for t in ts) * TICK,
                sum(t.size for t in ts) * LOT,
                len(ts),
            )
            for (h, v, s), ts in sorted(rows.items())
        ]
    if name == "best_across_venues":
        last: dict[tuple[int, str], TopOfBook] = {}
        quotes = [q for q in tops() if q.symbol == "BTC-USD"] + other_tops()
        for q in sorted(quotes, key=lambda q: (q.ts_event // 1000, q.seq)):
            last[q.ts_event // 1000 // (60 * 10**6), q.venue] = q
        best: dict[int, list[TopOfBook]] = defaultdict(list)
        for (m, _v), q in last.items():
            best[m].append(q)
        answer: list[tuple[Any, ...]] = []
        for m, qs in sorted(best.items()):
            bids = [q.bid_price * TICK for q in qs if q.bid_price]
            ask = min(q.ask_price for q in qs) * TICK
            bid = max(bids) if bids else None
            answer.append((when(m * 60 * 10**6), bid, ask, None if bid is None else ask - bid))
        return answer
    if name == "units_at":
        return [
            ("OTHER", "XBT/USD", "BTC-USD", TICK, LOT),
            ("SIM", "BTC-USD", "BTC-USD", TICK, LOT),
            ("SIM", "ETH-USD", "ETH-USD", TICK, LOT),
        ]
    if name == "dead_letters":
        return [("md.trades", 0, 9, "non-positive size 0"), ("md.trades", 0, 8, "undecodable")]
    if name == "depth_per_minute":
        books: dict[tuple[str, int], list[BookSnapshot]] = defaultdict(list)
        for snap in snapshots():
            books[snap.symbol, snap.ts_event // 1000 // (60 * 10**6)].append(snap)
        return [
            (
                when(m * 60 * 10**6),
                s,
                Decimal(sum(sum(q for _p, q in x.bids[:5]) for x in xs)) / len(xs),
                Decimal(sum(sum(q for _p, q in x.asks[:5]) for x in xs)) / len(xs),
                len(xs),
            )
            for (s, m), xs in sorted(books.items())
        ]
    if name == "spread_per_minute":
        minutes: dict[tuple[str, int], list[TopOfBook]] = defaultdict(list)
        for q in tops():
            if q.bid_price and q.ask_price:
                minutes[q.symbol, q.ts_event // 1000 // (60 * 10**6)].append(q)
        return [
            (
                when(m * 60 * 10**6),
                s,
                Decimal(sum(q.ask_price - q.bid_price for q in qs)) / len(qs) * TICK,
                max(q.ask_price - q.bid_price for q in qs) * TICK,
                Decimal(sum(q.bid_size + q.ask_size for q in qs)) * LOT / len(qs),
                len(qs),
            )
            for (s, m), qs in sorted(minutes.items())
        ]
    raise AssertionError(f"no independent answer for query {name!r}")


def same(got: Any, want: Any) -> bool:
    if isinstance(want, Decimal) and isinstance(got, Decimal):
        return abs(got - want) < Decimal("1e-12")
    return bool(got == want)


def test_every_documented_query_gives_the_independent_answer(database: str) -> None:
    migrate(database)
    sim, other = data()
    docs = queries()
    assert set(docs) == {
        "bars_any_interval",
        "vwap_per_hour",
        "trade_size_distribution",
        "feed_gaps",
        "epochs",
        "venue_comparison",
        "units_at",
        "best_across_venues",
        "dead_letters",
        "spread_per_minute",
        "depth_per_minute",
    }

    async def scenario() -> None:
        conn = await asyncpg.connect(database)
        try:
            instruments = [
                listed(Instrument(v, s, "0.01", "0.0001"), spot(v, s, *pair))
                for v, s, pair in (
                    ("SIM", "BTC-USD", ("BTC", "USD")),
                    ("SIM", "ETH-USD", ("ETH", "USD")),
                    ("OTHER", "XBT/USD", ("XBT", "USD")),
                )
            ]
            await write_batch(conn, sim, instruments)
            await write_batch(
                conn,
                other,
                [],
                [
                    DeadLetter("md.trades", 0, 8, "undecodable", b"x"),
                    DeadLetter("md.trades", 0, 9, "non-positive size 0", b"y"),
                ],
            )
            await write_batch(conn, [], [], tops=tops() + other_tops(), snapshots=snapshots())
            await conn.execute(
                'UPDATE dead_letters SET recorded_at = now() + make_interval(secs => "offset")'
            )
            for name, sql in docs.items():
                rows = [tuple(r) for r in await conn.fetch(sql)]
                if name == "dead_letters":
                    rows = [r[:4] for r in rows]
                want = expected(name, sim, other)
                assert len(rows) == len(want), name
                for got_row, want_row in zip(rows, want, strict=True):
                    assert all(same(g, w) for g, w in zip(got_row, want_row, strict=True)), (
                        name,
                        got_row,
                        want_row,
                    )
        finally:
            await conn.close()

    asyncio.run(scenario())
