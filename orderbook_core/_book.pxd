# C-level contract of the compiled book core. Other Cython modules cimport
# these types; Python users see orderbook_core/_book.pyi.
from libc.stdint cimport int64_t
from libcpp.vector cimport vector

from orderbook_core._l3 cimport Delta
from orderbook_core.ladder cimport Ladder

ctypedef Ladder LevelMap   # key: price (negated on the bid side), value: size

cdef class L2Book:
    cdef LevelMap _bids
    cdef LevelMap _asks
    cdef vector[Delta] _deltas
    cdef readonly bint emit_deltas
    cdef readonly int64_t seq
    cdef int _set(self, int side, int64_t price, int64_t size) except -1
    cdef LevelMap* _side(self, int side) except NULL
    cdef void _mark_last(self) noexcept
