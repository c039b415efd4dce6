# C-level contract of the compiled book core. Other Cython modules cimport
# these types; Python users see orderbook_core/_book.pyi.
from libc.stdint cimport int64_t
from libcpp.map cimport map as cmap
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector

from orderbook_core._l3 cimport Delta

ctypedef cmap[int64_t, int64_t] LevelMap   # key: price (negated on the bid side), value: size

cdef class L2Book:
    cdef LevelMap _bids
    cdef LevelMap _asks
    cdef vector[Delta] _deltas
    cdef readonly bint emit_deltas
    cdef readonly int64_t seq
    cdef int _set(self, int side, int64_t price, int64_t size) except -1
    cdef LevelMap* _side(self, int side) except NULL
    cdef void _mark_last(self)


cdef struct Order:
    int64_t order_id
    int64_t price
    int64_t size
    int64_t prev_id
    int64_t next_id
    int side


cdef struct Level:
    int64_t size
    int64_t count
    int64_t head_id
    int64_t tail_id


ctypedef cmap[int64_t, Level] QueueMap    # key: price (negated on the bid side)


cdef struct Fill:
    int64_t maker_id
    int64_t taker_id
    int64_t price
    int64_t size


cdef struct LevelChange:
    int side
    int64_t price
    int64_t size


cdef class MatchingEngine:
    cdef unordered_map[int64_t, Order] _orders
    cdef QueueMap _bids
    cdef QueueMap _asks
    cdef vector[Fill] _fills
    cdef vector[LevelChange] _changes
    cdef QueueMap* _side(self, int side) except NULL
    cdef void _touch(self, int side, int64_t price)
    cdef void _rest(self, int64_t order_id, int side, int64_t price, int64_t size) except *
    cdef void _unlink(self, Order* order) except *
    cdef int64_t _match(self, int64_t taker_id, int side, int64_t limit, bint has_limit,
                        int64_t size) except -1
    cdef object _result(self)
