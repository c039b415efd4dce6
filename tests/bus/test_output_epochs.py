"""FeedOutput owns each stream's epoch and stamps the source checksum: every event it
publishes carries the stream's epoch, each book update the checksum of the book after it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from bus.local import InProcessBus, MemorySnapshots
from bus.output import FeedOutput, TopChecksum
from hub.events import BookSnapshot, BookUpdate, Event, Instrument, TopOfBook, Trade
from orderbook_core import L2Book

INST = Instrument("OUT", "X", "0.01", "1")


def drained(queue: object) -> list[Event]:
    out = []
    while not queue.empty():  # type: ignore[attr-defined]
        out.append(queue.get_nowait())  # type: ignore[attr-defined]
    return out


async def test_events_carry_the_streams_epoch_and_updates_the_source_checksum() -> None:
    bus, store = InProcessBus(), MemorySnapshots()
    queue = bus.subscribe()
    output = FeedOutput(bus, store, lambda v, s: INST)
    updates = [
        BookUpdate("OUT", "X", 1, 1, 2, ((0, 100, 5), (1, 102, 1))),
        BookUpdate("OUT", "X", 2, 1, 2, ((0, 101, 2),)),
    ]
    await output.publish([*updates, Trade("OUT", "X", 1, "1", 100, 1, 0, 1, 2)])
    events = [e for e in drained(queue) if not isinstance(e, Instrument)]
    epoch = output.streams["OUT", "X"].epoch
    assert epoch > 0 and all(e.epoch == epoch for e in events)  # type: ignore[union-attr]
    book = L2Book()
    for u in updates:
        book.apply(u.changes)
        assert u.checksum == book.checksum(10)
    assert [type(e) for e in events] == [BookUpdate, BookUpdate, Trade, TopOfBook, TopOfBook]
    await output.store_snapshots()
    snap = await store.get("OUT", "X")
    assert snap is not None and (snap.epoch, snap.seq) == (epoch, 2)

    # Another FeedOutput (the feed restarted) starts another epoch; one primed from a
    # snapshot (a restored checkpoint) continues the snapshot's.
    again = FeedOutput(bus, store, lambda v, s: INST)
    await again.publish([BookUpdate("OUT", "X", 1, 1, 2, ((0, 100, 5),))])
    assert again.streams["OUT", "X"].epoch > epoch
    restored = FeedOutput(bus, store)
    restored.prime(snap)
    await restored.publish([BookUpdate("OUT", "X", 3, 1, 2, ((0, 99, 1),))])
    assert restored.streams["OUT", "X"].epoch == epoch
    assert drained(queue)[-2].epoch == epoch  # type: ignore[union-attr]


class Failing(InProcessBus):
    async def publish(self, events: Sequence[Event]) -> None:
        raise ConnectionError("broker down")


async def test_a_batch_that_fails_to_publish_starts_a_new_epoch() -> None:
    output = FeedOutput(Failing(), MemorySnapshots())
    output.prime(BookSnapshot("OUT", "X", 0, 0, (), (), None, 7))
    with pytest.raises(ConnectionError):
        await output.publish([BookUpdate("OUT", "X", 1, 1, 2, ((0, 100, 5),))])
    state = output.streams["OUT", "X"]
    assert state.epoch not in (0, 7) and state.dirty and state.seq == 1


class Slow(InProcessBus):
    """A broker that takes ``delay`` seconds to acknowledge a batch."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.landed: list[Event] = []

    async def publish(self, events: Sequence[Event]) -> None:
        await asyncio.sleep(self.delay)
        self.landed += events


async def stopped_while_publishing(bus: Slow) -> FeedOutput:
    """A primed stream (epoch 7) stopped 50 ms into publishing one update."""
    output = FeedOutput(bus, MemorySnapshots())
    output.prime(BookSnapshot("OUT", "X", 0, 0, (), (), None, 7))
    task = asyncio.ensure_future(output.publish([BookUpdate("OUT", "X", 1, 1, 2, ((0, 100, 5),))]))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return output


async def test_a_stop_lets_the_batch_in_flight_land_and_keeps_the_epoch() -> None:
    bus = Slow(0.2)
    output = await stopped_while_publishing(bus)
    assert [e.seq for e in bus.landed if isinstance(e, BookUpdate)] == [1]
    assert output.streams["OUT", "X"].epoch == 7  # a clean stop: the stream continues
    assert output.published == len(bus.landed)


async def test_a_batch_that_cannot_land_within_the_stop_bound_starts_a_new_epoch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bus.output.STOP_DRAIN_S", 0.1)
    bus = Slow(30)
    output = await stopped_while_publishing(bus)
    assert bus.landed == [] and output.streams["OUT", "X"].epoch not in (0, 7)


def test_the_kept_top_checksum_is_the_books_after_every_update() -> None:
    rng = random.Random(7)
    book, top = L2Book(), TopChecksum()
    for _ in range(5000):
        changes = tuple(
            (side, 1000 + (rng.randint(1, 30) if side else -rng.randint(0, 29)), rng.randint(0, 3))
            for side in (rng.randint(0, 1) for _ in range(rng.randint(1, 3)))
        )
        book.apply(changes)
        assert top.after(book, changes) == book.checksum(10)
