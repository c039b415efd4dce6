# cython: language_level=3
"""Compiled scanning of whole frames of the venues that send prices and sizes as JSON
numbers (Kraken Futures, BitMEX, Bitfinex, Deribit; Crypto.com's and Huobi's books of
number rows are orderbook_core._scan_rows), read exactly from their text in units of
each instrument's decimals. The rules are orderbook_core._scan's:
accept less than JSON allows, decline (``None``) anything the parser's ordinary path
could read differently, which then reads it as it always has. The JSON reading is
orderbook_core._json.
"""

from cpython.long cimport PyLong_FromLongLong
from cpython.tuple cimport PyTuple_New
from libc.stdint cimport int64_t
from libc.string cimport memcmp, memcpy
from orderbook_core._ascii cimport (
    PyUnicode_DATA,
    PyUnicode_DecodeASCII,
    PyUnicode_GET_LENGTH,
    PyUnicode_IS_ASCII,
)
from orderbook_core._json cimport (
    Level,
    Span,
    T_ARR,
    T_NONE,
    T_NULL,
    T_OBJ,
    T_STR,
    count_of,
    decimal_of,
    integer_at,
    is_word,
    item_then,
    key_after,
    key_index,
    millis_of,
    next_element,
    object_fields,
    number_end,
    past_char,
    same_text,
    skip_space,
    text_of,
    whole_levels,
    whole_object,
    words,
)
from orderbook_core._engine_records cimport PyObject_GC_UnTrack, put
from orderbook_core._text cimport level, read_iso, read_scientific

include "_consts.pxi"


# The fields a Kraken Futures book message's scan keeps.
cdef enum:
    K_EVENT = 0, K_FEED, K_PRODUCT, K_SIDE, K_SEQ, K_PRICE, K_QTY, K_TIME
    K_FIELDS

# The fields a BitMEX table message's scan keeps, and those of each of its rows (a
# partial's ``filter`` object is read with the row fields: its ``symbol``).
cdef enum:
    BX_TABLE = 0, BX_ACTION, BX_DATA, BX_FILTER
    BX_FIELDS
cdef enum:
    BR_SYMBOL = 0, BR_ID, BR_SIDE, BR_SIZE, BR_PRICE, BR_TIME
    BR_FIELDS

# The fields a Deribit ticker or book message's scan keeps (of the message, its params,
# its data).
cdef enum:
    DR_METHOD = 0, DR_PARAMS, DR_CHANNEL, DR_DATA, DR_BID, DR_BID_AMOUNT, DR_ASK, DR_ASK_AMOUNT
    DR_TIME, DR_TYPE, DR_CHANGE, DR_PREV, DR_BIDS, DR_ASKS
    DR_FIELDS



DEF BITFINEX_DECIMALS = 8  # Bitfinex prices and amounts, in units of 10**-8
DEF BITFINEX_ONE = 100_000_000  # an amount of 1: what a deletion sends
cdef bytes _KRAKEN_FUTURES = words("event feed product_id side seq price qty timestamp")
cdef bytes _BITMEX = words("table action data filter")
cdef bytes _BITMEX_ROW = words("symbol id side size price timestamp")
cdef bytes _DERIBIT = words("method params")
cdef bytes _DERIBIT_PARAMS = words("channel data")
cdef bytes _DERIBIT_DATA = words("best_bid_price best_bid_amount best_ask_price best_ask_amount "
                                 "timestamp type change_id prev_change_id bids asks")
cdef const char* KRAKEN_FUTURES_KEYS = _KRAKEN_FUTURES
cdef const char* BITMEX_KEYS = _BITMEX
cdef const char* BITMEX_ROW_KEYS = _BITMEX_ROW
cdef const char* DERIBIT_KEYS = _DERIBIT
cdef const char* DERIBIT_PARAMS_KEYS = _DERIBIT_PARAMS
cdef const char* DERIBIT_DATA_KEYS = _DERIBIT_DATA


cdef int _kraken_futures_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The Kraken Futures field a key names (K_*), -1 for any other key."""
    return key_index(k, n, KRAKEN_FUTURES_KEYS)


cdef int _bitmex_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The BitMEX message field a key names (BX_*), -1 for any other key."""
    return key_index(k, n, BITMEX_KEYS)


cdef int _bitmex_row_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The BitMEX book row field a key names (BR_*), -1 for any other key."""
    return key_index(k, n, BITMEX_ROW_KEYS)


def kraken_futures_book(text, dict decimals):
    """One Kraken Futures ``book`` message (one level's absolute quantity) read in C:
    ``(product, seq, timestamp in ns, (side, price units, qty units))``, or None to decline
    (any other message, a number with an exponent or off the grid, a price not positive, a
    product not in ``decimals``, which maps a product to its (price, qty) decimals)."""
    cdef Span f[K_FIELDS]
    cdef const char* p
    cdef Py_ssize_t n
    cdef int64_t seq, ms, price, qty
    cdef int side
    if not whole_object(text, f, K_FIELDS, _kraken_futures_field, &p, &n):
        return None
    if f[K_EVENT].kind != T_NONE or not is_word(p, f[K_FEED], b"book", 4):
        return None
    if f[K_PRODUCT].kind != T_STR:
        return None
    if is_word(p, f[K_SIDE], b"buy", 3):
        side = BID
    elif is_word(p, f[K_SIDE], b"sell", 4):
        side = ASK
    else:
        return None
    product = text_of(p, f[K_PRODUCT])
    pair = decimals.get(product)
    if pair is None:
        return None
    seq = count_of(p, f[K_SEQ])
    ms = millis_of(p, f[K_TIME])
    price = decimal_of(p, f[K_PRICE], pair[0])
    qty = decimal_of(p, f[K_QTY], pair[1])
    if seq < 0 or ms < 0 or price <= 0 or qty < 0:
        return None
    return (product, seq, ms * 1_000_000, (side, price, qty))


BITMEX_ACTIONS = ("partial", "insert", "update", "delete")


cdef tuple _id_row(int64_t ident, object side, int64_t price, int64_t size):
    """The row ``(id, side, price, size)`` of ints, untracked by the cyclic collector as
    ``level`` leaves a level: a full XBTUSD partial is 9,349 of them."""
    cdef tuple t = PyTuple_New(4)
    put(t, 0, PyLong_FromLongLong(ident))
    put(t, 1, side)
    put(t, 2, PyLong_FromLongLong(price))
    put(t, 3, PyLong_FromLongLong(size))
    PyObject_GC_UnTrack(t)
    return t


def bitmex_book(text, dict decimals):
    """One BitMEX ``orderBookL2`` (or ``orderBookL2_25``) message read in C, or None to
    decline: ``(action, {symbol: (rows, latest timestamp in ns or 0)})``, the symbols in
    the order the rows (then a partial's ``filter``) name them, each row ``(id, side, price
    units or 0, size units)`` in message order, ints off the cyclic collector's list. A row carries its price when
    the action is ``partial`` or ``insert`` or when it sends one; a delete's size is 0
    (not read). ``decimals`` maps a symbol to its (price, size) decimals; any symbol not
    in it, an id that is not an int64 JSON integer, a side other than ``Buy``/``Sell``,
    a price or size not positive or off the grid, a ``timestamp`` that is not a plain
    UTC stamp, or any other message declines."""
    cdef Span f[BX_FIELDS]
    cdef Span r[BR_FIELDS]
    cdef const char* p
    cdef Py_ssize_t n, i, start, k
    cdef int64_t ident, size, price, ns
    cdef int side, act = -1
    cdef bint priced
    cdef dict rows = {}
    cdef dict stamps = {}
    cdef list found
    cdef Span last_symbol
    if not whole_object(text, f, BX_FIELDS, _bitmex_field, &p, &n, True):  # 7.899e-05
        return None
    if not (is_word(p, f[BX_TABLE], b"orderBookL2", 11) or is_word(p, f[BX_TABLE], b"orderBookL2_25", 14)):
        return None
    if is_word(p, f[BX_ACTION], b"partial", 7):
        act = 0
    elif is_word(p, f[BX_ACTION], b"insert", 6):
        act = 1
    elif is_word(p, f[BX_ACTION], b"update", 6):
        act = 2
    elif is_word(p, f[BX_ACTION], b"delete", 6):
        act = 3
    if act < 0 or f[BX_DATA].kind != T_ARR:
        return None
    symbol = None
    last_symbol.kind = T_NONE
    i = skip_space(p, f[BX_DATA].start + 1, n)
    while p[i] != 93:  # the data array was checked whole: rows until "]"
        i = next_element(p, i, n, r, BR_FIELDS, _bitmex_row_field)
        if i < 0:
            return None
        if r[BR_SYMBOL].kind != T_STR:
            return None
        if not (last_symbol.kind == T_STR and same_text(p, r[BR_SYMBOL], last_symbol)):
            symbol = text_of(p, r[BR_SYMBOL])
            last_symbol = r[BR_SYMBOL]
            pair = decimals.get(symbol)
            if pair is None:
                return None
            found = rows.get(symbol)
            if found is None:
                found = rows[symbol] = []
                stamps[symbol] = 0
        ident = count_of(p, r[BR_ID])
        if ident < 0:
            return None
        if is_word(p, r[BR_SIDE], b"Buy", 3):
            side = BID
        elif is_word(p, r[BR_SIDE], b"Sell", 4):
            side = ASK
        else:
            return None
        size = 0
        if act != 3:  # a delete's size is not read
            size = decimal_of(p, r[BR_SIZE], pair[1], True)
            if size <= 0:
                return None
        price = 0
        if act <= 1 or r[BR_PRICE].kind != T_NONE:  # partial, insert, or sent
            price = decimal_of(p, r[BR_PRICE], pair[0], True)
            if price <= 0:
                return None
        if r[BR_TIME].kind != T_NONE:
            if r[BR_TIME].kind != T_STR:
                return None
            ns = read_iso(p + r[BR_TIME].start, r[BR_TIME].end - r[BR_TIME].start)
            if ns < 0:
                return None
            if ns > stamps[symbol]:
                stamps[symbol] = ns
        found.append(_id_row(ident, side, price, size))
    if act == 0 and f[BX_FILTER].kind == T_OBJ:
        if not object_fields(p, f[BX_FILTER], n, r, BR_FIELDS, _bitmex_row_field):
            return None
        if r[BR_SYMBOL].kind != T_NONE:
            if r[BR_SYMBOL].kind != T_STR:
                return None
            symbol = text_of(p, r[BR_SYMBOL])
            if symbol not in decimals:
                return None
            if symbol not in rows:
                rows[symbol] = []
                stamps[symbol] = 0
    return (BITMEX_ACTIONS[act], {s: (rows[s], stamps[s]) for s in rows})


cdef Py_ssize_t _bitfinex_entry(const char* p, Py_ssize_t i, Py_ssize_t n,
                                list out) except -2:
    """The entry ``[price, count, amount]`` at ``p[i]`` (just past its "[") appended to
    ``out`` as (side, price units, size units, "price:amount" as sent): the index past its
    "]" and the spaces after it, -1 to decline."""
    cdef Py_ssize_t price_at, price_end, amount_at, amount_end, digits, length
    cdef int64_t count, price, size
    cdef int kind, side
    cdef char buffer[96]
    price_at = i
    price_end = number_end(p, i, n, &kind, True)  # deep bids come as 1.1e-7
    if price_end < 0 or p[price_at] == 45:  # a price is positive
        return -1
    i = past_char(p, price_end, n, 44)  # ","
    if i < 0:
        return -1
    i = integer_at(p, i, n, &count)
    if i < 0:
        return -1
    i = past_char(p, i, n, 44)
    if i < 0:
        return -1
    amount_at = i
    amount_end = number_end(p, i, n, &kind, True)
    if amount_end < 0:
        return -1
    i = past_char(p, amount_end, n, 93)  # "]"
    if i < 0:
        return -1
    price = read_scientific(p + price_at, price_end - price_at, 1, BITFINEX_DECIMALS)
    side = BID
    digits = amount_at
    if p[amount_at] == 45:  # "-": an ask
        side = ASK
        digits += 1
    size = read_scientific(p + digits, amount_end - digits, 1, BITFINEX_DECIMALS)
    if price <= 0 or size <= 0 or (count == 0 and size != BITFINEX_ONE):
        return -1
    length = price_end - price_at + 1 + amount_end - amount_at
    if length > 96:
        return -1
    memcpy(buffer, p + price_at, price_end - price_at)
    buffer[price_end - price_at] = 58  # ":"
    memcpy(buffer + price_end - price_at + 1, p + amount_at, amount_end - amount_at)
    out.append((side, price, size if count else 0, PyUnicode_DecodeASCII(buffer, length, NULL)))
    return i


def bitfinex_book(text):
    """One Bitfinex book message with its sequence number, all JSON numbers, read in C:
    ``[chanId, [price, count, amount], seq]`` (one entry) or ``[chanId, [[price, count,
    amount], ...], seq]`` (a snapshot) as ``(chanId, seq, entries, snapshot)``, each entry
    ``(side, price units, size units, "price:amount" as sent)`` in units of 10**-8: the
    side the amount's sign (a negative amount is an ask), the size 0 when count is 0 (a
    deletion, whose amount must be 1 or -1). None to decline anything else: heartbeats,
    checksums, an empty snapshot, trades, tickers, a price not positive, more than 8
    decimals (an exponent counts: ``1.1e-7`` is 11 units), an exponent past two digits."""
    cdef const char* p
    cdef Py_ssize_t n, i
    cdef int64_t chan, seq
    cdef bint snapshot
    cdef list entries = []
    if type(text) is not str or not PyUnicode_IS_ASCII(text):
        return None
    p = <const char*>PyUnicode_DATA(text)
    n = PyUnicode_GET_LENGTH(text)
    i = past_char(p, 0, n, 91)  # "["
    if i < 0:
        return None
    i = integer_at(p, i, n, &chan)
    if i < 0:
        return None
    i = past_char(p, i, n, 44)  # ","
    if i < 0:
        return None
    i = past_char(p, i, n, 91)  # "[": the entry, or the snapshot's list
    if i < 0:
        return None
    snapshot = p[i] == 91
    if snapshot:
        while True:
            i = _bitfinex_entry(p, skip_space(p, i + 1, n), n, entries)
            if i < 0 or i >= n:
                return None
            if p[i] == 93:
                break
            if p[i] != 44:
                return None
            i = skip_space(p, i + 1, n)
            if i >= n or p[i] != 91:
                return None
        i = skip_space(p, i + 1, n)
    else:
        i = _bitfinex_entry(p, i, n, entries)
        if i < 0:
            return None
    i = past_char(p, i, n, 44)
    if i < 0:
        return None
    i = integer_at(p, i, n, &seq)
    if i < 0:
        return None
    i = past_char(p, i, n, 93)
    if i != n:
        return None
    return (chan, seq, entries, snapshot)


cdef int _deribit_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The Deribit message field a key names (DR_METHOD, DR_PARAMS), -1 for any other."""
    return key_index(k, n, DERIBIT_KEYS)


cdef int _deribit_params_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The field of a message's params a key names (DR_CHANNEL, DR_DATA), -1 for any other."""
    return key_after(k, n, DERIBIT_PARAMS_KEYS, DR_CHANNEL)


cdef int _deribit_data_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The field of a notification's data a key names (DR_BID ...), -1 for any other."""
    return key_after(k, n, DERIBIT_DATA_KEYS, DR_BID)


cdef Level DERIBIT_LEVELS[3]
DERIBIT_LEVELS[0].field_of, DERIBIT_LEVELS[0].descend = _deribit_field, DR_PARAMS
DERIBIT_LEVELS[1].field_of, DERIBIT_LEVELS[1].descend = _deribit_params_field, DR_DATA
DERIBIT_LEVELS[2].field_of, DERIBIT_LEVELS[2].descend = _deribit_data_field, -1


cdef int64_t _optional_decimal(const char* p, Span s, object decimals) except -2:
    """A ticker value: absent or null is 0, else a JSON number as ``decimal_of`` reads it."""
    if s.kind == T_NONE or s.kind == T_NULL:
        return 0
    return decimal_of(p, s, decimals)


cdef bint _deribit_entries(const char* p, Span s, Py_ssize_t n, int side, object decimals,
                           bint snapshot, list levels, bytearray actions) except -1:
    """A book message's entries ``[action, price, amount]`` of one side (``s``): each
    level (side, price units, amount units, 0 for a deletion) into ``levels``, its action
    (``n``, ``c`` or ``d``) into ``actions``; ``decimals`` the instrument's (price,
    amount) decimals. False to decline: an entry of any other shape, an action not
    ``new``, ``change`` or ``delete`` (not ``new`` in a snapshot), a price not positive,
    an amount negative, a value off the grid."""
    cdef Py_ssize_t i
    cdef Span action, price, amount
    cdef int64_t pu, au
    cdef char code
    if s.kind != T_ARR:
        return False
    i = skip_space(p, s.start + 1, n)
    if p[i] == 93:  # "]"
        return True
    while True:
        if p[i] != 91:  # "["
            return False
        i = item_then(p, skip_space(p, i + 1, n), n, &action, 44)  # "action",
        if i < 0:
            return False
        i = item_then(p, i, n, &price, 44)  # price,
        if i < 0:
            return False
        i = item_then(p, i, n, &amount, 93)  # amount]
        if i < 0:
            return False
        if is_word(p, action, b"new", 3):
            code = 110  # "n"
        elif snapshot:
            return False
        elif is_word(p, action, b"change", 6):
            code = 99  # "c"
        elif is_word(p, action, b"delete", 6):
            code = 100  # "d"
        else:
            return False
        pu = decimal_of(p, price, decimals[0])
        au = decimal_of(p, amount, decimals[1])
        if pu <= 0 or au < 0:
            return False
        levels.append(level(side, pu, 0 if code == 100 else au))
        actions.append(code)
        if p[i] == 93:
            return True
        if p[i] != 44:  # ","
            return False
        i = skip_space(p, i + 1, n)


def deribit_frame(text, dict decimals):
    """One Deribit subscription message of the ``ticker`` or ``book`` channel read in C.
    A ticker (``ticker.<instrument>.<interval>``): ``("ticker", instrument, timestamp in
    ns, (best bid, bid amount, best ask, ask amount) in units)``, an absent or null value
    0. A book message (``book.<instrument>.<interval>``): ``("book", instrument,
    snapshot?, change_id, prev_change_id (0 for a snapshot), timestamp in ns,
    levels, actions)``, the levels bids first, each ``(side, price units, amount
    units)`` in message order, a deletion's amount 0, and ``actions`` a bytes of their
    actions, one each: ``n`` (new), ``c`` (change), ``d`` (delete). ``decimals`` maps an instrument to its
    (price, amount) decimals. None to decline anything else: other channels, an
    instrument not in ``decimals``, a value negative, off the grid or with an exponent,
    a price not positive, an id or a timestamp that is not an int64 JSON integer (the
    timestamp of milliseconds), a book ``type`` other than ``snapshot`` and ``change``,
    an entry the parser would refuse."""
    cdef Span d[DR_FIELDS]  # the message's, its params' and its data's fields, one pass
    cdef const char* p
    cdef Py_ssize_t n, start, end, dot, last_dot
    cdef int64_t ms, bid, bid_amount, ask, ask_amount, change, prev = 0
    cdef bint ticker, snapshot
    cdef list levels
    cdef bytearray actions
    if not whole_levels(text, d, DR_FIELDS, DERIBIT_LEVELS, &p, &n):
        return None
    if not is_word(p, d[DR_METHOD], b"subscription", 12):
        return None
    if d[DR_PARAMS].kind != T_OBJ or d[DR_CHANNEL].kind != T_STR or d[DR_DATA].kind != T_OBJ:
        return None
    start, end = d[DR_CHANNEL].start, d[DR_CHANNEL].end
    if end - start > 7 and memcmp(p + start, b"ticker.", 7) == 0:
        ticker, dot = True, start + 6
    elif end - start > 5 and memcmp(p + start, b"book.", 5) == 0:
        ticker, dot = False, start + 4
    else:
        return None
    last_dot = end - 1
    while last_dot > dot and p[last_dot] != 46:  # the last "." after the channel's name
        last_dot -= 1
    if last_dot <= dot:
        return None
    instrument = PyUnicode_DecodeASCII(p + dot + 1, last_dot - dot - 1, NULL)
    pair = decimals.get(instrument)
    if pair is None:
        return None
    ms = millis_of(p, d[DR_TIME])
    if ms < 0:
        return None
    if ticker:
        bid = _optional_decimal(p, d[DR_BID], pair[0])
        bid_amount = _optional_decimal(p, d[DR_BID_AMOUNT], pair[1])
        ask = _optional_decimal(p, d[DR_ASK], pair[0])
        ask_amount = _optional_decimal(p, d[DR_ASK_AMOUNT], pair[1])
        if bid < 0 or bid_amount < 0 or ask < 0 or ask_amount < 0:
            return None
        return ("ticker", instrument, ms * 1_000_000, (bid, bid_amount, ask, ask_amount))
    if is_word(p, d[DR_TYPE], b"snapshot", 8):
        snapshot = True
    elif is_word(p, d[DR_TYPE], b"change", 6):
        snapshot = False
    else:
        return None
    change = count_of(p, d[DR_CHANGE])
    if not snapshot:
        prev = count_of(p, d[DR_PREV])
    if change < 0 or prev < 0:
        return None
    levels, actions = [], bytearray()
    if not _deribit_entries(p, d[DR_BIDS], n, BID, pair, snapshot, levels, actions):
        return None
    if not _deribit_entries(p, d[DR_ASKS], n, ASK, pair, snapshot, levels, actions):
        return None
    return ("book", instrument, snapshot, change, prev, ms * 1_000_000, tuple(levels),
            bytes(actions))
