# C-level contract of the JSON reader the venue frame scanners (orderbook_core._scan) are
# made of: a check of a frame's text that notes where the fields it names lie (``Span``s),
# a one-pass re-read of an object inside checked text, and the readers of a span's value.
# It accepts less than JSON allows (no escapes, no exponents, nesting to ``MAX_DEPTH``) and
# every reader answers -1 (or False) to decline. Python sees only ``words`` (_json.pyi).
from libc.stdint cimport INT64_MAX, int64_t
from libc.string cimport memcmp

from orderbook_core._ascii cimport PyUnicode_DecodeASCII
from orderbook_core._text cimport UnitScale, read_units


cdef enum:
    T_NONE = 0  # field absent
    T_STR       # span: the characters between the quotes
    T_INT       # an integer with no sign, fraction or exponent
    T_NUM       # any other number
    T_LIT       # true, false
    T_NULL
    T_ARR       # span: from "[" to just past "]"
    T_OBJ       # span: from "{" to just past "}"
    MAX_DEPTH = 16
    MAX_NUMBER = 64  # longest number text (orjson refuses a 310-digit integer)

ctypedef int (*FieldOf)(const char* key, Py_ssize_t n) noexcept nogil
"""The field a key names (an index into the scan's spans), -1 for any other key."""

cdef struct Level:
    FieldOf field_of  # the fields of an object at this level
    int descend       # the field whose object value is the next level's object; -1: none

cdef struct Span:
    Py_ssize_t start
    Py_ssize_t end
    int kind


cdef Py_ssize_t number_end(const char* p, Py_ssize_t i, Py_ssize_t n, int* kind,
                           bint exponents) noexcept nogil
cdef Py_ssize_t value_at(const char* p, Py_ssize_t i, Py_ssize_t n, int depth,
                         Span* out, bint exponents) noexcept nogil
cdef int key_index(const char* k, Py_ssize_t n, const char* names) noexcept nogil
cpdef bytes words(str names)
cdef Py_ssize_t skip_value(const char* p, Py_ssize_t i, Py_ssize_t n, int* kind) noexcept nogil
cdef Py_ssize_t fields_of(const char* p, Py_ssize_t i, Py_ssize_t n, Span* fields,
                          FieldOf field_of) noexcept nogil
cdef Py_ssize_t next_element(const char* p, Py_ssize_t i, Py_ssize_t n, Span* fields, int count,
                             FieldOf field_of) noexcept nogil
cdef bint object_fields(const char* p, Span s, Py_ssize_t n, Span* fields, int count,
                       FieldOf field_of) noexcept nogil
cdef int64_t count_of(const char* p, Span s) noexcept nogil
cdef bint price_size_rows(const char* p, Span s, int side, UnitScale tick, UnitScale lot,
                          list out) except -1
cdef bint whole_object(object text, Span* fields, int count, FieldOf field_of,
                       const char** chars, Py_ssize_t* length, bint exponents=*) except -1
cdef bint whole_levels(object text, Span* fields, int count, const Level* levels,
                       const char** chars, Py_ssize_t* length, bint exponents=*) except -1
cdef int64_t decimal_of(const char* p, Span s, object decimals, bint exponents=*) except -2


cdef inline int key_after(const char* k, Py_ssize_t n, const char* names, int first) noexcept nogil:
    """The field of the key ``k`` in a ``words`` table of a nested level whose fields are
    numbered from ``first``; -1 for any other key."""
    cdef int f = key_index(k, n, names)
    return f + first if f >= 0 else -1


cdef inline Py_ssize_t skip_space(const char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n and (p[i] == 32 or p[i] == 10 or p[i] == 13 or p[i] == 9):
        i += 1
    return i


cdef inline int64_t units_of(const char* p, Span s, UnitScale scale) noexcept nogil:
    if s.kind != T_STR or not scale.usable:
        return -1
    return read_units(p + s.start, s.end - s.start, scale.mant, scale.exp)


cdef inline Py_ssize_t item_then(const char* p, Py_ssize_t i, Py_ssize_t n, Span* value,
                                 char after) noexcept nogil:
    """A value at ``p[i]`` of checked text and the character ``after`` it: the index of
    what follows them (spaces skipped), -1 to decline. The value's span as ``value_at``
    notes it, found as ``skip_value`` finds it (not checked again)."""
    cdef int kind
    cdef Py_ssize_t j = skip_value(p, i, n, &kind)
    if j <= i:  # nothing there: a bracket where a value should be
        return -1
    if kind == T_STR:
        value.start, value.end = i + 1, j - 1
    else:
        value.start, value.end = i, j
    value.kind = kind
    i = skip_space(p, j, n)
    return skip_space(p, i + 1, n) if p[i] == after else -1


cdef inline str text_of(const char* p, Span s):
    """The characters of the string field ``s`` (ASCII: checked by ``whole_object``)."""
    return PyUnicode_DecodeASCII(p + s.start, s.end - s.start, NULL)


cdef inline bint is_word(const char* p, Span s, const char* word, Py_ssize_t n) noexcept nogil:
    return s.kind == T_STR and s.end - s.start == n and memcmp(p + s.start, word, n) == 0


cdef inline bint same_text(const char* p, Span a, Span b) noexcept nogil:
    return a.end - a.start == b.end - b.start and memcmp(p + a.start, p + b.start, a.end - a.start) == 0


cdef inline Py_ssize_t past_char(const char* p, Py_ssize_t i, Py_ssize_t n, char c) noexcept nogil:
    """Past the character ``c`` at ``p[i]`` (spaces around it skipped), -1 if it is not."""
    i = skip_space(p, i, n)
    return skip_space(p, i + 1, n) if i < n and p[i] == c else -1


cdef inline Py_ssize_t integer_at(const char* p, Py_ssize_t i, Py_ssize_t n,
                                  int64_t* out) noexcept nogil:
    """A non-negative int64 JSON integer at ``p[i]`` into ``out``: the index past it, -1."""
    cdef Span s
    s.start = i
    i = number_end(p, i, n, &s.kind, False)
    s.end = i
    if i < 0:
        return -1
    out[0] = count_of(p, s)
    return -1 if out[0] < 0 else i


cdef inline int64_t millis_of(const char* p, Span s) noexcept nogil:
    """An int64 JSON integer of epoch milliseconds whose ns fit int64; -1 to decline."""
    cdef int64_t ms = count_of(p, s)
    return -1 if ms > INT64_MAX // 1_000_000 else ms


cdef inline bint is_zero(const char* p, Span s) noexcept nogil:
    return s.kind == T_INT and s.end - s.start == 1 and p[s.start] == 48
