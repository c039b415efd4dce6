# C-level contract of the compiled text readers. Python users see orderbook_core/_text.pyi.
from cpython.long cimport PyLong_FromLongLong
from cpython.tuple cimport PyTuple_New
from libc.stdint cimport int64_t

from orderbook_core._engine_records cimport PyObject_GC_UnTrack, put


cdef class UnitScale:
    cdef readonly int64_t mant
    cdef readonly int exp
    cdef readonly bint usable    # False for units past int64 or 10**-18: every read declines


cdef int64_t read_units(const char* s, Py_ssize_t n, int64_t mant, int exp) noexcept nogil
cdef int64_t read_scientific(const char* s, Py_ssize_t n, int64_t mant, int exp) noexcept nogil
cdef int64_t read_rounded(const char* s, Py_ssize_t n, int exp) noexcept nogil
cdef int64_t read_number(const char* s, Py_ssize_t n, int64_t mant, int exp,
                         bint rounding) noexcept nogil
cdef int64_t read_iso(const char* s, Py_ssize_t n) noexcept nogil


cdef inline tuple level(object side, int64_t price, int64_t size):
    """The level ``(side, price, size)``, off the cyclic collector's list: a tuple of ints
    is in no cycle. CPython untracks one too, but only at a collection, after walking it:
    the levels of a snapshot being read were walked by every collection its thousands of
    tuples set off (a seventh of a Bitstamp frame's instructions)."""
    cdef tuple t = PyTuple_New(3)
    put(t, 0, side)
    put(t, 1, PyLong_FromLongLong(price))
    put(t, 2, PyLong_FromLongLong(size))
    PyObject_GC_UnTrack(t)
    return t
