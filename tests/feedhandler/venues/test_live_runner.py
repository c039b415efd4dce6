"""The live runner against a local mock venue: a dropped connection is followed by a
reconnect and a resync, and the final book equals the venue's."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from app.launch import build_source
from bus.local import InProcessBus, MemorySnapshots
from bus.output import FEED_STATS
from feedhandler.venues.binance import BinanceParser
from feedhandler.venues.kraken import KrakenParser
from feedhandler.venues.runner import LiveRunner
from hub.backoff import Backoff
from hub.config import FeedConfig
from hub.events import BookUpdate, Event, Status
from orderbook_core import L2Book
from orderbook_core.types import F_SNAPSHOT
from testing.mock_venue import MockBinance, MockKrakenV2
from tests.conftest import CAPTURES

CAPTURE = CAPTURES / "kraken-v2-book10_BTC-USD_2023-08.jsonl.zst"


class Mirror:
    """A downstream consumer: rebuilds the book from the published, gap-free updates only."""

    def __init__(self) -> None:
        self.book = L2Book()
        self.seq = 0
        self.snapshots = 0
        self.states: list[str] = []

    async def publish(self, events: Sequence[Event]) -> None:
        for e in events:
            if isinstance(e, BookUpdate):
                assert e.seq == self.seq + 1, (self.seq, e.seq)
                self.seq = e.seq
                self.snapshots += bool(e.flags & F_SNAPSHOT)
                self.book.apply(e.changes)
            elif isinstance(e, Status):
                self.states.append(e.state)


async def until_venue_done(
    run: Coroutine[Any, Any, None], venue: MockKrakenV2 | MockBinance, converged: Callable[[], bool]
) -> None:
    """Run the client until the venue has sent everything and the client has caught up
    (at most ~15 s more: a resync after the last frame waits for its resubscription, slow on
    a loaded machine), then stop both."""
    task = asyncio.create_task(run)
    try:
        await asyncio.wait_for(venue.done.wait(), 30)
        for _ in range(750):
            if converged():
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await venue.stop()


async def test_reconnect_resyncs_and_ends_with_the_venues_book() -> None:
    venue = MockKrakenV2(CAPTURE, drop_after=150, skip_while_away=40)
    port = await venue.start()
    parser = KrakenParser()
    mirror = Mirror()
    runner = LiveRunner(
        parser,
        f"ws://127.0.0.1:{port}",
        ["BTC/USD"],
        mirror,
        backoff=Backoff(0.05, 0.2, "full"),
        seed=1,
    )
    await until_venue_done(
        runner.run(),
        venue,
        lambda: (
            parser.books["BTC/USD"].book.snapshot() == venue.truth.books["BTC/USD"].book.snapshot()
        ),
    )
    truth = venue.truth.books["BTC/USD"].book.snapshot()
    stats = parser.books["BTC/USD"].stats
    assert (runner.connections, venue.connections) == (2, 2)
    assert stats.snapshots == 2 and stats.checksums_failed == 0
    assert stats.checksums_ok > 400  # every update after each snapshot verified
    assert parser.books["BTC/USD"].book.snapshot() == truth
    assert mirror.book.snapshot() == truth and mirror.snapshots == 2
    assert mirror.states == ["stale", "resynced"]


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    runs = []
    for seed in range(200):
        b = Backoff(0.5, 4.0, "full", random.Random(seed))
        runs.append([b.next() for _n in range(6)])
    delays = [list(ds) for ds in zip(*runs, strict=True)]  # per attempt
    for n, ds in enumerate(delays):
        assert all(0 <= d <= min(4.0, 0.5 * 2**n) for d in ds)
        assert max(ds) > 0.8 * min(4.0, 0.5 * 2**n)  # the jitter covers the whole window


async def run_against_binance(venue: MockBinance) -> tuple[LiveRunner, BinanceParser, Mirror]:
    port = await venue.start()
    parser = BinanceParser()
    mirror = Mirror()
    rest = f"http://127.0.0.1:{port}"
    runner = LiveRunner(
        parser,
        f"ws://127.0.0.1:{port}{parser.stream_url([venue.raw])}",
        [venue.symbol],
        mirror,
        rest=rest,
        backoff=Backoff(0.05, 0.2, "full"),
        seed=2,
    )
    await until_venue_done(
        runner.run(),
        venue,
        lambda: (
            (sync := parser.books.get(venue.symbol)) is not None
            and sync.live
            and sync.book.snapshot() == venue.truth()
        ),
    )
    return runner, parser, mirror


async def test_binance_gap_refetches_the_snapshot_and_converges() -> None:
    venue = MockBinance(lose_frame=120)
    runner, parser, mirror = await run_against_binance(venue)
    stats = parser.books["BTC-USD"].stats
    assert stats.gaps == 1 and stats.snapshots == 2  # the lost diff forced one REST resync
    assert runner.connections == 1
    assert parser.books["BTC-USD"].book.snapshot() == venue.truth()
    assert mirror.book.snapshot() == venue.truth()


async def test_binance_reconnect_resyncs_from_rest_and_converges() -> None:
    venue = MockBinance(drop_after=150, skip_while_away=30)
    runner, parser, mirror = await run_against_binance(venue)
    assert runner.connections == 2 and venue.connections == 2
    assert parser.books["BTC-USD"].stats.snapshots == 2
    assert parser.books["BTC-USD"].book.snapshot() == venue.truth()
    assert mirror.book.snapshot() == venue.truth()


def test_stale_for_counts_from_the_first_check_that_saw_a_symbol_stale() -> None:
    parser = KrakenParser()
    runner = LiveRunner(parser, "ws://127.0.0.1:9", ["BTC/USD", "ETH/USD"], Mirror())
    assert runner.stale_for(100.0) == {"BTC/USD": 0.0, "ETH/USD": 0.0}  # no book yet
    assert runner.stale_for(112.5) == {"BTC/USD": 12.5, "ETH/USD": 12.5}
    runner.stale_since.pop("ETH/USD")  # as if it had been live in between
    assert runner.stale_for(120.0) == {"BTC/USD": 20.0, "ETH/USD": 0.0}


def test_the_feeds_health_fails_once_a_book_stays_stale_past_the_alarm() -> None:
    cfg = FeedConfig(source="kraken", symbols=("BTC/USD",), stale_alarm_s=30.0)
    source = build_source(cfg, InProcessBus(), MemorySnapshots())
    runner = FEED_STATS.runners[-1]
    assert source.health()["ok"] is False  # not connected yet
    runner.connected = True
    first = source.health()
    assert first["ok"] is True and first["stale"] == ["BTC/USD"]  # resyncing, for now
    runner.stale_since["BTC/USD"] -= 31.0
    late = source.health()
    assert late["ok"] is False and late["stale_too_long"] == ["BTC/USD"]
