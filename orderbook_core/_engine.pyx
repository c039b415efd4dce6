# cython: language_level=3
"""Compiled matching engine: price-time priority, one sequenced event log per symbol.

Port of the executable specification in _pyengine.py (same events, byte for
byte). Orders live in hash maps keyed by id; each price level is an ordered
map entry with an intrusive FIFO of order ids; events are appended to a flat
int64 buffer and turned into named records (engine_types.ExecEvent, TradeEvent,
BookEvent) once per command, filled in C (_engine_records.pxd).
"""

from cython.operator cimport dereference as deref, preincrement as inc
from libc.stdint cimport int64_t
from libcpp.algorithm cimport sort as csort
from libcpp.pair cimport pair
from libcpp.vector cimport vector

from orderbook_core._engine_records cimport PyObject_GC_UnTrack, PyObject_IS_GC, record

from orderbook_core.engine_types import BookEvent, ExecEvent, OrderState, TradeEvent

include "_consts.pxi"


cdef inline int64_t _key(int side, int64_t price) noexcept nogil:
    return -price if side == 0 else price


cdef inline int64_t _abs(int64_t v) noexcept nogil:
    return -v if v < 0 else v


cdef object order_state(EOrder* o):
    cdef int64_t f[14]
    f[:] = [o.order_id, o.account, o.side, o.type, o.price, o.stop_price, o.leaves, o.cum,
             o.display, o.visible, o.tif, o.post_only, o.stp, o.arrival]
    return record(OrderState, f, 14)


cdef class MatchingEngine:
    """Price-time priority for one symbol, with one sequenced event log."""

    def __cinit__(self, int64_t expected_orders=0):
        """``expected_orders`` pre-sizes the order maps so growth never rehashes on the hot path."""
        self.seq = 0
        self.last_price = 0
        self._arrival = 0
        if expected_orders > 0:
            self._orders.reserve(expected_orders)
            self._stops.reserve(max(64, expected_orders // 16))
        self._events.reserve(4096)

    # --- event log ---------------------------------------------------------------------

    cdef ELevels* _levels(self, int side) noexcept:
        return &self._bids if side == 0 else &self._asks

    cdef int _push(self, int64_t* fields, int n) except -1:
        cdef int i
        self.seq += 1
        self._events.push_back(fields[0])
        self._events.push_back(self.seq)
        for i in range(1, n):
            self._events.push_back(fields[i])
        return 0

    cdef int _report(self, EOrder* o, int exec_type, int64_t last_qty, int64_t last_px,
                     int reason) except -1:
        cdef int64_t f[11]
        f[:] = [EV_EXEC, o.order_id, o.account, exec_type, o.side, o.price, last_qty,
                 last_px, o.leaves, o.cum, reason]
        self._push(f, 11)
        return 0

    cdef int _reject(self, int64_t order_id, int64_t account, int side, int64_t price,
                     int reason) except -1:
        cdef int64_t f[11]
        f[:] = [EV_EXEC, order_id, account, REJECTED, side, price, 0, 0, 0, 0, reason]
        self._push(f, 11)
        return 0

    cdef int _flush_book(self) except -1:
        """Append the command's book deltas: one per touched level, final displayed size."""
        cdef int64_t f[4]
        cdef size_t i
        cdef ELevels* levels
        cdef ELevels.iterator it
        for i in range(self._touched.size()):
            levels = self._levels(self._touched[i].first)
            it = levels.find(_key(self._touched[i].first, self._touched[i].second))
            f[:] = [EV_BOOK, self._touched[i].first, self._touched[i].second,
                     0 if it == levels.end() else deref(it).second.visible]
            self._push(f, 4)
        self._touched.clear()
        return 0

    cdef list _finish(self):
        cdef size_t i = 0, n
        cdef int64_t kind
        cdef list out = []
        cdef const int64_t* data
        self._flush_book()
        n = self._events.size()
        data = self._events.data()
        while i < n:
            kind = data[i]
            if kind == EV_EXEC:
                out.append(record(ExecEvent, data + i, 12))
                i += 12
            elif kind == EV_TRADE:
                out.append(record(TradeEvent, data + i, 9))
                i += 9
            else:
                out.append(record(BookEvent, data + i, 5))
                i += 5
        self._events.clear()
        return out

    cdef int _touch(self, int side, int64_t price) except -1:
        cdef size_t i
        for i in range(self._touched.size()):
            if self._touched[i].first == side and self._touched[i].second == price:
                return 0
        self._touched.push_back(pair[int, int64_t](side, price))
        return 0

    # --- book --------------------------------------------------------------------------

    cdef int _rest(self, EOrder* src) except -1:
        cdef ELevels* levels = self._levels(src.side)
        cdef int64_t key = _key(src.side, src.price)
        cdef ELevels.iterator it = levels.find(key)
        cdef ELevel level
        cdef ELevel* lvl
        cdef EOrder o = src[0]
        self._arrival += 1
        o.arrival = self._arrival
        o.next_id = NO_ORDER
        if it == levels.end():
            o.prev_id = NO_ORDER
            level.visible = o.visible
            level.count = 1
            level.head_id = o.order_id
            level.tail_id = o.order_id
            levels[0][key] = level
        else:
            lvl = &deref(it).second
            o.prev_id = lvl.tail_id
            self._orders.find(lvl.tail_id).next_id = o.order_id
            lvl.tail_id = o.order_id
            lvl.visible += o.visible
            lvl.count += 1
        self._orders.put(o.order_id, o)
        self._touch(o.side, o.price)
        return 0

    cdef int _unrest(self, EOrder* o) except -1:
        """Unlink a resting order and forget it; ``o`` is invalid afterwards."""
        cdef ELevels* levels = self._levels(o.side)
        cdef ELevels.iterator it = levels.find(_key(o.side, o.price))
        cdef ELevel* lvl = &deref(it).second
        if o.prev_id != NO_ORDER:
            self._orders.find(o.prev_id).next_id = o.next_id
        else:
            lvl.head_id = o.next_id
        if o.next_id != NO_ORDER:
            self._orders.find(o.next_id).prev_id = o.prev_id
        else:
            lvl.tail_id = o.prev_id
        lvl.visible -= o.visible
        lvl.count -= 1
        self._touch(o.side, o.price)
        if lvl.count == 0:
            levels.erase(it)
        self._orders.erase(o.order_id)
        return 0

    cdef int64_t _best(self, int side) noexcept:
        cdef ELevels* levels = self._levels(side)
        if levels.empty():
            return 0
        return _abs(deref(levels.begin()).first)

    cdef bint _crosses(self, int side, int64_t price) noexcept:
        cdef int64_t best = self._best(1 - side)
        return best != 0 and (price >= best if side == 0 else price <= best)

    cdef int64_t _level_size(self, int side, int64_t price) noexcept:
        """The displayed size of one level (0 when there is none)."""
        cdef ELevels* levels = self._levels(side)
        cdef ELevels.iterator it = levels.find(_key(side, price))
        return 0 if it == levels.end() else deref(it).second.visible

    cdef bint _overflows(self, int side, int64_t price, int64_t shown, int64_t already) noexcept:
        """Whether ``shown`` more on the level (of which ``already`` is leaving) passes int64."""
        return shown > SIZE_MAX - (self._level_size(side, price) - already)

    cdef EOrder* _find(self, int64_t order_id) noexcept:
        cdef EOrder* o = self._orders.find(order_id)
        return o if o != NULL else self._stops.find(order_id)

    cdef int _cancel(self, int64_t order_id, int reason) except -1:
        cdef EOrder* found = self._orders.find(order_id)
        cdef EOrder copy
        if found != NULL:
            copy = found[0]
            self._unrest(found)
        else:
            copy = self._stops.find(order_id)[0]
            self._stops.erase(order_id)
        copy.leaves = 0
        self._report(&copy, CANCELLED, 0, 0, reason)
        return 0

    # --- matching ----------------------------------------------------------------------

    cdef bint _fillable(self, EOrder* o) noexcept:
        cdef int64_t need = o.leaves, price, oid
        cdef ELevels* levels = self._levels(1 - o.side)
        cdef ELevels.iterator it = levels.begin()
        cdef EOrder* maker
        while it != levels.end():
            price = _abs(deref(it).first)
            if o.type == LIMIT and not (price <= o.price if o.side == 0 else price >= o.price):
                break
            oid = deref(it).second.head_id
            while oid != NO_ORDER:
                maker = self._orders.find(oid)
                if o.stp == STP_ALLOW or maker.account != o.account:
                    need -= maker.leaves
                    if need <= 0:
                        return True
                oid = maker.next_id
            inc(it)
        return False

    cdef int _self_trade(self, EOrder* o, EOrder* maker) except -1:
        cdef int mode = o.stp
        cdef int64_t qty
        cdef ELevel* lvl
        if mode == STP_NEWEST:
            o.leaves = 0
            self._report(o, CANCELLED, 0, 0, R_SELF_TRADE)
            return False
        if mode == STP_OLDEST or mode == STP_BOTH:
            self._cancel(maker.order_id, R_SELF_TRADE)
            if mode == STP_BOTH:
                o.leaves = 0
                self._report(o, CANCELLED, 0, 0, R_SELF_TRADE)
                return False
            return True
        qty = o.leaves if o.leaves < maker.leaves else maker.leaves
        if qty == maker.leaves:
            self._cancel(maker.order_id, R_SELF_TRADE)
        else:
            maker.leaves -= qty
            if maker.visible > maker.leaves:
                lvl = &deref(self._levels(maker.side).find(_key(maker.side, maker.price))).second
                lvl.visible -= maker.visible - maker.leaves
                maker.visible = maker.leaves
                self._touch(maker.side, maker.price)
            self._report(maker, REPLACED, 0, 0, R_SELF_TRADE)
        o.leaves -= qty
        if o.leaves == 0:
            self._report(o, CANCELLED, 0, 0, R_SELF_TRADE)
            return False
        self._report(o, REPLACED, 0, 0, R_SELF_TRADE)
        return True

    cdef int _match(self, EOrder* o) except -1:
        cdef int other = 1 - o.side
        cdef ELevels* levels = self._levels(other)
        cdef ELevels.iterator it
        cdef ELevel* lvl
        cdef EOrder* maker
        cdef EOrder copy
        cdef int64_t price, qty
        cdef int64_t f[8]
        while o.leaves > 0 and not levels.empty():
            it = levels.begin()
            price = _abs(deref(it).first)
            if o.type == LIMIT and not (price <= o.price if o.side == 0 else price >= o.price):
                break
            lvl = &deref(it).second
            maker = self._orders.find(lvl.head_id)
            if o.stp != STP_ALLOW and maker.account == o.account:
                if not self._self_trade(o, maker):
                    return 0
                continue
            qty = o.leaves if o.leaves < maker.visible else maker.visible
            maker.visible -= qty
            maker.leaves -= qty
            maker.cum += qty
            o.leaves -= qty
            o.cum += qty
            lvl.visible -= qty
            self.last_price = price
            self._touch(other, price)
            f[:] = [EV_TRADE, price, qty, o.side, maker.order_id, o.order_id, maker.account,
                     o.account]
            self._push(f, 8)
            self._report(maker, FILL if maker.leaves == 0 else PARTIAL_FILL, qty, price, 0)
            self._report(o, FILL if o.leaves == 0 else PARTIAL_FILL, qty, price, 0)
            if maker.leaves == 0:
                self._unrest(maker)
            elif maker.visible == 0:  # iceberg: next slice at the back of the queue
                copy = maker[0]
                self._unrest(maker)
                copy.visible = copy.display if copy.display < copy.leaves else copy.leaves
                self._rest(&copy)
        return 0

    cdef int _process(self, EOrder* o) except -1:
        cdef int reason
        if o.tif == FOK and not self._fillable(o):
            o.leaves = 0
            self._report(o, CANCELLED, 0, 0, R_FOK)
            return 0
        self._match(o)
        if o.leaves == 0:
            return 0
        if o.type == MARKET or o.tif != GTC:
            reason = R_NO_LIQUIDITY if o.type == MARKET and o.cum == 0 else R_IOC
            o.leaves = 0
            self._report(o, CANCELLED, 0, 0, reason)
            return 0
        if o.display:
            o.visible = o.display if o.display < o.leaves else o.leaves
        else:
            o.visible = o.leaves
        if self._overflows(o.side, o.price, o.visible, 0):  # a triggered stop-limit, say
            o.leaves = 0
            o.visible = 0
            self._report(o, CANCELLED, 0, 0, R_SIZE_OVERFLOW)
            return 0
        self._rest(o)
        return 0

    cdef int _run_triggers(self) except -1:
        cdef EOrder* s
        cdef EOrder o
        cdef int64_t best_arrival, best_id
        cdef size_t i
        while self.last_price != 0 and not self._stops.empty():
            best_arrival = 0
            best_id = NO_ORDER
            for i in range(self._stops.capacity()):
                if self._stops.key_at(i) == NO_ORDER:
                    continue
                s = self._stops.value_at(i)
                if (self.last_price >= s.stop_price if s.side == 0
                        else self.last_price <= s.stop_price):
                    if best_id == NO_ORDER or s.arrival < best_arrival:
                        best_arrival = s.arrival
                        best_id = s.order_id
            if best_id == NO_ORDER:
                return 0
            o = self._stops.find(best_id)[0]
            self._stops.erase(best_id)
            o.type = MARKET if o.type == STOP else LIMIT
            self._report(&o, TRIGGERED, 0, 0, 0)
            self._process(&o)
        return 0

    # --- commands ----------------------------------------------------------------------

    cdef int _check(self, int64_t order_id, int side, int order_type, int64_t price,
                    int64_t size, int tif, bint post_only, int64_t display, int64_t stop_price,
                    int stp) noexcept:
        if order_id == NO_ORDER:
            return R_ORDER_ID
        if side != 0 and side != 1:
            return R_SIDE
        if not (0 <= order_type <= 3 and 0 <= tif <= 2 and 0 <= stp <= 4):
            return R_TYPE
        if self._find(order_id) != NULL:
            return R_DUPLICATE
        if size <= 0:
            return R_SIZE
        if (order_type == LIMIT or order_type == STOP_LIMIT) and price <= 0:
            return R_PRICE
        if (order_type == STOP or order_type == STOP_LIMIT) and stop_price <= 0:
            return R_STOP_PRICE
        if display < 0 or display > size or (display and (order_type == MARKET or order_type == STOP)):
            return R_DISPLAY
        if display and (size - 1) // display >= SLICES_MAX:
            return R_DISPLAY
        if order_type == LIMIT and self._overflows(side, price, display if display else size, 0):
            return R_SIZE_OVERFLOW
        if post_only and (order_type != LIMIT or tif != GTC):
            return R_TYPE
        if post_only and self._crosses(side, price):
            return R_POST_ONLY
        return R_NONE

    def new_order(self, int64_t order_id, int64_t account, int side, int order_type,
                  int64_t price, int64_t size, int tif=0, bint post_only=False,
                  int64_t display=0, int64_t stop_price=0, int stp=0):
        """Accept, match, rest or reject one new order; return the events it caused."""
        cdef int reason = self._check(order_id, side, order_type, price, size, tif, post_only,
                                      display, stop_price, stp)
        cdef EOrder o
        if order_type == MARKET or order_type == STOP:
            price = 0
        if reason != R_NONE:
            self._reject(order_id, account, side, price, reason)
            return self._finish()
        o.order_id = order_id
        o.account = account
        o.side = side
        o.type = order_type
        o.price = price
        o.stop_price = stop_price
        o.leaves = size
        o.cum = 0
        o.display = display
        o.visible = 0
        o.tif = tif
        o.post_only = post_only
        o.stp = stp
        o.arrival = 0
        o.prev_id = NO_ORDER
        o.next_id = NO_ORDER
        self._report(&o, ACCEPTED, 0, 0, 0)
        if order_type == STOP or order_type == STOP_LIMIT:
            self._arrival += 1
            o.arrival = self._arrival
            self._stops.put(order_id, o)
        else:
            self._process(&o)
        self._run_triggers()
        return self._finish()

    cdef EOrder* _owned(self, int64_t order_id, int64_t account):
        cdef EOrder* o = self._find(order_id)
        if o == NULL:
            self._reject(order_id, account, 0, 0, R_UNKNOWN_ORDER)
        elif o.account != account:
            self._reject(order_id, account, o.side, o.price, R_NOT_OWNER)
            return NULL
        return o

    def cancel(self, int64_t order_id, int64_t account):
        """Cancel a resting or pending stop order of ``account``."""
        cdef EOrder* o = self._owned(order_id, account)
        if o != NULL:
            self._cancel(order_id, R_USER)
        return self._finish()

    def replace(self, int64_t order_id, int64_t account, int64_t price, int64_t size):
        """New price and open size; size down at the same price keeps queue priority."""
        cdef EOrder* o = self._owned(order_id, account)
        cdef int reason = R_NONE
        cdef int64_t shown
        cdef ELevel* lvl
        cdef EOrder copy
        if o == NULL:
            return self._finish()
        if self._stops.contains(order_id):
            reason = R_NOT_REPLACEABLE
        elif size <= 0:
            reason = R_SIZE
        elif price <= 0:
            reason = R_PRICE
        elif o.display and (size - 1) // o.display >= SLICES_MAX:
            reason = R_DISPLAY
        elif size > SIZE_MAX - o.cum or self._overflows(
                o.side, price, o.display if 0 < o.display < size else size,
                o.visible if price == o.price else 0):
            reason = R_SIZE_OVERFLOW
        elif o.post_only and price != o.price and self._crosses(o.side, price):
            reason = R_POST_ONLY
        if reason != R_NONE:
            self._reject(order_id, account, o.side, o.price, reason)
            return self._finish()
        if price == o.price and size <= o.leaves:
            shown = o.visible if o.visible < size else size
            lvl = &deref(self._levels(o.side).find(_key(o.side, o.price))).second
            lvl.visible -= o.visible - shown
            o.visible = shown
            o.leaves = size
            self._touch(o.side, o.price)
            self._report(o, REPLACED, 0, 0, 0)
        else:
            copy = o[0]
            self._unrest(o)
            copy.price = price
            copy.leaves = size
            self._report(&copy, REPLACED, 0, 0, 0)
            self._process(&copy)
        self._run_triggers()
        return self._finish()

    def mass_cancel(self, int64_t account):
        """Cancel every resting and pending stop order of an account, by order id."""
        cdef vector[int64_t] ids
        cdef size_t i
        for i in range(self._orders.capacity()):
            if self._orders.key_at(i) != NO_ORDER and self._orders.value_at(i).account == account:
                ids.push_back(self._orders.key_at(i))
        for i in range(self._stops.capacity()):
            if self._stops.key_at(i) != NO_ORDER and self._stops.value_at(i).account == account:
                ids.push_back(self._stops.key_at(i))
        csort(ids.begin(), ids.end())
        for i in range(ids.size()):
            self._cancel(ids[i], R_MASS)
        return self._finish()

    def run_batch(self, commands, latencies=None, int64_t interval_ns=0, bint keep=False):
        """Run commands packed as 12-int64 records without a Python-level loop.

        See orderbook_core._engine_batch.run_batch for the record layout and the
        latency measurement.
        """
        from orderbook_core._engine_batch import run_batch

        return run_batch(self, commands, latencies, interval_ns, keep)

    def take_events(self):
        """Events kept by ``run_batch(keep=True)``, as records like the per-call API returns."""
        return self._finish()

    # --- views and state ---------------------------------------------------------------

    def best_bid(self):
        if self._bids.empty():
            return None
        return (-deref(self._bids.begin()).first, deref(self._bids.begin()).second.visible)

    def best_ask(self):
        if self._asks.empty():
            return None
        return (deref(self._asks.begin()).first, deref(self._asks.begin()).second.visible)

    def depth(self, int side, int n=0):
        cdef ELevels* levels = self._levels(side)
        cdef ELevels.iterator it = levels.begin()
        cdef list out = []
        while it != levels.end() and (n <= 0 or len(out) < n):
            out.append((_abs(deref(it).first), deref(it).second.visible, deref(it).second.count))
            inc(it)
        return out

    def order(self, int64_t order_id):
        cdef EOrder* o = self._find(order_id)
        return None if o == NULL else order_state(o)

    def resting(self, int64_t order_id):
        """(side, price, shown size, arrival) of a book order; None for stops, unknown ids."""
        cdef EOrder* o = self._orders.find(order_id)
        return None if o == NULL else (o.side, o.price, o.visible, o.arrival)

    def level_size(self, int side, int64_t price):
        """The displayed size of the level at ``price`` (0 when there is none)."""
        return self._level_size(side, price)

    def order_ids(self, int side, int64_t price):
        cdef ELevels* levels = self._levels(side)
        cdef ELevels.iterator it = levels.find(_key(side, price))
        cdef list out = []
        cdef int64_t oid
        if it == levels.end():
            return out
        oid = deref(it).second.head_id
        while oid != NO_ORDER:
            out.append(oid)
            oid = self._orders.find(oid).next_id
        return out

    def order_count(self):
        return self._orders.size() + self._stops.size()

    def snapshot_state(self):
        """Everything needed to continue exactly where this engine is (JSON-able)."""
        from orderbook_core._engine_state import snapshot_state

        return snapshot_state(self)

    @classmethod
    def restore(cls, state):
        """An engine that continues exactly from ``snapshot_state()``'s output."""
        from orderbook_core._engine_state import restore_into

        return restore_into(cls(), state)


def untracked(obj):
    """``obj``, taken off the cyclic garbage collector's list (as ``record`` does for the
    engine's events). Only for an object that can be in no reference cycle whatever is
    done with it: one whose every field is an int, str, bool or None and that takes no
    other attribute (the venue's order records, ``trading.accounts.Order``). Reference
    counting still frees it; no collection walks it again."""
    if PyObject_IS_GC(obj):
        PyObject_GC_UnTrack(obj)
    return obj
