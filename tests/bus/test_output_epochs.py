"""FeedOutput owns each stream's epoch and stamps the source checksum: every event it
publishes carries the stream's epoch, each book update the checksum of the book after it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bus.local import InProcessBus, MemorySnapshots
from bus.output import FeedOutput
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
