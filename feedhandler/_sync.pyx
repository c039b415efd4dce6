# cython: language_level=3
"""Compiled ``BookSync``: the sync engine of feedhandler.sync, in C.

Every book frame of every venue goes through ``BookSync.delta``: the live and
continuity checks, the book's apply, the counters, one ``BookUpdate``. In Python
that was ~2 us of a one-level frame's ~7 us. This is the same engine, rule for
rule (feedhandler.sync's ``PyBookSync`` is its pure-Python twin and the
reference the differential tests hold it to), with its state in C fields, the
book's level checks and apply done by the compiled core, and each event built
through its slots' descriptors directly instead of through ``__init__``.
"""

import dataclasses
from collections import deque

from cpython.object cimport PyObject, PyTypeObject, Py_TYPE
from libc.stdint cimport int64_t

from orderbook_core._book cimport L2Book

from feedhandler.frames import INT64_MAX, MalformedFrame
from hub.events import BookUpdate, Status
from orderbook_core import bad_level
from orderbook_core import book_diff as levels_diff
from orderbook_core.types import F_LAST, F_SNAPSHOT

BUFFER_LIMIT = 50_000
_UPDATE_FIELDS = ("venue", "symbol", "seq", "ts_event", "ts_recv", "changes", "flags",
                  "orders", "epoch", "checksum")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(BookUpdate)}
if tuple(_DEFAULTS) != _UPDATE_FIELDS or [_DEFAULTS[f] for f in _UPDATE_FIELDS[7:]] != [None, 0, None]:
    raise ImportError("hub.events.BookUpdate's fields changed: feedhandler._sync's _update "
                      "stores each one and the defaults of the last three")
cdef list _SETTERS = [vars(BookUpdate)[name] for name in _UPDATE_FIELDS]
cdef object _F_LAST = F_LAST
cdef tuple _EMPTY = ()
cdef PyTypeObject* _UPDATE = <PyTypeObject*>BookUpdate


cdef inline int _put(object descr, object obj, object value) except -1:
    """``descr.__set__(obj, value)`` in C: a slot's member descriptor stores the value."""
    return Py_TYPE(descr).tp_descr_set(descr, obj, value)


cdef object _update(str venue, str symbol, int64_t seq, object ts_event, object ts_recv,
                    tuple changes, object flags):
    """A ``BookUpdate`` built through its slots (what its ``__init__`` does, without the
    Python frames): 10 descriptor stores in C."""
    cdef object e = _UPDATE.tp_new(BookUpdate, <PyObject*>_EMPTY, NULL)  # object.__new__
    cdef list s = _SETTERS
    _put(s[0], e, venue)
    _put(s[1], e, symbol)
    _put(s[2], e, seq)
    _put(s[3], e, ts_event)
    _put(s[4], e, ts_recv)
    _put(s[5], e, changes)
    _put(s[6], e, flags)
    _put(s[7], e, None)
    _put(s[8], e, 0)
    _put(s[9], e, None)
    return e


cdef class Delta:
    """Absolute level sizes; ``first``/``last``: the venue ids it spans (or 0); see
    feedhandler.sync.PyDelta, its twin. A C object: a parser builds one per frame, and the
    named tuple's ``__new__`` (a Python function) cost ~0.5 us of a ~5 us frame."""

    cdef readonly tuple levels
    cdef readonly object first
    cdef readonly object last
    cdef readonly object ts_event
    cdef readonly object checksum
    cdef readonly object prev

    def __init__(self, tuple levels, first=0, last=0, ts_event=0, checksum=None, prev=None):
        self.levels = levels
        self.first = first
        self.last = last
        self.ts_event = ts_event
        self.checksum = checksum
        self.prev = prev

    def _fields(self):
        return (self.levels, self.first, self.last, self.ts_event, self.checksum, self.prev)

    def __eq__(self, other):
        if not isinstance(other, Delta):
            return NotImplemented
        return self._fields() == (<Delta>other)._fields()

    def __hash__(self):
        return hash(self._fields())

    def __repr__(self):
        return (f"Delta(levels={self.levels!r}, first={self.first!r}, last={self.last!r}, "
                f"ts_event={self.ts_event!r}, checksum={self.checksum!r}, prev={self.prev!r})")


cdef Delta _delta_of(d):
    """``d`` as this module's Delta (a twin's named tuple is copied)."""
    if type(d) is Delta:
        return <Delta>d
    return Delta(d.levels, d.first, d.last, d.ts_event, d.checksum, d.prev)


cdef class BookSync:
    """One symbol's book as the hub keeps it from a venue (see feedhandler.sync)."""

    cdef public str venue
    cdef public str symbol
    cdef public int depth
    cdef public object checksum
    cdef public bint continuous
    cdef public L2Book book
    cdef public bint live
    cdef public int64_t seq
    cdef public object venue_id
    """A Python int like the twin's: venues' ids are theirs (Bitstamp's are stamps x ranks)."""
    cdef public object stats
    cdef public str stale_reason
    cdef public object snapshot_at
    cdef public object sink
    cdef public object _buffer
    cdef public bint _fresh

    def __init__(self, str venue, str symbol, int depth=0, checksum=None,
                 bint continuous=False, L2Book book=None, bint live=False, int64_t seq=0,
                 venue_id=0, stats=None, str stale_reason="", snapshot_at=0,
                 sink=None):
        from feedhandler.sync import SyncStats

        self.venue = venue
        self.symbol = symbol
        self.depth = depth
        self.checksum = checksum
        self.continuous = continuous
        self.book = L2Book() if book is None else book
        self.live = live
        self.seq = seq
        self.venue_id = venue_id
        self.stats = SyncStats() if stats is None else stats
        self.stale_reason = stale_reason
        self.snapshot_at = snapshot_at
        self.sink = sink
        self._buffer = deque(maxlen=BUFFER_LIMIT)
        self._fresh = False

    def __repr__(self):
        return (f"BookSync(venue={self.venue!r}, symbol={self.symbol!r}, live={self.live}, "
                f"seq={self.seq}, venue_id={self.venue_id}, stats={self.stats!r})")

    def snapshot(self, snap, ts_recv):
        """Start the book from a snapshot; replay the buffered deltas it does not cover.

        Raises ``MalformedFrame`` (book unchanged) for a level the book cannot hold."""
        return self._sunk(self._snapshot(snap, ts_recv))

    def delta(self, d, ts_recv):
        """Apply one delta if the book is live and it follows on; otherwise buffer it
        (``continuous`` streams) or drop it (the next snapshot covers it).

        Raises ``MalformedFrame`` (book unchanged) for a level the book cannot hold."""
        return self._sunk(self._delta(_delta_of(d), ts_recv))

    def invalidate(self, str reason, ts_recv=0):
        """Mark the symbol stale (the runner must fetch or resubscribe for a fresh
        snapshot); returns the ``stale`` status event the first time a live book goes
        stale."""
        return self._sunk(self._invalidate(reason, ts_recv))

    def verify(self, expected, ts_recv):
        """Check the live book against a checksum the venue sends on its own, apart from any
        update (Bitfinex ``cs`` frames); a mismatch marks the symbol stale."""
        if not self.live or self.checksum is None or self._verify(expected):
            return []
        return self._sunk(self._invalidate("checksum", ts_recv))

    cdef list _sunk(self, list out):
        if self.sink is not None:
            self.sink += out
        return out

    cdef list _snapshot(self, snap, ts_recv):
        cdef tuple levels = snap.levels
        self._check(levels)
        was_stale = self.seq > 0 and not self.live
        before = self.book.snapshot()
        self.book.clear()
        self.book.apply(levels)
        self._trim()
        self.venue_id = snap.seq
        self._fresh = True
        self.stats.snapshots += 1
        self.snapshot_at = ts_recv
        self.live = True
        self.seq += 1
        cdef list out = [
            _update(self.venue, self.symbol, self.seq, snap.ts_event, ts_recv,
                    levels_diff(before, self.book.snapshot()), F_SNAPSHOT | F_LAST)
        ]
        if was_stale:
            self.stats.resynced += 1
            out.append(Status(self.venue, self.symbol, "resynced", "snapshot", snap.ts_event,
                              ts_recv))
        if snap.checksum is not None and not self._verify(snap.checksum):
            return out + self._invalidate("checksum", ts_recv)
        pending, self._buffer = self._buffer, deque(maxlen=BUFFER_LIMIT)
        for d in pending:
            out += self._delta(<Delta>d, ts_recv)
        return out

    cdef list _delta(self, Delta d, ts_recv):
        cdef tuple levels = d.levels
        self._check(levels)
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
        self.book.apply(levels)
        cdef tuple trimmed = self._trim()
        self.stats.updates += 1
        self.seq += 1
        cdef list out = [
            _update(self.venue, self.symbol, self.seq, d.ts_event, ts_recv,
                    levels + trimmed if trimmed else levels, _F_LAST)
        ]
        if d.checksum is not None and not self._verify(d.checksum):
            return out + self._invalidate("checksum", ts_recv)
        if self.book.is_crossed():
            self.stats.crossed += 1
            return out + self._invalidate("crossed", ts_recv)
        return out

    cdef bint _covered(self, Delta d) except -1:
        """Whether the book already holds ``d``: its ids end at or before the book's, or for
        ``prev``-chained deltas bridging a snapshot, before the snapshot's id (the one
        ending at it is the first to apply)."""
        if d.prev is not None and self._fresh:
            return d.last < self.venue_id
        return d.last <= self.venue_id

    cdef bint _follows(self, Delta d) except -1:
        """Whether an uncovered ``d`` continues the book with nothing lost in between."""
        if d.prev is None:
            return d.first - 1 <= self.venue_id
        if self._fresh:
            return d.first <= self.venue_id
        return d.prev == self.venue_id

    cdef int _check(self, tuple levels) except -1:
        """Refuse what the book core would (see PyBookSync._check)."""
        if bad_level(levels) < 0:
            return 0
        for side, price, size in levels:
            if side not in (0, 1) or not 0 < price <= INT64_MAX or not 0 <= size <= INT64_MAX:
                raise MalformedFrame(
                    "range", f"level (side {side}, price {price}, size {size})", (self.symbol,)
                )
        return 0

    cdef bint _verify(self, expected) except -1:
        if self.checksum(self.book) == expected:
            self.stats.checksums_ok += 1
            return True
        self.stats.checksums_failed += 1
        return False

    cdef list _invalidate(self, str reason, ts_recv):
        self.stats.dropped += len(self._buffer)
        self._buffer.clear()
        if not self.live:
            return []
        self.live = False
        self.stats.resyncs += 1
        self.stale_reason = reason
        return [Status(self.venue, self.symbol, "stale", reason, 0, ts_recv)]

    cdef tuple _trim(self):
        """Drop levels past the feed's depth; return the deletions (they are published too)."""
        if not self.depth:
            return _EMPTY
        return tuple(self.book.trim(self.depth))
