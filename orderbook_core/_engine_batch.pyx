# cython: language_level=3
"""The matching engine's batch runner: commands as int64 records, run in C, with
per-command latency on a fixed release schedule (no coordinated omission).

Kept apart from the engine (orderbook_core/_engine.pyx) because it is a
driver of the engine's C-level API (_engine.pxd), not part of matching.
"""

from libc.stdint cimport int64_t

from orderbook_core._engine cimport EOrder, MatchingEngine

include "_consts.pxi"


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec* tp)
    int CLOCK_MONOTONIC


cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef int _apply_record(MatchingEngine self, const int64_t* c) except -1:
    """One command from a batch record; events stay in the C buffer."""
    cdef int reason
    cdef EOrder o
    cdef EOrder* found
    cdef int64_t price
    if c[0] == 1:
        price = 0 if (c[4] == MARKET or c[4] == STOP) else c[5]
        reason = self._check(c[1], <int>c[3], <int>c[4], c[5], c[6], <int>c[7], c[8] != 0,
                             c[9], c[10], <int>c[11])
        if reason != R_NONE:
            self._reject(c[1], c[2], <int>c[3], price, reason)
        else:
            o.order_id = c[1]
            o.account = c[2]
            o.side = <int>c[3]
            o.type = <int>c[4]
            o.price = price
            o.stop_price = c[10]
            o.leaves = c[6]
            o.cum = 0
            o.display = c[9]
            o.visible = 0
            o.tif = <int>c[7]
            o.post_only = c[8] != 0
            o.stp = <int>c[11]
            o.arrival = 0
            o.prev_id = NO_ORDER
            o.next_id = NO_ORDER
            self._report(&o, ACCEPTED, 0, 0, 0)
            if o.type == STOP or o.type == STOP_LIMIT:
                self._arrival += 1
                o.arrival = self._arrival
                self._stops.put(o.order_id, o)
            else:
                self._process(&o)
            self._run_triggers()
    elif c[0] == 2:
        found = self._find(c[1])
        if found == NULL:
            self._reject(c[1], c[2], 0, 0, R_UNKNOWN_ORDER)
        elif found.account != c[2]:
            self._reject(c[1], c[2], found.side, found.price, R_NOT_OWNER)
        else:
            self._cancel(c[1], R_USER)
    self._flush_book()
    return 0

def run_batch(MatchingEngine self, const int64_t[:] commands, int64_t[:] latencies=None,
          int64_t interval_ns=0, bint keep=False):
    """Run commands packed as 12-int64 records, without a Python-level loop.

    Record: ``(1, order_id, account, side, type, price, size, tif, post_only,
    display, stop_price, stp)`` for a new order, ``(2, order_id, account, 0...)``
    for a cancel. Events are produced in C exactly as by the per-call API;
    with ``keep`` they are kept for ``take_events()``, otherwise counted and
    dropped (as a binary publisher would consume them).

    ``latencies`` (one slot per command) receives each command's latency in
    ns. With ``interval_ns > 0`` commands are released on a fixed schedule
    (one every ``interval_ns``) and latency is measured from the scheduled
    release, so a stall also delays the commands queued behind it: no
    coordinated omission. Returns the number of events produced.
    """
    cdef Py_ssize_t n = commands.shape[0] // 12, i
    cdef int64_t produced = 0, start, due, now, before = _count(self, False)
    cdef bint timed = latencies is not None
    if commands.shape[0] % 12:
        raise ValueError(f"batch length {commands.shape[0]} is not a multiple of 12")
    if timed and latencies.shape[0] < n:
        raise ValueError(f"latencies needs {n} slots, has {latencies.shape[0]}")
    start = _now_ns() if timed else 0
    for i in range(n):
        if timed:
            due = start + i * interval_ns
            if interval_ns:
                now = _now_ns()
                while now < due:
                    now = _now_ns()
            else:
                due = _now_ns()
        _apply_record(self, &commands[12 * i])
        if timed:
            latencies[i] = _now_ns() - due
        if not keep:
            produced += _count(self, True)
    if keep:
        return _count(self, False) - before
    return produced

cdef int64_t _count(MatchingEngine self, bint clear) noexcept:
    """Events in the C buffer; optionally drop them."""
    cdef size_t i = 0, n = self._events.size()
    cdef int64_t count = 0
    while i < n:
        count += 1
        i += 12 if self._events[i] == EV_EXEC else (9 if self._events[i] == EV_TRADE else 5)
    if clear:
        self._events.clear()
    return count
