"""The consolidator: venue book streams in from the bus, consolidated streams out through it.

It reads the hub's own events like a fanout node does (the in-process bus, or any source
calling ``on_event``), follows each venue book stream whose Instrument carries a
canonical id under the hub's sync rule (updates gap-free by seq within an epoch; seq 1
starts a stream from an empty book; after a gap or a new epoch, the stream is out of the
book until a snapshot from the snapshot store covers what was buffered), merges them per
canonical id (bus.consolidate) and publishes each consolidated stream through a
``FeedOutput`` like any feed: one ``BookUpdate`` per venue event that changed the merged
book, ``Members`` events whenever a member's state changes (and every
``snapshot_interval_s``, for consumers that join late), snapshots in the store.

The consolidated stream keeps its own epoch and seqs whatever its venues do: a venue that
goes stale, resyncs or starts a new epoch is taken out of the book (an update setting
its sizes to 0) and put back whole when it is live again (another update). Only a member
whose ticks or lots need finer units than the stream has starts a new epoch of it, at the
finer units (its Instrument first, then a seq-1 F_SNAPSHOT update that turns the old book
into the new one). The consolidator sets its streams' epochs itself; FeedOutput takes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from bus.consolidate import CONSOLIDATED, ConsolidatedBook, Diff, Refused, order_id
from bus.kafka import consumer, start_consumer, topic_names
from bus.local import InProcessBus, SnapshotStore
from bus.output import FeedOutput
from hub.config import KafkaConfig
from hub.errors import BadMessage
from hub.events import (
    BookSnapshot,
    BookUpdate,
    Event,
    Instrument,
    LevelChange,
    Members,
    Status,
    decode,
    new_epoch,
)
from hub.orders import ADD, CLEAR
from orderbook_core import L2Book
from orderbook_core.types import F_LAST, F_SNAPSHOT

log = logging.getLogger("hub.consolidator")

SYNC_POLL_S = 0.05
VENUE_STATES = {
    "stale": "stale",
    "resynced": "live",
    "trading": "live",
    "halted": "halted",
    "closed": "closed",
}
"""A venue Status's state -> the member state it gives a member in sync."""


@dataclass
class Follower:
    """One venue book stream as the consolidator follows it."""

    venue: str
    symbol: str
    canonical: str
    book: L2Book = field(default_factory=L2Book)
    seq: int = 0
    epoch: int = -1
    """The epoch of ``seq`` (-1: none yet)."""
    synced: bool = False
    buffer: list[BookUpdate] = field(default_factory=list)
    venue_state: str = "live"
    """The member state the venue's last Status gives (live until it says otherwise)."""

    def levels(self) -> list[LevelChange]:
        bids, asks = self.book.snapshot()
        return [(0, p, s) for p, s in bids] + [(1, p, s) for p, s in asks]

    @property
    def state(self) -> str:
        return self.venue_state if self.synced else "syncing"


class Consolidator:
    """Consolidated streams of the canonical ids in ``symbols`` (empty: every canonical id
    a venue stream carries), published through ``output``.

    Snapshots are stored every ``snapshot_interval_s`` (1 s): with a deep venue the
    per-venue book holds tens of thousands of levels, and FeedOutput's snapshot of it costs
    about 0.2 s per 46,000 (measured; ``hub.orders.resting_orders``)."""

    def __init__(
        self,
        output: FeedOutput,
        snapshots: SnapshotStore,
        symbols: Collection[str] = (),
        snapshot_interval_s: float = 1.0,
    ) -> None:
        self.output = output
        self.snapshots = snapshots
        self.symbols = {s.upper() for s in symbols}
        self.snapshot_interval_s = snapshot_interval_s
        self.books: dict[str, ConsolidatedBook] = {}
        self.followers: dict[tuple[str, str], Follower] = {}
        self.seqs: dict[str, int] = {}
        self.epochs: dict[str, int] = {}
        """Each stream's epoch: set here (FeedOutput takes it), new only at a rescale."""
        self.refused: dict[tuple[str, str], str] = {}
        """Venue streams left out, and why (on health)."""
        self.instruments: dict[tuple[str, str], Instrument] = {}
        """The Instrument of every member venue stream."""
        self.pending: list[Event] = []
        """Events made and not yet handed to ``output`` (``flush``)."""
        self._syncing: dict[tuple[str, str], asyncio.Task[None]] = {}

    # --- events in (sans-I/O: what to publish collects in ``pending``) -------------------

    def take(self, event: Event) -> None:
        """``on_event``, with a venue event that breaks the merge logged and dropped (a
        price outside the stream's range): bad input never stops the consolidator."""
        try:
            self.on_event(event)
        except (ValueError, OverflowError) as exc:
            log.warning(
                "venue event not consolidated",
                extra={"venue": event.venue, "symbol": event.symbol, "error": repr(exc)},
            )

    def on_event(self, event: Event) -> None:
        if event.venue == CONSOLIDATED:
            return
        if isinstance(event, BookUpdate):
            self._on_update(event)
        elif isinstance(event, Instrument):
            self._on_instrument(event)
        elif isinstance(event, Status):
            self._on_status(event)

    def _on_instrument(self, inst: Instrument) -> None:
        key = (inst.venue, inst.symbol)
        canonical = inst.canonical.upper()
        if not canonical or (self.symbols and canonical not in self.symbols):
            return
        book = self.books.get(canonical)
        if book is None:
            try:
                book = self.books[canonical] = ConsolidatedBook(inst)
            except Refused as exc:
                self._refuse(key, str(exc))
                return
            self.seqs[canonical] = 0
            self.epochs[canonical] = new_epoch()
            self.pending.append(book.instrument())
        self.instruments[key] = inst
        try:
            book.check(inst)
            if not book.fits(inst):
                book = self._rescale(book, inst)
            member = book.add(inst)
        except Refused as exc:
            self._refuse(key, str(exc))
            return
        self.refused.pop(key, None)
        self.instruments[key] = inst
        follower = self.followers.get(key)
        if follower is None:
            follower = self.followers[key] = Follower(inst.venue, inst.symbol, canonical)
            diff = Diff()
            book.set_state(member, follower.state, [], diff)
            self._emit(book, diff, 0, 0, members=True)

    def _refuse(self, key: tuple[str, str], why: str) -> None:
        if self.refused.get(key) != why:
            log.warning("venue stream not consolidated", extra={"stream": key, "why": why})
        self.refused[key] = why

    def _rescale(self, book: ConsolidatedBook, inst: Instrument) -> ConsolidatedBook:
        """A new epoch of the stream at units fine enough for ``inst`` too."""
        price, size = book.needs(inst)
        new = ConsolidatedBook(book.template, price, size)
        for old in book.members:
            member = new.add(self.instruments[old.venue, old.symbol])
            follower = self.followers[old.venue, old.symbol]
            new.set_state(member, follower.state, follower.levels(), Diff())
        # seq 1 of the new epoch turns the book consumers hold into the new one (F_SNAPSHOT)
        diff = Diff()
        diff.levels = {key: 0 for key in book.totals}
        diff.levels.update(new.totals)
        diff.orders = [(CLEAR, 0, 0, 0, 0)]
        for (side, price_), cell in new.cells.items():
            for n, z in sorted(cell.items()):
                diff.orders.append((ADD, side, price_, z, order_id(n, side, price_)))
        self.books[book.canonical] = new
        self.epochs[book.canonical] = new_epoch()
        self.seqs[book.canonical] = 0
        log.info(
            "consolidated stream starts a new epoch at finer units",
            extra={"symbol": book.canonical, "for": f"{inst.venue}:{inst.symbol}"},
        )
        self.pending.append(new.instrument())
        self._emit(new, diff, 0, 0, members=True, snapshot=True)
        return new

    def _on_status(self, status: Status) -> None:
        follower = self.followers.get((status.venue, status.symbol))
        state = VENUE_STATES.get(status.state)
        if follower is None or state is None:
            return
        follower.venue_state = state
        self._restate(follower, status.ts_event, status.ts_recv)

    def _restate(self, f: Follower, ts_event: int, ts_recv: int) -> None:
        """Put a member's state (and its part of the book) in line with its follower."""
        book = self.books[f.canonical]
        member = book.by_stream[f.venue, f.symbol]
        diff = Diff()
        if book.set_state(member, f.state, f.levels(), diff):
            self._emit(book, diff, ts_event, ts_recv, members=True)

    def _on_update(self, u: BookUpdate) -> None:
        f = self.followers.get((u.venue, u.symbol))
        if f is None:
            return
        if u.seq == 1 and u.epoch != f.epoch:
            # an epoch's start (a new stream, or a feed started afresh): from an empty book
            f.book, f.seq, f.epoch, f.synced, f.buffer = L2Book(), 0, u.epoch, True, []
            f.venue_state = "live"
            self._task_done(f)
            self._apply(f, u, fresh=True)
            return
        if not f.synced:
            if f.buffer and u.epoch != f.buffer[-1].epoch:
                f.buffer.clear()
            if not f.buffer or u.seq > f.buffer[-1].seq:
                f.buffer.append(u)
            self._start_sync(f)
            return
        if u.epoch != f.epoch or u.seq > f.seq + 1:
            why = "new epoch" if u.epoch != f.epoch else "gap"
            log.warning(
                "venue stream lost; out of the consolidated book until resynced",
                extra={"venue": u.venue, "symbol": u.symbol, "why": why, "seq": u.seq},
            )
            f.synced, f.buffer = False, [u]
            self._restate(f, u.ts_event, u.ts_recv)
            self._start_sync(f)
            return
        if u.seq <= f.seq:
            return  # a duplicate
        self._apply(f, u)

    def _apply(self, f: Follower, u: BookUpdate, fresh: bool = False) -> None:
        """Apply a venue update to its follower's book and follow it in the consolidated
        book (``fresh``: the follower's book started over: its whole part is replaced)."""
        f.book.apply(u.changes)
        f.seq, f.epoch = u.seq, u.epoch
        book = self.books[f.canonical]
        member = book.by_stream[f.venue, f.symbol]
        diff = Diff()
        if member.state != f.state:
            book.set_state(member, f.state, f.levels(), diff)
            self._emit(book, diff, u.ts_event, u.ts_recv, members=True)
            return
        if fresh:
            book.replace(member, f.levels(), diff)
        else:
            book.change(member, u.changes, diff)
        self._emit(book, diff, u.ts_event, u.ts_recv)

    def _emit(
        self,
        book: ConsolidatedBook,
        diff: Diff,
        ts_event: int,
        ts_recv: int,
        members: bool = False,
        snapshot: bool = False,
    ) -> None:
        """Queue the stream's update for ``diff`` (if it changed the book) and, with
        ``members``, its Members event (before it, stamped with its seq)."""
        canonical = book.canonical
        seq, epoch = self.seqs[canonical], self.epochs[canonical]
        if diff or snapshot:
            seq = self.seqs[canonical] = seq + 1
        if members:
            self.pending.append(
                Members(CONSOLIDATED, canonical, seq, ts_event, book.member_list(), epoch)
            )
        if diff or snapshot:
            self.pending.append(
                BookUpdate(
                    CONSOLIDATED,
                    canonical,
                    seq,
                    ts_event,
                    ts_recv,
                    diff.changes(),
                    F_LAST | (F_SNAPSHOT if snapshot else 0),
                    tuple(diff.orders),
                    epoch,
                )
            )

    # --- syncing a lost venue stream from the snapshot store ---------------------------

    def _start_sync(self, f: Follower) -> None:
        key = (f.venue, f.symbol)
        task = self._syncing.get(key)
        if task is None or task.done():
            self._syncing[key] = asyncio.get_running_loop().create_task(self._sync(f))

    def _task_done(self, f: Follower) -> None:
        task = self._syncing.pop((f.venue, f.symbol), None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _sync(self, f: Follower) -> None:
        """Poll the store until a snapshot of the buffered epoch covers the buffer's start;
        then the stream is back (its book whole in the consolidated book) and what that
        changed is published. The task goes on while the stream is lost again before it
        ends (its publishing awaits), so a later loss never waits for a task of its own."""
        while not f.synced:
            try:
                snap = await self.snapshots.get(f.venue, f.symbol)
            except Exception as exc:  # the store is down or holds garbage: keep trying
                log.warning(
                    "snapshot read failed",
                    extra={"stream": (f.venue, f.symbol), "error": repr(exc)},
                )
                snap = None
            if snap is not None and not f.synced and self._try_sync(f, snap):
                await self.flush()
                continue
            await asyncio.sleep(SYNC_POLL_S)

    def _try_sync(self, f: Follower, snap: BookSnapshot) -> bool:
        if not f.buffer:
            return False
        first = f.buffer[0]
        if snap.epoch != first.epoch or snap.seq < first.seq - 1:
            return False
        pending = [u for u in f.buffer if u.seq > snap.seq]
        for expected, u in enumerate(pending, start=snap.seq + 1):
            if u.seq != expected:  # a hole in the buffer: keep what follows it, wait for more
                f.buffer = [v for v in pending if v.seq >= u.seq]
                return False
        f.book = L2Book()
        f.book.apply([(0, p, s) for p, s in snap.bids] + [(1, p, s) for p, s in snap.asks])
        f.seq, f.epoch = snap.seq, snap.epoch
        for u in pending:
            f.book.apply(u.changes)
            f.seq = u.seq
        ts = pending[-1] if pending else first
        f.buffer, f.synced = [], True
        log.info(
            "venue stream resynced into the consolidated book",
            extra={"stream": (f.venue, f.symbol), "seq": f.seq},
        )
        self._restate(f, ts.ts_event, ts.ts_recv)
        return True

    # --- publishing -----------------------------------------------------------------------

    async def flush(self) -> None:
        """Publish what the events so far made (in order)."""
        if self.pending:
            batch, self.pending = self.pending, []
            await self.output.publish(batch)

    def members_now(self) -> list[Members]:
        """Every stream's Members as of its current seq (the periodic republish)."""
        return [
            Members(CONSOLIDATED, c, self.seqs[c], 0, book.member_list(), self.epochs[c])
            for c, book in self.books.items()
        ]

    async def housekeep(self) -> None:
        """Every ``snapshot_interval_s``: store the consolidated snapshots and republish the
        members of every stream."""
        while True:
            await asyncio.sleep(self.snapshot_interval_s)
            await self.output.store_snapshots()
            self.pending.extend(self.members_now())
            await self.flush()

    async def run_bus(self, bus: InProcessBus) -> None:
        """Consolidate what the embedded hub's bus carries, publishing through ``output``."""
        queue = bus.subscribe()
        keeper = asyncio.create_task(self.housekeep())
        try:
            while True:
                self.take(await queue.get())
                while not queue.empty() and len(self.pending) < 1000:
                    self.take(queue.get_nowait())
                await self.flush()
                await asyncio.sleep(0)  # a backlog never keeps the rest of the process waiting
        finally:
            bus.unsubscribe(queue)
            await self._stop(keeper)

    async def run_kafka(self, cfg: KafkaConfig) -> None:
        """Consolidate what Kafka carries (book and instrument topics, from the latest
        offsets: the venue streams already running are synced from the snapshot store,
        their instruments read from it first)."""
        topics = topic_names(cfg)
        c = consumer(cfg, topics["book"], topics["instruments"], group=None, offset_reset="latest")
        await start_consumer(cfg, c)
        for inst in await self.snapshots.instruments():
            self.take(inst)
        keeper = asyncio.create_task(self.housekeep())
        try:
            while True:
                batches = await c.getmany(timeout_ms=100, max_records=5000)
                for records in batches.values():
                    for record in records:
                        try:
                            event = decode(record.value)
                        except BadMessage as exc:
                            log.warning("undecodable message dropped", extra={"error": str(exc)})
                            continue
                        self.take(event)
                await self.flush()
        finally:
            await c.stop()
            await self._stop(keeper)

    async def _stop(self, keeper: asyncio.Task[None]) -> None:
        keeper.cancel()
        for task in self._syncing.values():
            task.cancel()
        await self.output.store_snapshots()

    def health(self) -> dict[str, Any]:
        return {
            "streams": {
                c: {"seq": self.seqs[c], "members": [list(m) for m in book.member_list()]}
                for c, book in sorted(self.books.items())
            },
            "refused": {f"{v}:{s}": why for (v, s), why in sorted(self.refused.items())},
        }
