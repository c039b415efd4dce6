"""Where every feed source's events go: the publisher, the snapshot store and /metrics.

``FeedOutput`` is the ``Publisher`` a source writes to. It announces each
stream's instrument before its first event, publishes, and only then
applies the book updates to its own copy of every book, so the snapshot it
stores (Redis, or memory when embedded) never runs ahead of what consumers
can read. It owns each stream's epoch (hub.events: a new one when a stream starts
here, the primed snapshot's when it continues one) and stamps every event with it,
and stamps each book update with the checksum of its own book after the update (the
source checksum every node and client verifies). It counts events per venue,
symbol and kind, observes the feed latency (receive time minus venue time) and
keeps each stream's status.

``FeedStats`` exposes the venue-side counters of live runners (frames, bad
input, connections, and per symbol gaps, resyncs, checksums, crossed books,
snapshot age, liveness) as Prometheus metrics read at scrape time; ``FEED_STATS``
joins the registry with its first runner, so importing this module registers only
the event counter and the latency histogram.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from bus.local import Publisher, SnapshotStore
from hub.events import (
    EVENT_TYPES,
    BookSnapshot,
    BookUpdate,
    Event,
    Instrument,
    Status,
    TopOfBook,
    Trade,
    new_epoch,
    stamp,
    stamp_checksum,
)
from hub.ops import metrics, runs
from hub.orders import follow, order_book, resting_orders
from orderbook_core import IMPLEMENTATION, L2Book, L3Book
from orderbook_core.types import CHECKSUM_LEVELS, F_SNAPSHOT
from orderbook_core.types import checksum as levels_checksum

if IMPLEMENTATION == "cython":  # the same CRC-32 without the Python text building
    from orderbook_core._l3 import top_checksum as levels_checksum  # type: ignore[assignment]

METRICS = metrics("feed")

log = logging.getLogger("hub.feed")
STOP_DRAIN_S = 5.0
"""A stop waits this long for the batch it interrupted to be published (see ``_send``)."""

EVENTS = Counter(
    "hub_feed_events_total",
    "Events published, per stream and kind",
    ["venue", "symbol", "kind"],
    registry=METRICS,
)
LATENCY = Histogram(
    "hub_feed_latency_seconds",
    "Feed latency: our receive time minus the venue's event time",
    ["venue"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
    registry=METRICS,
)
KINDS: dict[type, str] = {cls: declared.tag for cls, declared in EVENT_TYPES.items()}
"""The ``kind`` label of ``hub_feed_events_total``: each event's kind tag."""


DEPTH_LEVELS = 10
"""Levels per side in the periodic snapshots published for the recorder."""


def top_levels(snap: BookSnapshot, n: int = DEPTH_LEVELS) -> BookSnapshot:
    return BookSnapshot(
        snap.venue,
        snap.symbol,
        snap.seq,
        snap.ts_event,
        snap.bids[:n],
        snap.asks[:n],
        epoch=snap.epoch,
    )


async def publish_depth(publisher: Publisher, snaps: list[BookSnapshot]) -> None:
    """Publish periodic top-N snapshots of books that have had an update; a failure is
    logged (the next interval sends newer ones)."""
    snaps = [s for s in snaps if s.seq > 0]
    if not snaps:
        return
    try:
        await publisher.publish(snaps)
    except Exception as exc:
        log.warning("depth snapshots not published", extra={"error": repr(exc)})


class TopTracker:
    """The best bid and ask of each stream as last published: ``after`` returns a
    TopOfBook when a book update changed either (FeedOutput decides it here for every
    source, the simulator's included)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[int, int, int, int]] = {}

    def after(
        self,
        update: BookUpdate,
        bid: tuple[int, int] | None,
        ask: tuple[int, int] | None,
    ) -> TopOfBook | None:
        top = (*(bid or (0, 0)), *(ask or (0, 0)))
        key = (update.venue, update.symbol)
        if self._last.get(key) == top:
            return None
        self._last[key] = top
        return TopOfBook(
            update.venue,
            update.symbol,
            update.seq,
            update.ts_event,
            update.ts_recv,
            *top,
            update.epoch,
        )


InstrumentFor = Callable[[str, str], Instrument | None]


class TopChecksum:
    """The checksum of a book's top CHECKSUM_LEVELS levels, kept up to date cheaply: an
    update whose every change lies beyond a full side's last top level cannot change the
    top, so its checksum is the one before; only the others recompute it."""

    __slots__ = ("ask_edge", "bid_edge", "value")

    def __init__(self) -> None:
        self.value = -1
        self.bid_edge: int | None = None
        """The worst price of the top levels of a full bid side (None: not full, or not
        known: every change touches)."""
        self.ask_edge: int | None = None

    def after(self, book: L2Book, changes: tuple[tuple[int, int, int], ...]) -> int:
        """The checksum once ``changes`` (already applied) are in ``book``."""
        bid_edge, ask_edge = self.bid_edge, self.ask_edge
        for side, price, _size in changes:
            if side == 0:
                if bid_edge is None or price >= bid_edge:
                    break
            elif ask_edge is None or price <= ask_edge:
                break
        else:
            if self.value >= 0:
                return self.value
        n = CHECKSUM_LEVELS
        bids, asks = book.depth(0, n), book.depth(1, n)
        self.bid_edge = bids[-1][0] if len(bids) == n else None
        self.ask_edge = asks[-1][0] if len(asks) == n else None
        self.value = levels_checksum(bids, asks)
        return self.value

    def reset(self) -> None:
        self.value, self.bid_edge, self.ask_edge = -1, None, None


@dataclass
class StreamState:
    book: L2Book = field(default_factory=L2Book)
    orders: L3Book | None = None
    """The order-level book, for sources whose updates carry orders from their first."""
    seq: int = 0
    ts_event: int = 0
    epoch: int = field(default_factory=new_epoch)
    """The stream's incarnation: new when it starts here, a primed snapshot's otherwise."""
    status: str = "live"
    reason: str = ""
    dirty: bool = False
    top: TopChecksum = field(default_factory=TopChecksum)


class FeedOutput:
    """Publishes a source's events; keeps the published books for the snapshot store."""

    def __init__(
        self,
        publisher: Publisher,
        snapshots: SnapshotStore,
        instrument_for: InstrumentFor | None = None,
        measure_latency: bool = True,
        epoch: int | None = None,
    ) -> None:
        runs("feed")
        self.epoch = epoch
        """The epoch of every stream that starts here (None: a new one per stream); a
        source that continues its streams exactly (the order path) sets its saved one."""
        self.publisher = publisher
        self.snapshots = snapshots
        self.instrument_for = instrument_for
        self.measure_latency = measure_latency
        self.streams: dict[tuple[str, str], StreamState] = {}
        self.instruments: dict[tuple[str, str], Instrument] = {}
        self.published = 0
        self.snapshot_errors = 0
        self.tops = TopTracker()
        self._lock = asyncio.Lock()
        """Held while a batch is applied and published, and while snapshots are taken: the
        books run ahead of what consumers can read only inside it."""

    def _announce(self, events: Sequence[Event]) -> list[Event]:
        """Put each new stream's instrument in front of its first event, and a changed one
        in front of the snapshot that rebuilds its book: a venue that changes a tick or
        lot size resyncs the book in the new units (``ParserBase._new_units``), so its
        consumers (the recorder's unit versions) learn the change where it applies."""
        out: list[Event] = []
        for e in events:
            key = (e.venue, e.symbol)
            if isinstance(e, Instrument):
                self.instruments[key] = e
            elif self.instrument_for is not None and (
                key not in self.instruments or (isinstance(e, BookUpdate) and e.flags & F_SNAPSHOT)
            ):
                inst = self.instrument_for(e.venue, e.symbol)
                if inst is not None and inst != self.instruments.get(key):
                    self.instruments[key] = inst
                    out.append(inst)
            out.append(e)
        return out

    def _state(self, e: Event) -> StreamState:
        state = self.streams.get((e.venue, e.symbol))
        if state is None:
            state = self.streams[e.venue, e.symbol] = self._new_state()
        return state

    def _new_state(self) -> StreamState:
        return StreamState(epoch=self.epoch or new_epoch())

    async def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        async with self._lock:
            await self._publish(events)

    async def _send(self, batch: list[Event]) -> bool:
        """Publish one batch; True if a stop (the task cancelled) arrived meanwhile. Such a
        stop lets the batch land first, for up to ``STOP_DRAIN_S``: the books here already
        hold it, so giving it up would leave the stream's consumers and its stored snapshot
        apart and a clean stop would start a new epoch. The caller raises the stop."""
        sending = asyncio.ensure_future(self.publisher.publish(batch))
        try:
            await asyncio.shield(sending)
            return False
        except asyncio.CancelledError:
            if not sending.done():
                await asyncio.wait([sending], timeout=STOP_DRAIN_S)
            if not sending.done():
                sending.cancel()
                raise
            if sending.cancelled() or sending.exception() is not None:
                raise
            return True

    async def _publish(self, events: Sequence[Event]) -> None:
        """Stamp (epoch; book updates: the checksum of the book after them, so each is
        applied here first), publish, then count and publish the tops that changed. A batch
        that fails to publish starts a new epoch on its streams: consumers may have missed
        updates the books here already hold, and resync from the next snapshot."""
        batch = self._announce(events)
        tops: list[Event] = []
        for e in batch:
            if isinstance(e, Instrument | Status):
                continue
            state = self._state(e)
            if e.epoch == 0:
                stamp(e, state.epoch)
            elif e.epoch != state.epoch:
                state.epoch = e.epoch  # a source that keeps its own epochs
            if isinstance(e, BookUpdate):
                state.book.apply(e.changes)
                self._apply_orders(state, e)
                stamp_checksum(e, state.top.after(state.book, e.changes))
                state.seq, state.ts_event, state.dirty = e.seq, e.ts_event, True
                top = self.tops.after(e, state.book.best_bid(), state.book.best_ask())
                if top is not None:
                    tops.append(top)
        try:
            stopped = await self._send(batch)
        except BaseException:
            for key in {(e.venue, e.symbol) for e in batch if not isinstance(e, Instrument)}:
                failed = self.streams.get(key)
                if failed is not None:
                    failed.epoch, failed.dirty = new_epoch(), True
            raise
        self.published += len(batch)
        for e in batch:
            EVENTS.labels(e.venue, e.symbol, KINDS[type(e)]).inc()
            if isinstance(e, Instrument):
                await self.snapshots.put_instrument(e)
                continue
            if isinstance(e, Status):
                state = self._state(e)
                state.status, state.reason = e.state, e.reason
                log.info(
                    "stream status",
                    extra={"venue": e.venue, "symbol": e.symbol, "state": e.state, "why": e.reason},
                )
            if (
                self.measure_latency
                and isinstance(e, BookUpdate | Trade)
                and e.ts_event > 0
                and e.ts_recv > 0
            ):
                LATENCY.labels(e.venue).observe(max(0, e.ts_recv - e.ts_event) / 1e9)
        if stopped:  # the batch is out and counted: now the stop goes on
            raise asyncio.CancelledError
        if tops:  # after the updates they follow from (their own topic: order per stream kept)
            await self.publisher.publish(tops)
            self.published += len(tops)
            for t in tops:
                EVENTS.labels(t.venue, t.symbol, "bbo").inc()

    @staticmethod
    def _apply_orders(state: StreamState, e: BookUpdate) -> None:
        if state.orders is None and e.seq == 1 and e.orders is not None:
            state.orders = order_book()  # a stream with orders from its first update
        state.orders, why = follow(state.orders, e.orders)
        if why:
            log.warning(
                "order-level book dropped; snapshots leave out orders",
                extra={"venue": e.venue, "symbol": e.symbol, "seq": e.seq, "error": why},
            )

    def prime(self, snapshot: BookSnapshot) -> None:
        """Start a stream's published book from a snapshot (a restart from a checkpoint);
        the store gets it with the next ``store_snapshots``."""
        state = self.streams[snapshot.venue, snapshot.symbol] = self._new_state()
        if snapshot.epoch > 0:  # the stream continues exactly: same epoch, seqs go on
            state.epoch = snapshot.epoch
        state.book.apply(
            [(0, p, s) for p, s in snapshot.bids] + [(1, p, s) for p, s in snapshot.asks]
        )
        if snapshot.orders is not None:
            state.orders = order_book(snapshot.orders)
        state.seq, state.ts_event, state.dirty = snapshot.seq, snapshot.ts_event, True

    async def store_snapshots(self) -> None:
        """Store the snapshot of every book that changed (an outage is logged, retried
        later) and publish its top DEPTH_LEVELS for the recorder."""
        async with self._lock:
            await self._store_snapshots()

    async def _store_snapshots(self) -> None:
        depth: list[BookSnapshot] = []
        for (venue, symbol), state in self.streams.items():
            if not state.dirty:
                continue
            bids, asks = state.book.snapshot()
            orders = None if state.orders is None else resting_orders(state.orders)
            snap = BookSnapshot(
                venue,
                symbol,
                state.seq,
                state.ts_event,
                tuple(bids),
                tuple(asks),
                orders,
                state.epoch,
            )
            depth.append(top_levels(snap))
            try:
                await self.snapshots.put(snap)
            except Exception as exc:
                self.snapshot_errors += 1
                log.warning(
                    "snapshot store write failed; books keep flowing, retry next interval",
                    extra={"venue": venue, "symbol": symbol, "error": repr(exc)},
                )
                break
            state.dirty = False
        await publish_depth(self.publisher, depth)

    def health(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "streams": {
                f"{v}/{s}": {
                    "epoch": st.epoch,
                    "seq": st.seq,
                    "status": st.status,
                    "reason": st.reason,
                }
                for (v, s), st in sorted(self.streams.items())
            },
        }


class FeedStats(Collector):
    """Scrape-time metrics of live runners and their parsers' books, in ``registry`` from
    the first runner on (a process without live runners exports none of them)."""

    def __init__(self, registry: CollectorRegistry = METRICS) -> None:
        self.runners: list[Any] = []
        self.registry = registry
        self.registered = False

    def add(self, runner: Any) -> None:
        if not self.registered:
            self.registry.register(self)
            self.registered = True
        self.runners.append(runner)

    def collect(self) -> Iterator[Any]:
        per_venue = {
            "frames": "WebSocket frames received",
            "connections": "WebSocket connections opened",
            "disconnects": "Connections lost or closed by the venue",
            "planned_reconnects": "Connections replaced before the venue's lifetime limit",
            "snapshot_fetches": "REST answers taken (snapshots, instrument data)",
            "rest_failures": "REST requests that failed",
            "token_fetches": "Connect tokens fetched (venues that need one per connection)",
        }
        for attr, doc in per_venue.items():
            m = CounterMetricFamily(f"hub_feed_{attr}", doc, labels=["venue"])
            for r in self.runners:
                m.add_metric([r.venue], getattr(r, attr))
            yield m
        bad = CounterMetricFamily(
            "hub_feed_malformed",
            "Malformed or unexpected frames and REST answers",
            labels=["venue"],
        )
        for r in self.runners:
            bad.add_metric([r.venue], r.parser.malformed)
        yield bad
        per_symbol = {
            "book_updates": "Venue book updates applied",
            "venue_snapshots": "Venue snapshots applied",
            "gaps": "Sequence gaps detected",
            "resyncs": "Times the book went stale and had to be resynced",
            "checksums_ok": "Venue checksums verified",
            "checksums_failed": "Venue checksum mismatches",
            "crossed": "Crossed books detected",
        }
        stat_attr = {"book_updates": "updates", "venue_snapshots": "snapshots"}
        for name, doc in per_symbol.items():
            m = CounterMetricFamily(f"hub_feed_{name}", doc, labels=["venue", "symbol"])
            for r in self.runners:
                for symbol, sync in r.parser.books.items():
                    m.add_metric([r.venue, symbol], getattr(sync.stats, stat_attr.get(name, name)))
            yield m
        live = GaugeMetricFamily(
            "hub_feed_book_live",
            "1 while the book is in sync, 0 while stale",
            labels=["venue", "symbol"],
        )
        age = GaugeMetricFamily(
            "hub_feed_snapshot_age_seconds",
            "Seconds since the book was last (re)built from a venue snapshot",
            labels=["venue", "symbol"],
        )
        now = time.time_ns()
        for r in self.runners:
            for symbol, sync in r.parser.books.items():
                live.add_metric([r.venue, symbol], 1.0 if sync.live else 0.0)
                if sync.snapshot_at:
                    age.add_metric([r.venue, symbol], (now - sync.snapshot_at) / 1e9)
        yield live
        yield age


FEED_STATS = FeedStats()
"""The live runners of this process (app.launch adds each one it starts)."""
