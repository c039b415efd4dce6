# Cython view of ladder.hpp: one side of an L2 book, an ordered int64 -> int64 map on a
# price-indexed ladder (sparse keys in ordered maps beside it).
from libc.stdint cimport int64_t


cdef extern from "ladder.hpp" nogil:
    cdef cppclass LadderCursor "Ladder::Cursor":
        LadderCursor()
        bint done()
        int64_t key()
        int64_t value()
        void next()

    cdef cppclass Ladder:
        Ladder() except +
        bint empty()
        size_t size()
        LadderCursor begin()
        int64_t first_key()
        int64_t first_value()
        int64_t get(int64_t key)
        int64_t set(int64_t key, int64_t value) except +
        void clear()
