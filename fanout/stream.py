"""Per-stream state of a fanout node: snapshot + buffered-delta sync, dedupe, gaps,
top-N views and candles.

Sans-I/O: the node feeds updates and snapshots in and reads back what to do.
The sync rule is the one the hub uses everywhere: buffer updates, take a
snapshot stamped with its seq, drop updates at or below it, apply the rest,
and require each applied update to be exactly ``seq + 1``.

Every update carries its stream's epoch (hub.events): an update of another epoch
than the book's is a new incarnation of the stream (the feed restarted): the book
unsyncs and waits for a snapshot of that epoch, whatever the seqs. An update that
carries the source's checksum is verified against the book after it: a mismatch
unsyncs the stream too (the node's book is not the source's), so nobody is ever
served a book the source never had.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Any, NamedTuple

from bus.consolidate import CONSOLIDATED
from fanout.ticker import Ticker
from hub.events import Bar, BookSnapshot, BookUpdate, Instrument, LevelChange, Members, Trade
from hub.orders import follow, order_book
from orderbook_core import L2Book, L3Book
from orderbook_core.types import CHECKSUM_LEVELS

MAX_BUFFER = 200_000
RECENT_TRADES = 50
"""Trades a new trades subscriber receives first, oldest first."""
CANDLES_KEPT = 500
"""Candles kept per stream and interval; a new subscriber gets up to CANDLES_SENT of them."""
CANDLES_SENT = 300
TERMS = ("kind", "base", "quote", "settle", "expiry", "strike", "right", "contract_size")
"""The instrument's contract terms ``list`` shows beside ``canonical`` (when not empty)."""


class StreamKey(NamedTuple):
    """One book stream of a node."""

    venue: str
    symbol: str


class Outcome(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    BUFFERED = "buffered"
    GAP = "gap"
    INVALID = "invalid"
    """The update does not apply to the book (a size past int64, a negative size): the
    stream is unsynced until a snapshot past it syncs it again."""
    EPOCH = "epoch"
    """The update starts another epoch: the stream is unsynced until a snapshot of it."""
    MISMATCH = "mismatch"
    """After the update the book's checksum is not the source's: unsynced until a
    snapshot past it syncs it again."""


class DepthView:
    """The top ``depth`` levels of a book as last sent to the view's subscribers.

    ``diff`` turns one book update into the changes of the top-N book a client
    holds: sizes that changed inside it, levels that entered it (pushed up when
    a better one went) and levels that left it (size 0)."""

    __slots__ = ("asks", "bids", "depth", "worst")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.worst: list[int | None] = [None, None]
        """Per side the worst price held while the side is full (None: not full)."""

    def reset(self, book: L2Book) -> None:
        self.bids = dict(book.depth(0, self.depth))
        self.asks = dict(book.depth(1, self.depth))
        self._bounds()

    def _bounds(self) -> None:
        n = self.depth
        self.worst = [
            min(self.bids) if len(self.bids) >= n else None,
            max(self.asks) if len(self.asks) >= n else None,
        ]

    def touches(self, changes: tuple[LevelChange, ...]) -> bool:
        """Can these changes alter the top N? (Only changes beyond a full side cannot.)"""
        wb, wa = self.worst
        for side, price, _size in changes:
            if side == 0:
                if wb is None or price >= wb:
                    return True
            elif wa is None or price <= wa:
                return True
        return False

    def diff(self, book: L2Book, changes: tuple[LevelChange, ...]) -> list[LevelChange]:
        if not self.touches(changes):
            return []
        out: list[LevelChange] = []
        for side, old in ((0, self.bids), (1, self.asks)):
            new = dict(book.depth(side, self.depth))
            for price, size in new.items():
                if old.get(price) != size:
                    out.append((side, price, size))
            for price in old:
                if price not in new:
                    out.append((side, price, 0))
            if side == 0:
                self.bids = new
            else:
                self.asks = new
        self._bounds()
        return out

    def levels(self, side: int) -> list[tuple[int, int]]:
        held = self.bids if side == 0 else self.asks
        return sorted(held.items(), reverse=side == 0)


class BookStream:
    """One (venue, symbol) book as a fanout node holds it."""

    def __init__(self, venue: str, symbol: str) -> None:
        self.key = StreamKey(venue, symbol)
        self.venue = venue
        self.symbol = symbol
        self.instrument: Instrument | None = None
        self.book = L2Book()
        self.orders: L3Book | None = None
        """The order-level book at ``seq`` when the source publishes orders (else None)."""
        self.order_errors = 0
        self.seq = 0
        self.epoch = 0
        """The epoch of the book's seqs (0: never synced)."""
        self.advanced_at = 0.0
        """Monotonic time the book's seq last moved (an update or a snapshot; set by the
        node, which knows the time)."""
        self.duplicates_run = 0
        """Duplicate updates since the seq last moved: climbing, it means the source's seqs
        went back (a restart without a new epoch) and the node drops everything."""
        self.source_checksum: int | None = None
        """The source's checksum after update ``seq`` (None: not known at this seq)."""
        self.ts_event = 0
        self.synced = False
        self.buffer: deque[BookUpdate] = deque(maxlen=MAX_BUFFER)
        self.gaps = 0
        self.resyncs = 0
        self.epochs = 0
        """New epochs this node followed."""
        self.checksums_ok = 0
        self.mismatches = 0
        self.problem = ""
        """Why the last invalid update did not apply."""
        self.venue_status = "live"
        """The feed's last word on this book: stale, resynced, halted or trading."""
        self.last_trade_seq = 0
        self.trade_epoch = 0
        self.recent_trades: deque[tuple[int, bytes]] = deque(maxlen=RECENT_TRADES)
        """The last trades of ``trade_epoch`` as (seq, message), oldest first."""
        self.early_trades: deque[Trade] = deque(maxlen=RECENT_TRADES)
        """Trades that came before the instrument (its own topic): held in
        ``recent_trades`` once it arrives."""
        self.top: tuple[tuple[int, int] | None, tuple[int, int] | None] = (None, None)
        self.bbo_msg: bytes | None = None
        self.candles: dict[int, dict[int, Bar]] = {}
        self.ticker = Ticker()
        """24 h rolling statistics of the trades (the ticker channel, REST)."""
        self.members: Members | None = None
        """A consolidated stream's last Members event (fanout.consolidated)."""

    def on_update(self, update: BookUpdate) -> Outcome:
        """Apply an update when it is the next one; buffer it while unsynced."""
        if not self.synced:
            if self.buffer and update.epoch != self.buffer[-1].epoch:
                self.buffer.clear()  # a newer incarnation: what is buffered never joins it
            if not self.buffer or update.seq > self.buffer[-1].seq:
                self.buffer.append(update)
            return Outcome.BUFFERED
        if update.epoch != self.epoch:
            self.epochs += 1
            self.synced = False
            self.buffer.clear()
            self.buffer.append(update)
            return Outcome.EPOCH
        if update.seq <= self.seq:
            self.duplicates_run += 1
            return Outcome.DUPLICATE
        if update.seq != self.seq + 1:
            self.gaps += 1
            self.synced = False
            self.buffer.clear()
            self.buffer.append(update)
            return Outcome.GAP
        try:
            self.book.apply(update.changes)
        except (ValueError, OverflowError, TypeError) as exc:
            self.problem = f"seq {update.seq}: {exc}"
            self.synced = False
            self.buffer.clear()
            return Outcome.INVALID
        self._apply_orders(update)
        self.seq = update.seq
        self.ts_event = update.ts_event
        self.source_checksum = update.checksum
        if update.checksum is not None:
            if self.book.checksum(CHECKSUM_LEVELS) != update.checksum:
                self.mismatches += 1
                self.problem = f"seq {update.seq}: checksum is not the source's"
                self.synced = False
                self.buffer.clear()
                return Outcome.MISMATCH
            self.checksums_ok += 1
        return Outcome.APPLIED

    def _apply_orders(self, update: BookUpdate) -> None:
        self.orders, why = follow(self.orders, update.orders)
        if why:
            self.order_errors += 1  # no L3 until a snapshot with orders syncs the stream again

    def needs_snapshot_after(self) -> int:
        """The lowest snapshot seq that can start a sync (first buffered seq - 1)."""
        return self.buffer[0].seq - 1 if self.buffer else 0

    def try_sync(self, snapshot: BookSnapshot) -> bool:
        """Adopt a snapshot if it covers the buffer's start (and is of its epoch); replay the
        buffered rest."""
        if self.buffer and (
            snapshot.epoch != self.buffer[0].epoch or snapshot.seq < self.buffer[0].seq - 1
        ):
            return False
        pending = [u for u in self.buffer if u.seq > snapshot.seq]
        for expected, u in enumerate(pending, start=snapshot.seq + 1):
            if u.seq != expected:
                # A hole inside the buffer: keep what follows it and wait for a newer snapshot.
                self.buffer = deque((v for v in pending if v.seq >= u.seq), maxlen=MAX_BUFFER)
                return False
        self.book.clear()
        self.book.apply([(0, p, s) for p, s in snapshot.bids])
        self.book.apply([(1, p, s) for p, s in snapshot.asks])
        self.orders = None if snapshot.orders is None else order_book(snapshot.orders)
        self.seq = snapshot.seq
        self.epoch = snapshot.epoch
        self.ts_event = snapshot.ts_event
        self.source_checksum = None
        for u in pending:
            self.book.apply(u.changes)
            self._apply_orders(u)
            self.seq = u.seq
            self.ts_event = u.ts_event
            self.source_checksum = u.checksum
        self.buffer.clear()
        self.synced = True
        self.resyncs += 1
        self.duplicates_run = 0
        return True

    def describe(self, channels: tuple[str, ...]) -> dict[str, Any]:
        """What ``list`` tells clients of this stream: ``canonical`` (None until the node
        knows it) and the contract terms that are not empty (``inverse`` only when set);
        ``l3`` only where it has orders."""
        inst = self.instrument
        terms: dict[str, Any] = {}
        if inst is not None:
            terms = {t: getattr(inst, t) for t in TERMS if getattr(inst, t)}
            if inst.inverse:
                terms["inverse"] = True
        return {
            "venue": self.venue,
            "symbol": self.symbol,
            "canonical": inst.canonical or None if inst else None,
            **terms,
            "epoch": self.epoch,
            "seq": self.seq,
            "synced": self.synced,
            "gaps": self.gaps,
            "trade_epoch": self.trade_epoch,
            "last_trade_seq": self.last_trade_seq,
            "resyncs": self.resyncs,
            "epochs": self.epochs,
            "checksum_mismatches": self.mismatches,
            "venue_status": self.venue_status,
            "tick_size": inst.tick_size if inst else None,
            "lot_size": inst.lot_size if inst else None,
            "channels": self.channels(channels),
        }

    def channels(self, channels: tuple[str, ...]) -> list[str]:
        """The channels of ``channels`` the stream offers: ``consolidated`` alone on a
        consolidated stream, never on another; ``l3`` only where it has orders."""
        if self.venue == CONSOLIDATED:
            return [c for c in channels if c == "consolidated"]
        return [
            c for c in channels if c != "consolidated" and (c != "l3" or self.orders is not None)
        ]

    def on_trade_epoch(self, epoch: int) -> bool:
        """Whether a trade of ``epoch`` starts a new trade epoch here (its seqs start over:
        the trades held of the old one are let go)."""
        if epoch == self.trade_epoch:
            return False
        self.trade_epoch = epoch
        self.last_trade_seq = 0
        self.recent_trades.clear()
        self.early_trades.clear()
        return True

    def trades_after(self, seq: int) -> tuple[list[bytes], bool]:
        """The trades held after trade seq ``seq`` of ``trade_epoch``, and whether they are
        all of them (the history reaches back to ``seq + 1``, or nothing was missed)."""
        held = self.recent_trades
        out = [msg for s, msg in held if s > seq]
        complete = seq >= self.last_trade_seq or (bool(held) and held[0][0] <= seq + 1)
        return out, complete

    def top_changed(self) -> bool:
        """Whether the best bid or ask moved since the last call."""
        top = (self.book.best_bid(), self.book.best_ask())
        if top == self.top:
            return False
        self.top = top
        return True

    def on_bar(self, bar: Bar) -> None:
        kept = self.candles.setdefault(bar.interval_s, {})
        kept[bar.start] = bar
        if len(kept) > CANDLES_KEPT:
            del kept[min(kept)]

    def recent_candles(self, interval: int) -> list[Bar]:
        kept = self.candles.get(interval, {})
        return [kept[s] for s in sorted(kept)[-CANDLES_SENT:]]


class BarBuilder:
    """Bars from trades in-process (the embedded hub has no recorder): the recorder's
    intervals and rules (open/close = first/last by event time then seq)."""

    def __init__(self, intervals: tuple[int, ...]) -> None:
        self.intervals = intervals
        self.bars: dict[tuple[str, str, int, int], Bar] = {}
        self._order: dict[tuple[str, str, int, int], tuple[tuple[int, int], tuple[int, int]]] = {}

    def add(
        self, venue: str, symbol: str, price: int, size: int, ts_event: int, seq: int
    ) -> list[Bar]:
        out = []
        at = (ts_event, seq)
        for interval in self.intervals:
            width = interval * 1_000_000_000
            start = ts_event // width * width
            key = (venue, symbol, interval, start)
            bar = self.bars.get(key)
            if bar is None:
                bar = Bar(
                    venue,
                    symbol,
                    interval,
                    start,
                    price,
                    price,
                    price,
                    price,
                    size,
                    price * size,
                    1,
                )
                self._order[key] = (at, at)
                if len(self.bars) > 50_000:
                    self._trim()
            else:
                first, last = self._order[key]
                opened = price if at < first else bar.open
                closed = price if at > last else bar.close
                self._order[key] = (min(first, at), max(last, at))
                bar = Bar(
                    venue,
                    symbol,
                    interval,
                    start,
                    opened,
                    max(bar.high, price),
                    min(bar.low, price),
                    closed,
                    bar.volume + size,
                    bar.notional + price * size,
                    bar.trades + 1,
                )
            self.bars[key] = bar
            out.append(bar)
        return out

    def _trim(self) -> None:
        for key in list(self.bars)[:10_000]:
            del self.bars[key]
            del self._order[key]
