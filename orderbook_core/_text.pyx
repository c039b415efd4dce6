# cython: language_level=3
"""Compiled reading of the plain decimal and ISO-8601 text venue frames are made of.

Prices and sizes arrive as decimal strings and times as ISO-8601 stamps. The
hub's exact readers (hub.decimals, hub.times) accept and refuse by regular
expression and Python ints; these read the plain ASCII forms that nearly every
frame holds in C, and answer ``None`` for anything else: a sign other than
``+``, spaces, exponents, non-ASCII digits, a value off the unit's grid, a
result past int64, a number longer than 64 characters (the hub refuses those
as they are), a stamp before 1970 or after 2261. The caller then asks the
exact reader, which accepts or refuses as it always has, so an answer that is
not None is always the exact reader's answer and every refusal is its refusal.
orderbook_core._pytext is the pure-Python twin (same inputs, same answers).
"""

from libc.stdint cimport INT64_MAX, int64_t, uint64_t

from orderbook_core._ascii cimport (
    PyUnicode_DATA,
    PyUnicode_DecodeASCII,
    PyUnicode_GET_LENGTH,
    PyUnicode_IS_ASCII,
)

include "_consts.pxi"

cdef extern from *:
    bint __builtin_mul_overflow(int64_t a, int64_t b, int64_t* out) nogil

cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object obj, int* overflow) except? -1


cdef enum:
    MAX_TEXT = 64  # longest number text read (feedhandler.frames.MAX_NUMBER_TEXT)
    MAX_EXP = 18  # largest unit exponent a scale reads (10**18 units already fill int64)
    MIN_YEAR = 1970  # years a stamp may have here: int64 ns run out in 2262
    MAX_YEAR = 2261

cdef int64_t _POW10[19]
cdef int _i
_POW10[0] = 1
for _i in range(1, 19):
    _POW10[_i] = _POW10[_i - 1] * 10


cdef int64_t read_units(const char* s, Py_ssize_t n, int64_t mant, int exp) noexcept nogil:
    """Whole units of ``mant * 10**-exp`` in the plain decimal ``s[:n]``; -1 to decline."""
    cdef Py_ssize_t i = 0, frac = 0, digits = 0, k
    cdef uint64_t m = 0, d
    cdef int64_t p, v
    cdef bint point = False
    cdef char c
    if n > MAX_TEXT:
        return -1
    if n > 0 and s[0] == 43:  # "+"
        i = 1
    while i < n:
        c = s[i]
        if 48 <= c <= 57:
            d = <uint64_t>(c - 48)
            if m > (<uint64_t>INT64_MAX - d) // 10:
                return -1
            m = m * 10 + d
            digits += 1
            if point:
                frac += 1
        elif c == 46 and not point:  # "."
            point = True
        else:
            return -1
        i += 1
    if digits == 0:
        return -1
    if frac <= exp:
        p = _POW10[exp - frac]
        if <int64_t>m > INT64_MAX // p:
            return -1
        v = <int64_t>m * p
        if v % mant:
            return -1
        return v // mant
    k = frac - exp
    if k > 18:
        return -1
    p = _POW10[k]
    if mant > INT64_MAX // p:
        return -1
    p = mant * p
    if <int64_t>m % p:
        return -1
    return <int64_t>m // p


cdef int64_t read_scientific(const char* s, Py_ssize_t n, int64_t mant, int exp) noexcept nogil:
    """``read_units`` of a decimal that may carry an exponent (``1.1e-7``, ``5E+2``): the
    exponent moves the unit's decimals, so ``1.1e-7`` in units of 10**-8 is ``1.1`` in
    units of 10**-1. -1 to decline, as read_units does, and for an exponent that leaves
    the unit's decimals outside 0..18 (the exact reader answers those)."""
    cdef Py_ssize_t at = 0, i
    cdef int shift = 0
    cdef bint negative = False
    while at < n and s[at] != 101 and s[at] != 69:  # "e", "E"
        at += 1
    if at == n:
        return read_units(s, n, mant, exp)
    i = at + 1
    if i < n and (s[i] == 43 or s[i] == 45):  # "+", "-"
        negative = s[i] == 45
        i += 1
    if i == n or n - i > 2:  # no digits, or an exponent past two digits
        return -1
    while i < n:
        if not 48 <= s[i] <= 57:
            return -1
        shift = shift * 10 + (s[i] - 48)
        i += 1
    shift = exp - shift if negative else exp + shift  # the decimals of the mantissa's unit
    if not 0 <= shift <= MAX_EXP:
        return -1
    return read_units(s, at, mant, shift)


cdef int64_t read_rounded(const char* s, Py_ssize_t n, int exp) noexcept nogil:
    """The plain decimal ``s[:n]`` rounded half up to whole units of ``10**-exp``
    (hub.decimals.round_units); -1 to decline."""
    cdef Py_ssize_t i = 0, frac = 0, digits = 0
    cdef uint64_t m = 0, d
    cdef bint point = False, up = False, dropped = False
    cdef char c
    if n > MAX_TEXT:
        return -1
    if n > 0 and s[0] == 43:  # "+"
        i = 1
    while i < n:
        c = s[i]
        if 48 <= c <= 57:
            digits += 1
            if point and frac >= exp:  # past the grid: only the first dropped digit counts
                if not dropped:
                    up = c >= 53
                    dropped = True
            else:
                d = <uint64_t>(c - 48)
                if m > (<uint64_t>INT64_MAX - d) // 10:
                    return -1
                m = m * 10 + d
                if point:
                    frac += 1
        elif c == 46 and not point:  # "."
            point = True
        else:
            return -1
        i += 1
    if digits == 0:
        return -1
    if frac < exp:
        if m > <uint64_t>(INT64_MAX // _POW10[exp - frac]):
            return -1
        m *= <uint64_t>_POW10[exp - frac]
    if up:
        if m >= <uint64_t>INT64_MAX:
            return -1
        m += 1
    return <int64_t>m


cdef class UnitScale:
    """Reads decimal strings as whole units of ``mant * 10**-exp`` (a tick or lot size)."""

    def __cinit__(self, mant=1, exp=0):
        if mant <= 0 or exp < 0:
            raise ValueError(f"a unit needs mant > 0 and exp >= 0, got {mant}, {exp}")
        self.usable = mant <= INT64_MAX and exp <= MAX_EXP
        self.mant = mant if self.usable else 1
        self.exp = exp if self.usable else 0

    def units(self, text):
        """The whole units in ``text``, or None where the exact reader must answer."""
        cdef int64_t n
        if not self.usable or type(text) is not str or not PyUnicode_IS_ASCII(text):
            return None
        n = read_units(<const char*>PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text),
                       self.mant, self.exp)
        return None if n < 0 else n

    def text(self, units):
        """``units`` as the decimal string of this unit (``exp`` decimals, ``-`` when
        negative), or None where the exact formatter must answer (not an int, or past
        int64 once scaled)."""
        cdef int64_t u, scaled
        cdef uint64_t mag
        if not self.usable or type(units) is not int:
            return None
        try:
            u = units
        except OverflowError:
            return None
        if __builtin_mul_overflow(u, self.mant, &scaled):
            return None
        mag = <uint64_t>(-(scaled + 1)) + 1 if scaled < 0 else <uint64_t>scaled
        return format_units(mag, scaled < 0, self.exp)


cdef str format_units(uint64_t mag, bint negative, int exp):
    """``mag * 10**-exp`` as a plain decimal with exactly ``exp`` decimals."""
    cdef char buf[48]
    cdef int at = 47, k
    for k in range(exp):
        buf[at] = 48 + <char>(mag % 10)
        mag //= 10
        at -= 1
    if exp:
        buf[at] = 46  # "."
        at -= 1
    while True:
        buf[at] = 48 + <char>(mag % 10)
        mag //= 10
        at -= 1
        if mag == 0:
            break
    if negative:
        buf[at] = 45  # "-"
        at -= 1
    return PyUnicode_DecodeASCII(buf + at + 1, 47 - at, NULL)


cdef int _two(const char* s) noexcept nogil:
    """Two ASCII digits as a number, -1 if either is not a digit."""
    if not (48 <= s[0] <= 57 and 48 <= s[1] <= 57):
        return -1
    return (s[0] - 48) * 10 + (s[1] - 48)


cdef int64_t days_from_civil(int64_t y, int64_t m, int64_t d) noexcept nogil:
    """Days since 1970-01-01 of a proleptic Gregorian date (years >= 1)."""
    cdef int64_t era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (9 if m <= 2 else -3)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef int _month_days(int64_t y, int m) noexcept nogil:
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m in (4, 6, 9, 11) else 31


cdef int64_t read_iso(const char* s, Py_ssize_t n) noexcept nogil:
    """``YYYY-MM-DD[T ]HH:MM:SS[.digits][Z]`` as ns since the epoch; -1 to decline."""
    cdef int cent, yy, mo, dd, hh, mi, ss
    cdef int64_t year, frac = 0, scale = 100000000
    cdef Py_ssize_t i
    if n < 19 or s[4] != 45 or s[7] != 45 or s[13] != 58 or s[16] != 58:
        return -1
    if s[10] != 84 and s[10] != 32:  # "T" or " "
        return -1
    cent, yy = _two(s), _two(s + 2)
    mo, dd = _two(s + 5), _two(s + 8)
    hh, mi, ss = _two(s + 11), _two(s + 14), _two(s + 17)
    if cent < 0 or yy < 0 or mo < 0 or dd < 0 or hh < 0 or mi < 0 or ss < 0:
        return -1
    year = cent * 100 + yy
    if year < MIN_YEAR or year > MAX_YEAR or not 1 <= mo <= 12 or hh > 23 or mi > 59 or ss > 59:
        return -1
    if dd < 1 or dd > _month_days(year, mo):
        return -1
    i = 19
    if i < n and s[i] == 46:  # "."
        i += 1
        if i >= n or not 48 <= s[i] <= 57:
            return -1
        while i < n and 48 <= s[i] <= 57:
            if scale:
                frac += (s[i] - 48) * scale
                scale //= 10
            i += 1
    if i < n and s[i] == 90:  # "Z"
        i += 1
    if i != n:
        return -1
    return ((days_from_civil(year, mo, dd) * 86400 + hh * 3600 + mi * 60 + ss)
            * 1000000000 + frac)


def iso_to_ns(text):
    """A plain UTC ISO-8601 stamp as int64 ns since the epoch, or None where the exact
    reader must answer (hub.times.iso_ns)."""
    cdef int64_t ns
    if type(text) is not str or not PyUnicode_IS_ASCII(text):
        return None
    ns = read_iso(<const char*>PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text))
    return None if ns < 0 else ns


cdef inline int64_t _units(UnitScale scale, object text) noexcept:
    """``scale.units(text)`` in C: -1 to decline."""
    if not scale.usable or type(text) is not str or not PyUnicode_IS_ASCII(text):
        return -1
    return read_units(<const char*>PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text),
                      scale.mant, scale.exp)


cdef inline int64_t _stamp(object text, bint seconds) noexcept:
    """A plain ISO-8601 stamp, or with ``seconds`` plain decimal seconds, as ns; -1 to
    decline."""
    if type(text) is not str or not PyUnicode_IS_ASCII(text):
        return -1
    if seconds:
        return read_units(<const char*>PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), 1, 9)
    return read_iso(<const char*>PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text))


cdef int64_t read_number(const char* s, Py_ssize_t n, int64_t mant, int exp,
                         bint rounding) noexcept nogil:
    """A JSON number's text (``9.121E-7``: an exponent of at most three digits) as whole
    units of ``mant * 10**-exp``, or with ``rounding`` (``mant`` 1) rounded half up to them;
    -1 to decline."""
    cdef Py_ssize_t i, e = -1
    cdef int x = 0
    cdef bint minus = False
    if n > MAX_TEXT:
        return -1
    for i in range(n):
        if s[i] == 101 or s[i] == 69:  # "e", "E"
            e = i
            break
    if e >= 0:
        i = e + 1
        if i < n and (s[i] == 43 or s[i] == 45):  # "+", "-"
            minus = s[i] == 45
            i += 1
        if i == n or n - i > 3:
            return -1
        while i < n:
            if not 48 <= s[i] <= 57:
                return -1
            x = x * 10 + (s[i] - 48)
            i += 1
        exp += -x if minus else x
        n = e
        if exp < 0 or exp > MAX_EXP:
            return -1
    if rounding:
        return read_rounded(s, n, exp) if mant == 1 else -1
    return read_units(s, n, mant, exp)


def json_units(text, UnitScale scale, bint rounding=False):
    """The whole units of ``scale`` in a JSON number's text (a ``str`` of any type; an
    exponent of at most three digits allowed: ``7.899e-05``), with ``rounding`` rounded half
    up to the scale's decimals; None where the exact reader must answer."""
    cdef int64_t n
    if not scale.usable or not isinstance(text, str) or not PyUnicode_IS_ASCII(text):
        return None
    n = read_number(<const char*>PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text),
                    scale.mant, scale.exp, rounding)
    return None if n < 0 else n


cdef inline int64_t _kind_units(UnitScale scale, object text, type kind,
                                bint rounding) noexcept:
    """Units of a JSON number's text of exactly type ``kind`` (exponent allowed), rounded
    half up to the scale's decimals with ``rounding``; -1 to decline."""
    if not scale.usable or type(text) is not kind or not PyUnicode_IS_ASCII(text):
        return -1
    return read_number(<const char*>PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text),
                       scale.mant, scale.exp, rounding)


def list_levels(rows, int side, UnitScale tick, UnitScale lot, dict sides=None,
                bint timed=False, type kind=str, bint rounding=False, bint positive=False):
    """Book rows of plain strings as ``([(side, price, size), ...], latest time)``, or None
    if any row is not (the exact path then reads them all).

    Rows are lists or tuples: ``[price, size, ...]`` on ``side``, or with ``sides``
    ``[side name, price, size, ...]`` (the name looked up in ``sides``); with ``timed``
    the item after the size is decimal seconds and the latest, in ns, is returned
    (0 otherwise). A price must be positive, and with ``positive`` a size too. Prices and
    sizes are of exactly type ``kind``: ``str`` (plain decimals), or a ``str`` subclass in
    which a venue's parser keeps the text of JSON numbers (an exponent allowed:
    ``9.121E-7``); for those, ``rounding`` rounds sizes half up to the lot's decimals
    (Huobi's float sums) instead of declining one off its grid."""
    cdef list out = []
    cdef int64_t price, size, ts = 0, t
    cdef Py_ssize_t first = 0 if sides is None else 1
    cdef object s
    if type(rows) is not list:
        return None
    for row in <list>rows:
        if not (type(row) is list or type(row) is tuple) or len(row) < first + 2 + timed:
            return None
        if sides is not None:
            s = row[0]
            if type(s) is not str:
                return None
            s = sides.get(s)
            if s is None:
                return None
            side = s
        if kind is str:
            price = _units(tick, row[first])
            size = _units(lot, row[first + 1])
        else:
            price = _kind_units(tick, row[first], kind, False)
            size = _kind_units(lot, row[first + 1], kind, rounding)
        if price <= 0 or size < 0 or (positive and size == 0):
            return None
        if timed:
            t = _stamp(row[first + 2], True)
            if t < 0:
                return None
            if t > ts:
                ts = t
        out.append(level(side, price, size))
    return out, ts


cdef inline bint _int_in(object v, int64_t low) except -1:
    """``v`` is an int (not a bool) in ``low``..INT64_MAX."""
    cdef int overflow = 0
    cdef long long x
    if type(v) is not int:
        return False
    x = PyLong_AsLongLongAndOverflow(v, &overflow)
    return overflow == 0 and x >= low


def int_trades(rows, dict sides):
    """Trade rows ``[timestamp, side, price, qty, ...]`` of JSON integers (Phemex's, in
    scaled units) as a list of ``(timestamp, side, price, qty)``, the side through
    ``sides``; None if any row is not plain: a timestamp not in 0..2**63-1, a side not in
    ``sides``, a price or qty not in 1..2**63-1, a row of fewer than four. A history
    snapshot is ~1,000 of them, read and checked here in C (tuples off the collector's
    list: ints hold no cycle); the caller reads a refused one again, to name the fault."""
    cdef list out = []
    cdef list r
    cdef tuple t
    if type(rows) is not list:
        return None
    for row in <list>rows:
        if type(row) is not list or len(<list>row) < 4:
            return None
        r = <list>row
        said = r[1]
        side = sides.get(said) if type(said) is str else None
        if side is None or not _int_in(r[0], 0) or not _int_in(r[2], 1) or not _int_in(r[3], 1):
            return None
        t = PyTuple_New(4)
        put(t, 0, r[0])
        put(t, 1, side)
        put(t, 2, r[2])
        put(t, 3, r[3])
        PyObject_GC_UnTrack(t)
        out.append(t)
    return out


def dict_levels(rows, dict sides, str side_key, str price_key, str size_key, str time_key,
                UnitScale tick, UnitScale lot):
    """Book rows that are JSON objects (Coinbase ``l2_data`` updates) as
    ``((side, price, size), ...)`` and the latest ISO-8601 ``time_key`` in ns, or None if
    any row is not plain (the exact path then reads them all). A price must be positive."""
    cdef list out = []
    cdef int64_t price, size, ts = 0, t
    cdef object s
    if type(rows) is not list:
        return None
    for row in <list>rows:
        if type(row) is not dict:
            return None
        s = (<dict>row).get(side_key)
        if type(s) is not str:
            return None
        s = sides.get(s)
        if s is None:
            return None
        price = _units(tick, (<dict>row).get(price_key))
        size = _units(lot, (<dict>row).get(size_key))
        t = _stamp((<dict>row).get(time_key), False)
        if price <= 0 or size < 0 or t < 0:
            return None
        if t > ts:
            ts = t
        out.append(level(s, price, size))
    return tuple(out), ts


def bad_level(levels):
    """The index of the first ``(side, price, size)`` the book core would refuse (a side
    other than 0/1, a price outside 1..2**63-1, a size outside 0..2**63-1, or not such a
    triple of ints), or -1 if there is none."""
    cdef Py_ssize_t i = 0
    cdef object side, price, size
    cdef int over_side = 0, over_price = 0, over_size = 0
    cdef long long s, p, q
    for level in levels:
        if type(level) is not tuple or len(<tuple>level) != 3:
            return i
        side, price, size = <tuple>level
        if type(side) is not int or type(price) is not int or type(size) is not int:
            return i
        # exact ints: read in C, each past int64 flagged (and its value -1)
        s = PyLong_AsLongLongAndOverflow(side, &over_side)
        p = PyLong_AsLongLongAndOverflow(price, &over_price)
        q = PyLong_AsLongLongAndOverflow(size, &over_size)
        if over_side or over_price or over_size or not (s == 0 or s == 1) or p <= 0 or q < 0:
            return i
        i += 1
    return -1


cdef void _diff_side(int side, list old, list new, list out):
    """Append the changes turning one side's sorted ``(price, size)`` list ``old`` into
    ``new``: first every price ``old`` has and ``new`` lacks (deleted, size 0, in ``old``'s
    order), then every price of ``new`` whose size differs (in ``new``'s order)."""
    cdef Py_ssize_t i = 0, j = 0, n = len(old), m = len(new)
    cdef int64_t p, q
    cdef int sign = -1 if side == 0 else 1  # bids run from the highest price down
    cdef object s = side
    while i < n:
        p = sign * <int64_t>(<tuple?>old[i])[0]
        while j < m and sign * <int64_t>(<tuple?>new[j])[0] < p:
            j += 1
        if j == m or sign * <int64_t>(<tuple?>new[j])[0] != p:
            out.append(level(s, <int64_t>(<tuple?>old[i])[0], 0))
        i += 1
    i = 0
    for j in range(m):
        q = sign * <int64_t>(<tuple?>new[j])[0]
        while i < n and sign * <int64_t>(<tuple?>old[i])[0] < q:
            i += 1
        if i < n and sign * <int64_t>(<tuple?>old[i])[0] == q \
                and (<tuple?>old[i])[1] == (<tuple?>new[j])[1]:
            continue
        out.append(level(s, <int64_t>(<tuple?>new[j])[0], <int64_t>(<tuple?>new[j])[1]))


def book_diff(tuple before, tuple after):
    """The absolute level changes that turn book ``before`` into book ``after`` (each a
    ``(bids, asks)`` pair of ``(price, size)`` lists as ``L2Book.snapshot`` gives them:
    bids from the highest price, asks from the lowest), as a tuple of
    ``(side, price, size)``."""
    cdef list out = []
    for side in range(2):
        _diff_side(side, before[side], after[side], out)
    return tuple(out)
