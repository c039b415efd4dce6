# Cython view of flat_map.hpp: the book core's open-addressing int64 -> value map.
from libc.stdint cimport int64_t
from libcpp cimport bool as cbool


cdef extern from "flat_map.hpp" nogil:
    cdef cppclass FlatMap[V]:
        FlatMap() except +
        V* find(int64_t key)
        cbool contains(int64_t key)
        V* put(int64_t key, const V& value) except +
        cbool erase(int64_t key)
        void reserve(size_t n) except +
        void clear()
        size_t size()
        cbool empty()
        size_t capacity()
        int64_t key_at(size_t i)
        V* value_at(size_t i)
