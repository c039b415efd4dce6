# C-level contract of the order-level book. ITCH replay and the matching
# engine cimport it; Python users see orderbook_core/_l3.pyi.
from libc.stdint cimport int64_t, uint32_t
from libcpp.map cimport map as cmap
from libcpp.vector cimport vector

from orderbook_core.flat_map cimport FlatMap


cdef struct Level:
    int64_t size
    int64_t count
    int64_t head      # pool slot of the first order in time priority (-1: none)
    int64_t tail


cdef struct Order:
    int64_t order_id
    int64_t price
    int64_t size
    int64_t prev      # pool slots of the queue neighbours (-1: none)
    int64_t next
    Level* level      # its price level (std::map nodes never move)
    int side


ctypedef cmap[int64_t, Level] QueueMap     # key: price, negated on the bid side


cdef struct Delta:
    int action
    int side
    int64_t price
    int64_t size
    int64_t order_id
    int flags
    int64_t seq


cdef class L3Book:
    cdef vector[Order] _pool         # orders by slot; slots are reused
    cdef vector[int64_t] _free       # free slots of the pool
    cdef FlatMap[int64_t] _slots     # order id -> pool slot
    cdef QueueMap _bids
    cdef QueueMap _asks
    cdef vector[Delta] _deltas
    cdef readonly bint emit_deltas
    cdef readonly bint allow_cross
    cdef readonly int64_t seq

    cdef QueueMap* side_map(self, int side) except NULL
    cdef Order* find(self, int64_t order_id) except NULL
    cdef Level* best_level(self, int side) noexcept
    cdef int record(self, int action, int side, int64_t price, int64_t size,
                    int64_t order_id) except -1
    cdef int check_cross(self, int64_t order_id, int side, int64_t price) except -1
    cdef int c_add(self, int64_t order_id, int side, int64_t price, int64_t size) except -1
    cdef int c_remove(self, Order* order) except -1
    cdef int c_take(self, int64_t order_id, int64_t size) except -1
    cdef int c_delete(self, int64_t order_id) except -1
    cdef int c_replace(self, int64_t order_id, int64_t new_id, int64_t price,
                       int64_t size) except -1
    cdef int c_set_size(self, Order* order, int64_t size) except -1
    cdef void mark_last(self) noexcept


cdef list take_delta_list(vector[Delta]* deltas)
cdef uint32_t crc32_update(uint32_t crc, const unsigned char* data, size_t n) noexcept nogil
cdef inline int64_t side_key(int side, int64_t price) noexcept nogil:
    return -price if side == 0 else price
