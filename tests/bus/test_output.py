"""FeedOutput's metrics: the event counter labels each event by its kind tag, and the live
runners' scrape-time metrics join a registry with the first runner, not at import."""

from __future__ import annotations

import subprocess
import sys

from prometheus_client import CollectorRegistry, generate_latest

from bus.local import InProcessBus, MemorySnapshots
from bus.output import KINDS, FeedOutput, FeedStats
from feedhandler.venues import VENUES
from feedhandler.venues.runner import LiveRunner
from hub.events import Bar, BookUpdate, Instrument, Status, TopOfBook, Trade
from hub.ops import metrics
from orderbook_core.types import F_LAST, F_SNAPSHOT
from tests.conftest import ROOT


def test_kind_labels_are_the_kind_tags() -> None:
    assert {cls.__name__: kind for cls, kind in KINDS.items()} == {
        "Instrument": "instrument",
        "BookUpdate": "book",
        "Trade": "trade",
        "BookSnapshot": "snapshot",
        "Status": "status",
        "TopOfBook": "bbo",
        "Bar": "bar",
        "Members": "members",
    }


async def test_published_events_are_counted_by_kind() -> None:
    def count(kind: str) -> float:
        labels = {"venue": "OUT", "symbol": "X", "kind": kind}
        return metrics("feed").get_sample_value("hub_feed_events_total", labels) or 0.0

    before = {k: count(k) for k in ("instrument", "book", "trade", "status", "bbo", "bar")}
    bus = InProcessBus()
    queue = bus.subscribe()
    output = FeedOutput(bus, MemorySnapshots(), lambda v, s: Instrument(v, s, "0.01", "1"))
    await output.publish(
        [
            BookUpdate("OUT", "X", 1, 1, 2, ((0, 100, 5),)),
            Trade("OUT", "X", 1, "1", 100, 1, 0, 1, 2),
            Status("OUT", "X", "halted", "", 1, 2),
            Bar("OUT", "X", 60, 0, 100, 100, 100, 100, 1, 100, 1),
        ]
    )
    after = {k: count(k) - n for k, n in before.items()}
    assert after == {"instrument": 1, "book": 1, "trade": 1, "status": 1, "bbo": 1, "bar": 1}
    kinds = [type(queue.get_nowait()) for _ in range(queue.qsize())]
    assert kinds == [Instrument, BookUpdate, Trade, Status, Bar, TopOfBook]


async def test_a_changed_instrument_is_published_before_the_snapshot_that_rebuilds_its_book() -> (
    None
):
    """A venue's tick change resyncs the book in the new units: the new Instrument goes out
    in front of that snapshot (the recorder starts a unit version there), and a snapshot
    with the same units, or a delta, announces nothing."""
    units = {"tick": "0.01"}
    bus = InProcessBus()
    queue = bus.subscribe()
    output = FeedOutput(bus, MemorySnapshots(), lambda v, s: Instrument(v, s, units["tick"], "1"))

    def snapshot(seq: int) -> BookUpdate:
        return BookUpdate("CHG", "X", seq, 1, 2, ((0, 100, 5),), F_LAST | F_SNAPSHOT)

    def delta(seq: int) -> BookUpdate:
        return BookUpdate("CHG", "X", seq, 1, 2, ((0, 100, 6),))

    await output.publish([snapshot(1), delta(2)])
    await output.publish([snapshot(3)])  # a resync in the same units
    units["tick"] = "0.1"
    await output.publish([delta(4)])  # the parser resyncs before any delta in new units
    await output.publish([snapshot(5), delta(6)])
    sent = [queue.get_nowait() for _ in range(queue.qsize())]
    seen = [
        (e.tick_size if isinstance(e, Instrument) else e.seq)
        for e in sent
        if isinstance(e, Instrument | BookUpdate)
    ]
    assert seen == ["0.01", 1, 2, 3, 4, "0.1", 5, 6]


def test_importing_the_output_registers_no_runner_metrics() -> None:
    code = (
        "from prometheus_client import generate_latest\n"
        "import bus.output\n"
        "from hub.ops import metrics\n"
        "text = generate_latest(metrics('feed')).decode()\n"
        "assert 'hub_feed_events_total' in text, text\n"
        "assert 'hub_feed_frames' not in text and 'hub_feed_book_live' not in text, text\n"
        "assert not bus.output.FEED_STATS.registered\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_feed_stats_join_the_registry_with_their_first_runner() -> None:
    registry = CollectorRegistry()
    stats = FeedStats(registry)
    assert b"hub_feed_frames" not in generate_latest(registry)
    runners = []
    for venue in ("kraken", "coinbase"):
        spec = VENUES[venue]
        runner = LiveRunner(spec.parser(), spec.url, ["BTC-USD"], InProcessBus())
        runner.frames = 7
        stats.add(runner)  # twice: registered once
        runners.append(runner)
    text = generate_latest(registry).decode()
    for runner in runners:
        assert f'hub_feed_frames_total{{venue="{runner.venue}"}} 7.0' in text
        assert f'hub_feed_connections_total{{venue="{runner.venue}"}} 0.0' in text
    assert stats.registered
