"""Per-stream state of a fanout node: snapshot + buffered-delta sync, dedupe, gaps.

Sans-I/O: the node feeds updates and snapshots in and reads back what to do.
The sync rule is the one the hub uses everywhere: buffer updates, take a
snapshot stamped with its seq, drop updates at or below it, apply the rest,
and require each applied update to be exactly ``seq + 1``.
"""

from __future__ import annotations

from collections import deque
from enum import Enum

from hub.events import BookSnapshot, BookUpdate, Instrument
from orderbook_core import L2Book

MAX_BUFFER = 200_000
RECENT_TRADES = 50
"""Trades a new trades subscriber receives first, oldest first."""


class Outcome(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    BUFFERED = "buffered"
    GAP = "gap"


class BookStream:
    """One (venue, symbol) book as a fanout node holds it."""

    def __init__(self, venue: str, symbol: str, history: int) -> None:
        self.venue = venue
        self.symbol = symbol
        self.instrument: Instrument | None = None
        self.book = L2Book()
        self.seq = 0
        self.ts_event = 0
        self.synced = False
        self.buffer: deque[BookUpdate] = deque(maxlen=MAX_BUFFER)
        self.history: deque[tuple[int, bytes]] = deque(maxlen=history)
        self.gaps = 0
        self.resyncs = 0
        self.venue_status = "live"
        """The feed's last word on this book: stale, resynced, halted or trading."""
        self.last_trade_seq = 0
        self.recent_trades: deque[bytes] = deque(maxlen=RECENT_TRADES)

    def on_update(self, update: BookUpdate) -> Outcome:
        """Apply an update when it is the next one; buffer it while unsynced."""
        if not self.synced:
            if not self.buffer or update.seq > self.buffer[-1].seq:
                self.buffer.append(update)
            return Outcome.BUFFERED
        if update.seq <= self.seq:
            return Outcome.DUPLICATE
        if update.seq != self.seq + 1:
            self.gaps += 1
            self.synced = False
            self.buffer.clear()
            self.buffer.append(update)
            self.history.clear()
            return Outcome.GAP
        self.book.apply(update.changes)
        self.seq = update.seq
        self.ts_event = update.ts_event
        return Outcome.APPLIED

    def needs_snapshot_after(self) -> int:
        """The lowest snapshot seq that can start a sync (first buffered seq - 1)."""
        return self.buffer[0].seq - 1 if self.buffer else 0

    def try_sync(self, snapshot: BookSnapshot) -> bool:
        """Adopt a snapshot if it covers the buffer's start; replay the buffered rest."""
        if self.buffer and snapshot.seq < self.buffer[0].seq - 1:
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
        self.seq = snapshot.seq
        self.ts_event = snapshot.ts_event
        for u in pending:
            self.book.apply(u.changes)
            self.seq = u.seq
            self.ts_event = u.ts_event
        self.buffer.clear()
        self.history.clear()
        self.synced = True
        self.resyncs += 1
        return True
