# cython: language_level=3
"""Compiled scanning of whole frames of the venues whose books are rows of JSON numbers
``[price, size, ...]`` (Crypto.com, Huobi), read exactly from their text in units of each
instrument's decimals: the row walk and the scales the two share, and each venue's
scanner with its key table. The rules are orderbook_core._scan's: accept less than JSON
allows, decline (``None``) anything the parser's ordinary path could read differently.
"""

from libc.stdint cimport INT64_MAX, int64_t
from libc.string cimport memchr, memcmp
from orderbook_core._ascii cimport PyUnicode_DecodeASCII
from orderbook_core._json cimport (
    Level,
    Span,
    T_ARR,
    T_INT,
    T_NONE,
    T_NUM,
    T_OBJ,
    T_STR,
    count_of,
    is_word,
    is_zero,
    key_after,
    key_index,
    millis_of,
    next_element,
    object_fields,
    skip_space,
    skip_value,
    text_of,
    whole_levels,
    whole_object,
    words,
)
from orderbook_core._text cimport UnitScale, level, read_number

include "_consts.pxi"


# The fields a Crypto.com book push's scan keeps (of the message, its result, each book).
cdef enum:
    CC_METHOD = 0, CC_CODE, CC_RESULT, CC_CHANNEL, CC_NAME, CC_DATA, CC_TIME, CC_BIDS, CC_ASKS
    CC_FIELDS

# The fields a Huobi depth.step0 push's scan keeps (of the message and of its tick: a
# tick table per feed, as the order key differs: spot's ``version``, the swaps' ``mrid``).
cdef enum:
    HB_CH = 0, HB_PING, HB_TICK, HB_BIDS, HB_ASKS, HB_TS, HB_KEY
    HB_FIELDS

cdef bytes _CRYPTOCOM = words("method code result channel instrument_name data t bids asks")
cdef const char* CRYPTOCOM_KEYS = _CRYPTOCOM
cdef bytes _HUOBI = words("ch ping tick")
cdef bytes _HUOBI_SPOT = words("bids asks ts version")
cdef bytes _HUOBI_SWAP = words("bids asks ts mrid")
cdef const char* HUOBI_KEYS = _HUOBI
cdef const char* HUOBI_SPOT_KEYS = _HUOBI_SPOT
cdef const char* HUOBI_SWAP_KEYS = _HUOBI_SWAP


cdef int _cryptocom_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The Crypto.com field a key names (CC_*: of the message, its result and its data),
    -1 for any other key."""
    return key_index(k, n, CRYPTOCOM_KEYS)


cdef inline Py_ssize_t _spanned(const char* p, Py_ssize_t i, Py_ssize_t n,
                               Span* value) noexcept nogil:
    """The value at ``p[i]`` in checked text noted in ``value`` (a string's span with its
    quotes): the index of what follows it, spaces skipped."""
    value.start = i
    i = skip_value(p, i, n, &value.kind)
    value.end = i
    return skip_space(p, i, n)


cdef Py_ssize_t _number_row(const char* p, Py_ssize_t i, Py_ssize_t n, Span* price,
                            Span* size) noexcept nogil:
    """The row ``[price, size, ...]`` at ``p[i]`` in checked text: its first two values'
    spans into ``price`` and ``size`` (what follows the size, such as Crypto.com's order
    count, is not read); the index of the next row or of the array's "]", -1 to decline
    (not an array, fewer than two values)."""
    cdef int kind
    if p[i] != 91:
        return -1
    i = _spanned(p, skip_space(p, i + 1, n), n, price)
    if p[i] != 44:  # at least a price and a size
        return -1
    i = _spanned(p, skip_space(p, i + 1, n), n, size)
    while p[i] == 44:
        i = skip_space(p, skip_value(p, skip_space(p, i + 1, n), n, &kind), n)
    if p[i] != 93:
        return -1
    i = skip_space(p, i + 1, n)
    return skip_space(p, i + 1, n) if p[i] == 44 else i


cdef inline int64_t _scaled(const char* p, Span s, UnitScale scale, bint rounding) noexcept nogil:
    """A JSON number in whole units of ``scale`` (``rounding``: rounded half up to them, as
    orderbook_core.list_levels reads a parser's number text); -1 to decline."""
    if (s.kind != T_INT and s.kind != T_NUM) or not scale.usable:
        return -1
    return read_number(p + s.start, s.end - s.start, scale.mant, scale.exp, rounding)


cdef bint _scaled_rows(const char* p, Span s, int side, UnitScale tick, UnitScale lot,
                       bint rounding, list out) except -1:
    """Rows ``[price, size, ...]`` of JSON numbers in checked text into ``out`` as (side,
    price units, size units) as ``_scaled`` reads them, both positive; False to decline."""
    cdef Py_ssize_t i, n = s.end
    cdef Span price, size
    cdef int64_t pu, su
    if s.kind != T_ARR:
        return False
    i = skip_space(p, s.start + 1, n)
    while p[i] != 93:
        i = _number_row(p, i, n, &price, &size)
        if i < 0:
            return False
        pu = _scaled(p, price, tick, False)
        su = _scaled(p, size, lot, rounding)
        if pu <= 0 or su <= 0:
            return False
        out.append(level(side, pu, su))
    return True


cdef tuple _DECIMALS = tuple(UnitScale(1, d) for d in range(19))
"""The unit ``10**-d`` for each number of decimals ``d`` a scale reads (0 to 18)."""


def cryptocom_book(text, dict decimals):
    """One Crypto.com ``book`` subscription push read in C: ``(instrument, [(t in ms,
    levels), ...])``, each book's levels ``(side, price units, size units)``, bids first,
    from rows ``[price, size, count]`` of JSON numbers. ``decimals`` maps an instrument to
    its (price, size) decimals. None to decline anything else: other channels or methods,
    a code other than 0, an unknown instrument, a price or size not positive, off the grid
    or with an exponent, a ``t`` that is not an int64 JSON integer of milliseconds."""
    cdef Span f[CC_FIELDS]
    cdef Span r[CC_FIELDS]
    cdef Span d[CC_FIELDS]
    cdef const char* p
    cdef Py_ssize_t n, i, k
    cdef int64_t ms
    cdef list books = []
    cdef list levels
    cdef UnitScale tick, lot
    if not whole_object(text, f, CC_FIELDS, _cryptocom_field, &p, &n):
        return None
    if not is_word(p, f[CC_METHOD], b"subscribe", 9) or not is_zero(p, f[CC_CODE]):
        return None
    if not object_fields(p, f[CC_RESULT], n, r, CC_FIELDS, _cryptocom_field):
        return None
    if not is_word(p, r[CC_CHANNEL], b"book", 4) or r[CC_NAME].kind != T_STR:
        return None
    if r[CC_DATA].kind != T_ARR:
        return None
    name = text_of(p, r[CC_NAME])
    pair = decimals.get(name)
    if pair is None or type(pair[0]) is not int or type(pair[1]) is not int:
        return None
    if not (0 <= pair[0] <= 18 and 0 <= pair[1] <= 18):
        return None
    tick = _DECIMALS[pair[0]]
    lot = _DECIMALS[pair[1]]
    i = skip_space(p, r[CC_DATA].start + 1, n)
    while p[i] != 93:
        i = next_element(p, i, n, d, CC_FIELDS, _cryptocom_field)
        if i < 0:
            return None
        ms = millis_of(p, d[CC_TIME])
        if ms < 0 or ms == INT64_MAX // 1_000_000:  # what cryptocom.MAX_MS refuses too
            return None
        levels = []
        if not _scaled_rows(p, d[CC_BIDS], BID, tick, lot, False, levels):
            return None
        if not _scaled_rows(p, d[CC_ASKS], ASK, tick, lot, False, levels):
            return None
        books.append((ms, tuple(levels)))
    return (name, books)


cdef int _huobi_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The Huobi push field a key names (HB_CH, HB_PING, HB_TICK), -1 for any other."""
    return key_index(k, n, HUOBI_KEYS)


cdef int _huobi_spot_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The Huobi spot tick field a key names (HB_BIDS ..., ``version`` HB_KEY), -1 for
    any other."""
    return key_after(k, n, HUOBI_SPOT_KEYS, HB_BIDS)


cdef int _huobi_swap_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The Huobi swap tick field a key names (HB_BIDS ..., ``mrid`` HB_KEY), -1 for any
    other."""
    return key_after(k, n, HUOBI_SWAP_KEYS, HB_BIDS)


cdef Level HUOBI_SPOT_LEVELS[2]  # the push, then its tick
HUOBI_SPOT_LEVELS[0].field_of, HUOBI_SPOT_LEVELS[0].descend = _huobi_field, HB_TICK
HUOBI_SPOT_LEVELS[1].field_of, HUOBI_SPOT_LEVELS[1].descend = _huobi_spot_field, -1
cdef Level HUOBI_SWAP_LEVELS[2]
HUOBI_SWAP_LEVELS[0].field_of, HUOBI_SWAP_LEVELS[0].descend = _huobi_field, HB_TICK
HUOBI_SWAP_LEVELS[1].field_of, HUOBI_SWAP_LEVELS[1].descend = _huobi_swap_field, -1


def huobi_depth(text, dict units, str order_key, bint rounding):
    """One Huobi ``market.<symbol>.depth.step0`` push (decompressed) read in C: ``(symbol,
    order key, tick ts in ns or 0, levels)``, the levels ``(side, price units, size units)``
    bids first, from rows ``[price, size]`` of JSON numbers in the units of
    ``units[symbol]`` (sizes rounded half up to the lot with ``rounding``). ``order_key``
    is the tick's field that orders pushes: ``version`` (spot) or ``mrid`` (swaps). None
    to decline anything else: a ping, another channel, an unknown symbol, an order key
    that is not an int64 JSON integer, a price or size not positive or off the grid."""
    cdef Span f[HB_FIELDS]  # the push's and its tick's, one pass
    cdef const Level* levels
    cdef const char* p
    cdef Py_ssize_t n, i, start, end
    cdef int64_t key, ms = 0
    cdef UnitScale tick, lot
    cdef list rows = []
    if order_key == "version":
        levels = HUOBI_SPOT_LEVELS
    elif order_key == "mrid":
        levels = HUOBI_SWAP_LEVELS
    else:
        return None
    if not whole_levels(text, f, HB_FIELDS, levels, &p, &n, True):  # stdlib json reads 9.121E-7
        return None
    if f[HB_PING].kind != T_NONE or f[HB_CH].kind != T_STR or f[HB_TICK].kind != T_OBJ:
        return None
    start, end = f[HB_CH].start + 7, f[HB_CH].end - 12  # between "market." and ".depth.step0"
    if start > end or memcmp(p + f[HB_CH].start, b"market.", 7) != 0:
        return None
    if memcmp(p + end, b".depth.step0", 12) != 0 or memchr(p + start, 46, end - start) != NULL:
        return None
    symbol = PyUnicode_DecodeASCII(p + start, end - start, NULL)
    pair = units.get(symbol)
    if pair is None:
        return None
    tick = pair[0].scale
    lot = pair[1].scale
    key = count_of(p, f[HB_KEY])
    if key < 0:
        return None
    if f[HB_TS].kind != T_NONE:
        ms = millis_of(p, f[HB_TS])
        if ms < 0:
            return None
    if not _scaled_rows(p, f[HB_BIDS], BID, tick, lot, rounding, rows):
        return None
    if not _scaled_rows(p, f[HB_ASKS], ASK, tick, lot, rounding, rows):
        return None
    return (symbol, key, ms * 1_000_000, tuple(rows))
