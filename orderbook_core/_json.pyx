# cython: language_level=3
"""The JSON reader of the compiled frame scanners (the contract: _json.pxd).

``whole_object`` checks a frame's text in one pass, as strictly as the scanners need:
ASCII, no escape in a string, brackets that match to a depth of 16, and no exponent in
a number unless the scanner asks (orjson, which most parsers' ordinary path reads
with, refuses some, such as 1e400). While it checks, it notes in ``Span``s where the
values of the fields a scanner asked for lie (``FieldOf``: a key to its field, a field
twice declines, as JSON's reading would take the last); ``whole_levels`` notes those of
nested objects too, in the same pass (``Level``: the field whose object value has
the next level's fields). ``fields_of`` and
``next_element`` re-read an object inside text already checked, without checking it
again; ``count_of``, ``units_of``, ``decimal_of`` and ``price_size_rows`` turn a span into
whole units. Each answers -1 (or False) to decline, and the scanner then declines the
frame to the parser's ordinary path.
"""

import sys

from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from libc.string cimport memcmp, memcpy

from orderbook_core._ascii cimport PyUnicode_DATA, PyUnicode_GET_LENGTH, PyUnicode_IS_ASCII
from orderbook_core._text cimport UnitScale, level, read_scientific, read_units

include "_consts.pxi"


# The loops below run on the characters of a str (``PyUnicode_DATA``), whose NUL after
# the last one stops them: they test ``n`` once they stop, not at every character.
cdef unsigned char STRING_STOP[256]  # what ends or declines a string: '"', backslash, control
cdef int _c  # a C int: filling the table leaves no module global
for _c in range(32):
    STRING_STOP[_c] = 1
STRING_STOP[34] = STRING_STOP[92] = 1


cdef Py_ssize_t string_end(const char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """``p[i]`` opens a string: the index of its closing quote, -1 to decline (an escape,
    a control character, no end before ``n``)."""
    i += 1
    while not STRING_STOP[<unsigned char>p[i]]:
        i += 1
    return i if i < n and p[i] == 34 else -1


cdef Py_ssize_t digits_end(const char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while 48 <= p[i] <= 57:
        i += 1
    return i if i < n else n


cdef Py_ssize_t number_end(const char* p, Py_ssize_t i, Py_ssize_t n, int* kind,
                           bint exponents) noexcept nogil:
    """A JSON number from ``p[i]``, with an exponent only where ``exponents`` allows one:
    the index past it, -1 to decline (one longer than ``MAX_NUMBER`` too)."""
    cdef Py_ssize_t j, start = i
    kind[0] = T_INT
    if i < n and p[i] == 45:  # "-"
        kind[0] = T_NUM
        i += 1
    if i >= n or not 48 <= p[i] <= 57:
        return -1
    if p[i] == 48:  # a leading zero stands alone
        i += 1
    else:
        i = digits_end(p, i, n)
    if i < n and p[i] == 46:  # "."
        j = digits_end(p, i + 1, n)
        if j == i + 1:
            return -1
        i, kind[0] = j, T_NUM
    if i < n and (p[i] == 101 or p[i] == 69):  # "e", "E": orjson refuses some (1e400)
        if not exponents:
            return -1
        i += 1
        if i < n and (p[i] == 43 or p[i] == 45):  # "+", "-"
            i += 1
        j = digits_end(p, i, n)
        if j == i:
            return -1
        i, kind[0] = j, T_NUM
    return i if i - start <= MAX_NUMBER else -1


cdef Py_ssize_t value_at(const char* p, Py_ssize_t i, Py_ssize_t n, int depth,
                         Span* out, bint exponents) noexcept nogil:
    """Check the JSON value at ``p[i]`` (no leading space) and note where it lies in
    ``out``; the index past it, -1 to decline."""
    cdef Py_ssize_t j
    cdef int kind
    cdef char c
    if i >= n:
        return -1
    c = p[i]
    if 48 <= c <= 57 or c == 45:  # a digit, "-": numbers first, the most values are
        j = number_end(p, i, n, &kind, exponents)
        out.start, out.end, out.kind = i, j, kind
        return j
    if c == 34:
        j = string_end(p, i, n)
        out.start, out.end, out.kind = i + 1, j, T_STR
        return -1 if j < 0 else j + 1
    if c == 123:  # "{"
        j = check_object(p, i, n, NULL, NULL, depth + 1, exponents)
        out.start, out.end, out.kind = i, j, T_OBJ
        return j
    if c == 91:  # "["
        j = check_array(p, i, n, depth + 1, exponents)
        out.start, out.end, out.kind = i, j, T_ARR
        return j
    if c == 116 and n - i >= 4 and memcmp(p + i, b"true", 4) == 0:
        out.start, out.end, out.kind = i, i + 4, T_LIT
        return i + 4
    if c == 102 and n - i >= 5 and memcmp(p + i, b"false", 5) == 0:
        out.start, out.end, out.kind = i, i + 5, T_LIT
        return i + 5
    if c == 110 and n - i >= 4 and memcmp(p + i, b"null", 4) == 0:
        out.start, out.end, out.kind = i, i + 4, T_NULL
        return i + 4
    return -1


cdef inline Py_ssize_t open_bracket(const char* p, Py_ssize_t i, Py_ssize_t n,
                                    int depth) noexcept nogil:
    """Past the bracket at ``p[i]`` and the spaces after it; -1 past ``MAX_DEPTH``."""
    return -1 if depth > MAX_DEPTH else skip_space(p, i + 1, n)


cdef Py_ssize_t check_array(const char* p, Py_ssize_t i, Py_ssize_t n, int depth,
                            bint exponents) noexcept nogil:
    cdef Span ignored
    i = open_bracket(p, i, n, depth)
    if i < 0:
        return -1
    if i < n and p[i] == 93:  # "]"
        return i + 1
    while True:
        i = value_at(p, i, n, depth, &ignored, exponents)
        if i < 0:
            return -1
        i = skip_space(p, i, n)
        if i >= n:
            return -1
        if p[i] == 93:
            return i + 1
        if p[i] != 44:  # ","
            return -1
        i = skip_space(p, i + 1, n)


cdef int key_index(const char* k, Py_ssize_t n, const char* names) noexcept nogil:
    """The index of the key ``k`` (``n`` characters) in a ``words`` table, -1 for any
    other key (most keys of a message: those of a length no word has, at once)."""
    cdef int index = 0
    cdef uint64_t lengths
    memcpy(&lengths, names, 8)
    if n >= 64 or not (lengths >> n) & 1:
        return -1
    names += 8
    while names[0] != 0:
        if names[0] == n and memcmp(names + 1, k, n) == 0:
            return index
        names += names[0] + 1
        index += 1
    return -1


cpdef bytes words(str names):
    """A key table for ``key_index``: a bit for each length of its words (a uint64, bit
    ``n`` for length ``n``), then the words of ``names`` (in the order of their fields'
    enum), each after a byte holding its length."""
    cdef bytearray table = bytearray()
    cdef uint64_t lengths = 0
    cdef str word
    for word in names.split():
        if not 0 < len(word) < 64:
            raise ValueError(f"a key of {len(word)} characters: {word[:70]!r}")
        lengths |= (<uint64_t>1) << len(word)
        table.append(len(word))
        table += word.encode()
    return (<bytes>lengths.to_bytes(8, sys.byteorder)) + bytes(table)  # read by memcpy


cdef Py_ssize_t check_object(const char* p, Py_ssize_t i, Py_ssize_t n, Span* fields,
                             const Level* level, int depth, bint exponents) noexcept nogil:
    """Check the object at ``p[i]``; with ``fields``, note where the value of each field
    ``level.field_of`` names lies (a field twice declines), and read the object value of
    its field ``level.descend`` with the next level's fields, in the same pass. The index
    past it, -1 to decline."""
    cdef Py_ssize_t key, end, j
    cdef int f = -1
    cdef Span value
    i = open_bracket(p, i, n, depth)
    if i < 0:
        return -1
    if i < n and p[i] == 125:  # "}"
        return i + 1
    while True:
        if i >= n or p[i] != 34:
            return -1
        key = i + 1
        end = string_end(p, i, n)
        if end < 0:
            return -1
        i = skip_space(p, end + 1, n)
        if i >= n or p[i] != 58:  # ":"
            return -1
        i = skip_space(p, i + 1, n)
        if fields != NULL:
            f = level.field_of(p + key, end - key)
        if f >= 0 and f == level.descend and i < n and p[i] == 123:
            j = check_object(p, i, n, fields, level + 1, depth + 1, exponents)
            value.start, value.end, value.kind = i, j, T_OBJ
            i = j
        else:
            i = value_at(p, i, n, depth, &value, exponents)
        if i < 0:
            return -1
        if f >= 0:
            if fields[f].kind != T_NONE:
                return -1
            fields[f] = value
        i = skip_space(p, i, n)
        if i >= n:
            return -1
        if p[i] == 125:
            return i + 1
        if p[i] != 44:
            return -1
        i = skip_space(p, i + 1, n)


cdef Py_ssize_t skip_value(const char* p, Py_ssize_t i, Py_ssize_t n, int* kind) noexcept nogil:
    """Past the value at ``p[i]`` of text ``whole_object`` already checked (so: no escapes,
    brackets that match, an exponent only where the check allowed one), its kind into
    ``kind``: what a second read of a nested object needs, without checking it all again."""
    cdef char c = p[i]
    cdef int depth = 0
    if c == 34:
        kind[0] = T_STR
        i += 1
        while p[i] != 34:
            i += 1
        return i + 1
    if c == 123 or c == 91:
        kind[0] = T_OBJ if c == 123 else T_ARR
        while i < n:
            c = p[i]
            if c == 34:
                i += 1
                while p[i] != 34:
                    i += 1
            elif c == 123 or c == 91:
                depth += 1
            elif c == 125 or c == 93:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return -1
    if c == 116 or c == 102:  # true, false
        kind[0] = T_LIT
        return i + (4 if c == 116 else 5)
    if c == 110:
        kind[0] = T_NULL
        return i + 4
    kind[0] = T_NUM if c == 45 else T_INT
    while i < n and (48 <= p[i] <= 57 or p[i] == 45 or p[i] == 46 or p[i] == 101 or p[i] == 69
                     or p[i] == 43):  # digits, "-", ".", and an exponent's "e", "E", "+"
        if not 48 <= p[i] <= 57:
            kind[0] = T_NUM
        i += 1
    return i


cdef Py_ssize_t fields_of(const char* p, Py_ssize_t i, Py_ssize_t n, Span* fields,
                          FieldOf field_of) noexcept nogil:
    """The object at ``p[i]`` of text ``whole_object`` already checked: note where the value of
    each field ``field_of`` names lies (as ``check_object`` does, one pass, nothing checked
    again); the index past it, -1 for a field twice (JSON's reading takes the last)."""
    cdef Py_ssize_t key, end, j
    cdef int f, kind
    i = skip_space(p, i + 1, n)
    if p[i] == 125:
        return i + 1
    while True:
        key = i + 1
        end = key
        while p[end] != 34:
            end += 1
        i = skip_space(p, skip_space(p, end + 1, n) + 1, n)  # past the ":"
        j = skip_value(p, i, n, &kind)
        if j < 0:
            return -1
        f = field_of(p + key, end - key)
        if f >= 0:
            if fields[f].kind != T_NONE:
                return -1
            if kind == T_STR:
                fields[f].start, fields[f].end = i + 1, j - 1
            else:
                fields[f].start, fields[f].end = i, j
            fields[f].kind = kind
        i = skip_space(p, j, n)
        if p[i] == 125:
            return i + 1
        i = skip_space(p, i + 1, n)


cdef Py_ssize_t next_element(const char* p, Py_ssize_t i, Py_ssize_t n, Span* fields, int count,
                             FieldOf field_of) noexcept nogil:
    """The object at ``p[i]``, an element of an array in checked text: its fields noted in
    ``fields`` (``count`` of them, cleared first) by ``field_of``; the index of the next
    element or of the array's "]", -1 to decline (not an object, a field twice)."""
    cdef int k
    if p[i] != 123:
        return -1
    for k in range(count):
        fields[k].kind = T_NONE
    i = fields_of(p, i, n, fields, field_of)
    if i < 0:
        return -1
    i = skip_space(p, i, n)
    return skip_space(p, i + 1, n) if p[i] == 44 else i


cdef bint object_fields(const char* p, Span s, Py_ssize_t n, Span* fields, int count,
                       FieldOf field_of) noexcept nogil:
    """The object ``s`` of checked text: its fields noted in ``fields`` (``count`` of them,
    cleared first) by ``field_of``, as ``fields_of`` does; False to decline (``s`` is not
    an object, a field twice)."""
    cdef int k
    if s.kind != T_OBJ:
        return False
    for k in range(count):
        fields[k].kind = T_NONE
    return fields_of(p, s.start, n, fields, field_of) >= 0


cdef int64_t count_of(const char* p, Span s) noexcept nogil:
    """A non-negative int64 integer field; -1 to decline."""
    cdef uint64_t v = 0
    cdef Py_ssize_t i
    if s.kind != T_INT or s.end - s.start > 19:
        return -1
    for i in range(s.start, s.end):
        v = v * 10 + <uint64_t>(p[i] - 48)
    return -1 if v > <uint64_t>INT64_MAX else <int64_t>v


cdef bint price_size_rows(const char* p, Span s, int side, UnitScale tick, UnitScale lot,
                          list out) except -1:
    """Rows ``["price", "size"]`` of ``s`` into ``out`` as (side, price, size); False to
    decline (a row of any other shape, a price not positive, a size off the grid)."""
    cdef Py_ssize_t i, n = s.end
    cdef Span price, size
    cdef int64_t pu, su
    if s.kind != T_ARR or not tick.usable or not lot.usable:
        return False
    i = skip_space(p, s.start + 1, n)
    if p[i] == 93:
        return True
    while True:
        if p[i] != 91:
            return False
        i = item_then(p, skip_space(p, i + 1, n), n, &price, 44)  # "price",
        if i < 0:
            return False
        i = item_then(p, i, n, &size, 93)  # "size"]
        if i < 0:
            return False
        pu = units_of(p, price, tick)
        su = units_of(p, size, lot)
        if pu <= 0 or su < 0:
            return False
        out.append(level(side, pu, su))
        if p[i] == 93:
            return True
        if p[i] != 44:
            return False
        i = skip_space(p, i + 1, n)


cdef bint whole_object(object text, Span* fields, int count, FieldOf field_of,
                       const char** chars, Py_ssize_t* length, bint exponents=False) except -1:
    """Whether ``text`` is one JSON object (ASCII, spaces around allowed) the scanner reads;
    ``fields`` (``count`` of them) then say where ``field_of``'s fields lie, in the
    characters ``chars`` (``length`` of them: ``text``'s own, read in place)."""
    cdef Level level
    level.field_of, level.descend = field_of, -1
    return whole_levels(text, fields, count, &level, chars, length, exponents)


cdef bint whole_levels(object text, Span* fields, int count, const Level* levels,
                       const char** chars, Py_ssize_t* length, bint exponents=False) except -1:
    """``whole_object`` with the fields of nested objects too: ``levels[0]`` names the
    message's fields, and the object value of its field ``descend`` has the fields
    ``levels[1]`` names, and so on; every level's fields are indices into the one
    ``fields`` (each level's own), noted in the one checking pass."""
    cdef const char* p
    cdef Py_ssize_t n, i
    if type(text) is not str or not PyUnicode_IS_ASCII(text):
        return False
    p = <const char*>PyUnicode_DATA(text)
    n = PyUnicode_GET_LENGTH(text)
    chars[0], length[0] = p, n
    for i in range(count):
        fields[i].kind = T_NONE
    i = skip_space(p, 0, n)
    if i >= n or p[i] != 123:
        return False
    i = check_object(p, i, n, fields, levels, 1, exponents)
    return i >= 0 and skip_space(p, i, n) == n


cdef int64_t decimal_of(const char* p, Span s, object decimals, bint exponents=False) except -2:
    """A JSON number (no sign; an exponent where ``exponents`` allows one, as the text
    was checked) in whole units of ``10**-decimals``; -1 to decline."""
    if (s.kind != T_INT and s.kind != T_NUM) or type(decimals) is not int:
        return -1
    if not 0 <= decimals <= 18:
        return -1
    if exponents:
        return read_scientific(p + s.start, s.end - s.start, 1, <int>decimals)
    return read_units(p + s.start, s.end - s.start, 1, <int>decimals)
