# C-level contract of the matching engine (Python users: _engine.pyi). noexcept marks only
# leaf helpers that neither call Python nor allocate; the rest return int, except -1.
from libc.stdint cimport int64_t
from libcpp.map cimport map as cmap
from libcpp.pair cimport pair
from libcpp.vector cimport vector

from orderbook_core.flat_map cimport FlatMap


cdef struct EOrder:
    int64_t order_id
    int64_t account
    int64_t price
    int64_t stop_price
    int64_t leaves
    int64_t cum
    int64_t display
    int64_t visible
    int64_t arrival
    int64_t prev_id
    int64_t next_id
    int side
    int type
    int tif
    int post_only
    int stp


cdef struct ELevel:
    int64_t visible
    int64_t count
    int64_t head_id
    int64_t tail_id


ctypedef cmap[int64_t, ELevel] ELevels      # key: price, negated on the bid side


cdef object order_state(EOrder* o)


cdef class MatchingEngine:
    cdef FlatMap[EOrder] _orders
    cdef FlatMap[EOrder] _stops
    cdef ELevels _bids
    cdef ELevels _asks
    cdef vector[int64_t] _events
    cdef vector[pair[int, int64_t]] _touched
    cdef readonly int64_t seq
    cdef readonly int64_t last_price
    cdef int64_t _arrival

    cdef ELevels* _levels(self, int side) noexcept
    cdef int _push(self, int64_t* fields, int n) except -1
    cdef int _report(self, EOrder* o, int exec_type, int64_t last_qty, int64_t last_px,
                     int reason) except -1
    cdef int _reject(self, int64_t order_id, int64_t account, int side, int64_t price,
                     int reason) except -1
    cdef list _finish(self)
    cdef int _flush_book(self) except -1
    cdef int _touch(self, int side, int64_t price) except -1
    cdef int _rest(self, EOrder* o) except -1
    cdef int _unrest(self, EOrder* o) except -1
    cdef int64_t _best(self, int side) noexcept
    cdef bint _crosses(self, int side, int64_t price) noexcept
    cdef int64_t _level_size(self, int side, int64_t price) noexcept
    cdef bint _overflows(self, int side, int64_t price, int64_t shown, int64_t already) noexcept
    cdef int _cancel(self, int64_t order_id, int reason) except -1
    cdef bint _fillable(self, EOrder* o) noexcept
    cdef int _self_trade(self, EOrder* o, EOrder* maker) except -1
    cdef int _match(self, EOrder* o) except -1
    cdef int _process(self, EOrder* o) except -1
    cdef int _run_triggers(self) except -1
    cdef int _check(self, int64_t order_id, int side, int order_type, int64_t price,
                    int64_t size, int tif, bint post_only, int64_t display, int64_t stop_price,
                    int stp) noexcept
    cdef EOrder* _find(self, int64_t order_id) noexcept
    cdef EOrder* _owned(self, int64_t order_id, int64_t account)
