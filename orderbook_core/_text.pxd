# C-level contract of the compiled text readers. Python users see orderbook_core/_text.pyi.
from libc.stdint cimport int64_t


cdef class UnitScale:
    cdef readonly int64_t mant
    cdef readonly int exp
    cdef readonly bint usable    # False for units past int64 or 10**-18: every read declines


cdef int64_t read_units(const char* s, Py_ssize_t n, int64_t mant, int exp) noexcept nogil
cdef int64_t read_rounded(const char* s, Py_ssize_t n, int exp) noexcept nogil
cdef int64_t read_number(const char* s, Py_ssize_t n, int64_t mant, int exp,
                         bint rounding) noexcept nogil
cdef int64_t read_iso(const char* s, Py_ssize_t n) noexcept nogil
