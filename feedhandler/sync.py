"""The one sync engine every venue uses: snapshot + buffered deltas, gaps, checksums, crosses.

Sans-I/O. A venue parser turns frames into ``Snapshot`` and ``Delta`` inputs;
``BookSync`` keeps the symbol's integer L2 book, applies them under the
hub's rule (buffer deltas until a snapshot, drop those the snapshot covers,
then require continuity), verifies checksums when the venue sends them,
and on a gap, checksum mismatch or crossed book marks the symbol stale and
asks for a resync. Each call returns the normalized events to publish.

A snapshot is published as one ordinary, sequenced update flagged
F_SNAPSHOT whose changes turn the book consumers hold (empty at first, the
stale book after a resync) into the venue's fresh one, so a consumer never
needs anything but the gap-free update stream; ``Status`` events say when a
book went stale and when it was resynced.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from feedhandler.frames import INT64_MAX, MalformedFrame
from hub.events import BookUpdate, Event, LevelChange, Status
from orderbook_core import IMPLEMENTATION, L2Book, bad_level
from orderbook_core import book_diff as levels_diff
from orderbook_core.types import F_LAST, F_SNAPSHOT

Checksum = Callable[[L2Book], int]
BUFFER_LIMIT = 50_000
"""Deltas a stale ``continuous`` book keeps for its next snapshot; past it the oldest go
(a snapshot that does not cover them shows as a gap and is fetched again)."""
L2Levels = tuple[list[tuple[int, int]], list[tuple[int, int]]]
"""(bids, asks) as (price, size) lists, as ``L2Book.snapshot`` returns them."""


class Snapshot(NamedTuple):
    """A venue's full (or top-N) book; ``seq``: the venue update id it covers (or 0).

    A named tuple, not a frozen dataclass (whose ``__init__`` cost 1.2-1.4 us); ``Delta``,
    built once per frame, is a C object with the compiled engine."""

    levels: tuple[LevelChange, ...]
    seq: int = 0
    ts_event: int = 0
    checksum: int | None = None


class PyDelta(NamedTuple):
    """Absolute level sizes; ``first``/``last``: the venue ids it spans (or 0). ``Delta``
    names the compiled twin (feedhandler._sync.Delta, same fields) with the compiled
    ``BookSync``."""

    levels: tuple[LevelChange, ...]
    first: int = 0
    last: int = 0
    ts_event: int = 0
    checksum: int | None = None
    prev: int | None = None
    """The venue id the stream's previous delta ended at (Binance futures ``pu``), if sent:
    such deltas chain by ``prev`` == the previous ``last``, and the first one after a
    snapshot must span the snapshot's id (``first`` <= id <= ``last``)."""


@dataclass
class SyncStats:
    updates: int = 0
    snapshots: int = 0
    gaps: int = 0
    resyncs: int = 0
    checksums_ok: int = 0
    checksums_failed: int = 0
    crossed: int = 0
    resynced: int = 0
    dropped: int = 0
    """Deltas not applied: covered by the snapshot, or received while the book waited for one."""


@dataclass
class PyBookSync:
    """One symbol's book as the hub keeps it from a venue: the pure-Python engine, twin and
    reference of the compiled one (feedhandler._sync), which ``BookSync`` names unless
    ``ORDERBOOK_CORE=python`` (or the extension is not built)."""

    venue: str
    symbol: str
    depth: int = 0
    """Keep only this many levels per side (venues with a depth-N feed); 0 keeps all."""
    checksum: Checksum | None = None
    continuous: bool = False
    """True when deltas carry first/last ids that must chain (first == previous last + 1, or
    prev == previous last for deltas that send ``prev``)."""
    book: L2Book = field(default_factory=L2Book)
    live: bool = False
    seq: int = 0
    venue_id: int = 0
    stats: SyncStats = field(default_factory=SyncStats)
    stale_reason: str = ""
    snapshot_at: int = 0
    """Receive time (ns) of the snapshot the book was last (re)built from."""
    sink: list[Event] | None = field(default=None, repr=False, compare=False)
    """Where every returned event is also appended (the parser's record of the current
    frame's events, so none is lost if the parser fails after producing them)."""
    _buffer: deque[PyDelta] = field(default_factory=lambda: deque(maxlen=BUFFER_LIMIT))
    _fresh: bool = field(default=False, repr=False)
    """Live, and no delta applied since the snapshot (the first one bridges it)."""

    def snapshot(self, snap: Snapshot, ts_recv: int) -> list[Event]:
        """Start the book from a snapshot; replay the buffered deltas it does not cover.

        Raises ``MalformedFrame`` (book unchanged) for a level the book cannot hold."""
        return self._sunk(self._snapshot(snap, ts_recv))

    def delta(self, d: PyDelta, ts_recv: int) -> list[Event]:
        """Apply one delta if the book is live and it follows on; otherwise buffer it
        (``continuous`` streams) or drop it (the next snapshot covers it).

        Raises ``MalformedFrame`` (book unchanged) for a level the book cannot hold."""
        return self._sunk(self._delta(d, ts_recv))

    def invalidate(self, reason: str, ts_recv: int = 0) -> list[Event]:
        """Mark the symbol stale (the runner must fetch or resubscribe for a fresh snapshot);
        returns the ``stale`` status event the first time a live book goes stale."""
        return self._sunk(self._invalidate(reason, ts_recv))

    def verify(self, expected: int, ts_recv: int) -> list[Event]:
        """Check the live book against a checksum the venue sends on its own, apart from any
        update (Bitfinex ``cs`` frames); a mismatch marks the symbol stale."""
        if not self.live or self.checksum is None or self._verify(expected):
            return []
        return self._sunk(self._invalidate("checksum", ts_recv))

    def _sunk(self, out: list[Event]) -> list[Event]:
        if self.sink is not None:
            self.sink += out
        return out

    def _snapshot(self, snap: Snapshot, ts_recv: int) -> list[Event]:
        self._check(snap.levels)
        was_stale = self.seq > 0 and not self.live
        before = self.book.snapshot()
        self.book.clear()
        self.book.apply(snap.levels)
        self._trim()
        self.venue_id = snap.seq
        self._fresh = True
        self.stats.snapshots += 1
        self.snapshot_at = ts_recv
        self.live = True
        self.seq += 1
        out: list[Event] = [
            BookUpdate(
                self.venue,
                self.symbol,
                self.seq,
                snap.ts_event,
                ts_recv,
                levels_diff(before, self.book.snapshot()),
                F_SNAPSHOT | F_LAST,
            )
        ]
        if was_stale:
            self.stats.resynced += 1
            out.append(
                Status(self.venue, self.symbol, "resynced", "snapshot", snap.ts_event, ts_recv)
            )
        if snap.checksum is not None and not self._verify(snap.checksum):
            return out + self._invalidate("checksum", ts_recv)
        pending, self._buffer = self._buffer, deque(maxlen=BUFFER_LIMIT)
        for d in pending:
            out += self._delta(d, ts_recv)
        return out

    def _delta(self, d: PyDelta, ts_recv: int) -> list[Event]:
        self._check(d.levels)
        if not self.live:
            # Only ids tell which buffered deltas a later snapshot covers; without them the
            # snapshot comes on the same stream (Kraken, Coinbase) and covers all of them.
            if self.continuous:
                self._buffer.append(d)
            else:
                self.stats.dropped += 1
            return []
        if self.continuous:
            if self._covered(d):
                self.stats.dropped += 1
                return []
            if not self._follows(d):
                self.stats.gaps += 1
                return self._invalidate("gap", ts_recv)
            self.venue_id = d.last
            self._fresh = False
        self.book.apply(d.levels)
        trimmed = self._trim()
        self.stats.updates += 1
        self.seq += 1
        out: list[Event] = [
            BookUpdate(self.venue, self.symbol, self.seq, d.ts_event, ts_recv, d.levels + trimmed)
        ]
        if d.checksum is not None and not self._verify(d.checksum):
            return out + self._invalidate("checksum", ts_recv)
        if self.book.is_crossed():
            self.stats.crossed += 1
            return out + self._invalidate("crossed", ts_recv)
        return out

    def _covered(self, d: PyDelta) -> bool:
        """Whether the book already holds ``d``: its ids end at or before the book's, or for
        ``prev``-chained deltas bridging a snapshot, before the snapshot's id (the one
        ending at it is the first to apply)."""
        if d.prev is not None and self._fresh:
            return d.last < self.venue_id
        return d.last <= self.venue_id

    def _follows(self, d: PyDelta) -> bool:
        """Whether an uncovered ``d`` continues the book with nothing lost in between."""
        if d.prev is None:
            return d.first <= self.venue_id + 1
        if self._fresh:
            return d.first <= self.venue_id
        return d.prev == self.venue_id

    def _check(self, levels: tuple[LevelChange, ...]) -> None:
        """Refuse what the book core would: sides other than 0/1, prices not in 1..2**63-1,
        sizes not in 0..2**63-1 (the parsers' range checks make this a last line). The
        compiled check passes plain int triples; anything else is decided here."""
        if bad_level(levels) < 0:
            return
        for side, price, size in levels:
            if side not in (0, 1) or not 0 < price <= INT64_MAX or not 0 <= size <= INT64_MAX:
                raise MalformedFrame(
                    "range", f"level (side {side}, price {price}, size {size})", (self.symbol,)
                )

    def _verify(self, expected: int) -> bool:
        assert self.checksum is not None
        if self.checksum(self.book) == expected:
            self.stats.checksums_ok += 1
            return True
        self.stats.checksums_failed += 1
        return False

    def _invalidate(self, reason: str, ts_recv: int) -> list[Event]:
        self.stats.dropped += len(self._buffer)
        self._buffer.clear()
        if not self.live:
            return []
        self.live = False
        self.stats.resyncs += 1
        self.stale_reason = reason
        return [Status(self.venue, self.symbol, "stale", reason, 0, ts_recv)]

    def _trim(self) -> tuple[LevelChange, ...]:
        """Drop levels past the feed's depth; return the deletions (they are published too)."""
        if not self.depth:
            return ()
        return tuple(self.book.trim(self.depth))


if TYPE_CHECKING:
    BookSync = PyBookSync
    Delta = PyDelta
else:
    BookSync, Delta = PyBookSync, PyDelta
    if IMPLEMENTATION == "cython":
        try:
            from feedhandler._sync import BookSync, Delta  # noqa: F401
        except ImportError:
            if os.environ.get("ORDERBOOK_CORE") == "cython":
                raise


def book_diff(before: L2Levels, after: L2Levels) -> tuple[LevelChange, ...]:
    """The absolute level changes that turn book ``before`` into book ``after``."""
    changes: list[LevelChange] = []
    for side in (0, 1):
        if not before[side]:  # a first snapshot: every level is new
            changes += [(side, p, s) for p, s in after[side]]
            continue
        old, new = dict(before[side]), dict(after[side])
        changes += [(side, p, 0) for p in old if p not in new]
        changes += [(side, p, s) for p, s in new.items() if old.get(p) != s]
    return tuple(changes)
