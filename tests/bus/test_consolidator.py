"""The consolidator fed venue events: its published stream, rebuilt by a consumer, equals
the naive merge of the venue books after every event, in one epoch with gap-free seqs,
while a venue goes stale, resyncs, loses updates (a gap), starts a new epoch and closes."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from decimal import Decimal

from bus.consolidate import CONSOLIDATED, order_key
from bus.consolidator import Consolidator
from bus.local import MemorySnapshots
from bus.output import FeedOutput
from hub.events import BookSnapshot, BookUpdate, Event, Instrument, Members, Status
from hub.orders import apply_orders, order_book
from orderbook_core import L2Book

COINBASE = Instrument("COINBASE", "BTC-USD", "0.01", "0.00000001", "BTC-USD", "spot", "BTC", "USD")
KRAKEN = Instrument("KRAKEN", "XBT/USD", "0.1", "0.0001", "BTC-USD", "spot", "BTC", "USD")
ETH = Instrument("COINBASE", "ETH-USD", "0.01", "0.00000001", "ETH-USD", "spot", "ETH", "USD")


class Venue:
    """One venue stream as its feed publishes it: random gap-free updates of a true book."""

    def __init__(self, inst: Instrument, mid: int, epoch: int, seed: int) -> None:
        self.inst, self.mid, self.epoch = inst, mid, epoch
        self.rng = random.Random(seed)
        self.book = L2Book()
        self.seq = 0

    def update(self) -> BookUpdate:
        rng, changes = self.rng, []
        for _ in range(rng.randrange(1, 4)):
            side = rng.randrange(2)
            price = self.mid - rng.randrange(1, 20) if side == 0 else self.mid + rng.randrange(20)
            held = dict(self.book.depth(side))
            size = 0 if price in held and rng.random() < 0.4 else rng.randrange(1, 40)
            changes.append((side, price, size))
        self.book.apply(changes)
        self.seq += 1
        ts = 1_795_000_000_000_000_000 + self.seq
        return BookUpdate(
            self.inst.venue, self.inst.symbol, self.seq, ts, ts, tuple(changes), epoch=self.epoch
        )

    def snapshot(self) -> BookSnapshot:
        bids, asks = self.book.snapshot()
        return BookSnapshot(
            self.inst.venue, self.inst.symbol, self.seq, 0, tuple(bids), tuple(asks),
            epoch=self.epoch,
        )  # fmt: skip

    def status(self, state: str) -> Status:
        return Status(self.inst.venue, self.inst.symbol, state, "test", 1, 1)


class Consumer:
    """A consumer of the published consolidated stream (what a node keeps)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.book = L2Book()
        self.orders = order_book()
        self.seq = 0
        self.epochs: set[int] = set()
        self.members: Members | None = None

    async def publish(self, events: Sequence[Event]) -> None:
        for e in events:
            self.events.append(e)
            if isinstance(e, Members) and e.symbol == "BTC-USD":
                self.members = e
            if isinstance(e, BookUpdate) and e.symbol == "BTC-USD":
                if self.epochs and e.epoch not in self.epochs:  # a new epoch: a new book
                    self.book, self.orders, self.seq = L2Book(), order_book(), 0
                assert e.venue == CONSOLIDATED and e.seq == self.seq + 1
                self.seq = e.seq
                self.epochs.add(e.epoch)
                self.book.apply(e.changes)
                apply_orders(self.orders, e.orders or ())

    def states(self) -> dict[str, str]:
        assert self.members is not None
        return {venue: state for venue, _symbol, state in self.members.members}

    def per_venue(self) -> dict[tuple[int, Decimal], dict[str, Decimal]]:
        assert self.members is not None
        out: dict[tuple[int, Decimal], dict[str, Decimal]] = {}
        unit = Decimal("1e-8")
        for side in (0, 1):
            for price, total, _n in self.orders.depth(side):
                cell = out.setdefault((side, price * unit), {})
                for oid in self.orders.order_ids(side, price):
                    order = self.orders.order(oid)
                    assert order is not None
                    cell[self.members.members[order_key(oid)[0]][0]] = order[2] * unit
                assert dict(self.book.depth(side))[price] == total
        return out


def naive(venues: Sequence[Venue]) -> dict[tuple[int, Decimal], dict[str, Decimal]]:
    out: dict[tuple[int, Decimal], dict[str, Decimal]] = {}
    for v in venues:
        tick, lot = Decimal(v.inst.tick_size), Decimal(v.inst.lot_size)
        for side in (0, 1):
            for price, size in v.book.depth(side):
                out.setdefault((side, price * tick), {})[v.inst.venue] = size * lot
    return out


async def until(check: Callable[[], bool], wait: float = 5.0) -> None:
    for _ in range(int(wait / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_the_stream_equals_the_merge_of_the_live_venues_after_every_event() -> None:
    consumer, store = Consumer(), MemorySnapshots()
    cons = Consolidator(FeedOutput(consumer, store), store)
    coinbase = Venue(COINBASE, 6_500_000, epoch=11, seed=1)
    kraken = Venue(KRAKEN, 650_010, epoch=22, seed=2)
    both = [coinbase, kraken]

    async def take(event: Event) -> None:
        cons.on_event(event)
        await cons.flush()

    for inst in (COINBASE, KRAKEN, ETH):
        await take(inst)
    assert consumer.states() == {"COINBASE": "syncing", "KRAKEN": "syncing"}
    for step in range(400):
        await take((coinbase if step % 3 else kraken).update())
        assert consumer.per_venue() == naive(both)
    assert consumer.states() == {"COINBASE": "live", "KRAKEN": "live"}

    # the venue's feed says stale: Kraken's sizes leave the book, and come back when resynced
    await take(kraken.status("stale"))
    assert consumer.states()["KRAKEN"] == "stale"
    assert consumer.per_venue() == naive([coinbase])
    for _ in range(30):
        await take(kraken.update())  # the frozen book still moves (its resync snapshot)
        await take(coinbase.update())
        assert consumer.per_venue() == naive([coinbase])
    await take(kraken.status("resynced"))
    assert consumer.per_venue() == naive(both)

    # the consolidator misses Kraken updates: out until a stored snapshot covers the buffer
    kraken.update()
    await take(kraken.update())
    assert consumer.states()["KRAKEN"] == "syncing"
    assert consumer.per_venue() == naive([coinbase])
    await take(kraken.update())  # buffered
    await store.put(kraken.snapshot())
    await until(lambda: consumer.states()["KRAKEN"] == "live")
    assert consumer.per_venue() == naive(both)

    # Kraken's feed restarts in a new epoch (seqs go on from a snapshot of that epoch)
    kraken.epoch = 33
    await take(kraken.update())
    assert consumer.states()["KRAKEN"] == "syncing"
    await store.put(kraken.snapshot())
    await until(lambda: consumer.states()["KRAKEN"] == "live")
    for _ in range(50):
        await take(kraken.update())
        assert consumer.per_venue() == naive(both)

    # a replay that ended keeps its final book in, marked closed
    await take(coinbase.status("closed"))
    assert consumer.states() == {"COINBASE": "closed", "KRAKEN": "live"}
    assert consumer.per_venue() == naive(both)
    await take(kraken.status("halted"))
    assert consumer.per_venue() == naive([coinbase])

    assert len(consumer.epochs) == 1  # one epoch, gap-free seqs (Consumer.publish checks)
    consolidated = {e.symbol for e in consumer.events if isinstance(e, Instrument)}
    assert consolidated == {"BTC-USD", "ETH-USD"}
    assert cons.health()["streams"]["BTC-USD"]["seq"] == consumer.seq


async def test_a_venue_that_needs_finer_units_starts_a_new_epoch_with_the_whole_book() -> None:
    consumer, store = Consumer(), MemorySnapshots()
    cons = Consolidator(FeedOutput(consumer, store), store)
    coinbase = Venue(COINBASE, 6_500_000, epoch=11, seed=3)
    cons.on_event(COINBASE)
    for _ in range(20):
        cons.on_event(coinbase.update())
    await cons.flush()
    fine = Instrument(
        "FINE", "BTCUSD", "0.000000001", "0.00000001", "BTC-USD", "spot", "BTC", "USD"
    )
    cons.on_event(fine)
    await cons.flush()
    updates = [e for e in consumer.events if isinstance(e, BookUpdate)]
    restart = updates[20]
    assert [u.seq for u in updates] == [*range(1, 21), 1]
    assert restart.epoch != updates[0].epoch
    book = L2Book()
    book.apply(restart.changes)
    bids, asks = coinbase.book.snapshot()
    assert book.snapshot() == (
        [(p * 10_000_000, s) for p, s in bids],
        [(p * 10_000_000, s) for p, s in asks],
    )  # prices now in 10**-9, sizes still in 10**-8
    inst = [e for e in consumer.events if isinstance(e, Instrument)][-1]
    assert (inst.tick_size, inst.lot_size) == ("0.000000001", "0.00000001")
