# cython: language_level=3
"""Compiled scanning of whole venue frames of the shapes that dominate a feed: the venues
that send prices and sizes as JSON strings (Binance, KuCoin, Coinbase Advanced Trade,
Gate.io;
those that send JSON numbers are orderbook_core._scan_numbers and _scan_rows).

A venue parser decodes a frame with orjson, walks the dict field by field and
reads every number through the exact readers: a dozen Python calls per frame
before the book sees it. The scanners here read the frame's text once, in C,
for the one or two message shapes a venue sends nearly all the time, and hand
the parser the values it needs (ids, stamps, levels already in whole units).

They accept less than JSON allows and decline (``None``) anything else: a string
with an escape, a duplicate field, a number the unit's grid does not hold, a
missing or mistyped field, an unknown symbol, a nesting deeper than 16, text that
is not JSON. The parser then takes its ordinary path on the same frame, which
accepts or refuses as it always has, so a scan that answers is the ordinary
path's answer (the differential tests hold them to that on the real captures and
on mutated frames). The pure-Python twin (orderbook_core._pyscan) declines every
frame. The JSON reading they share is orderbook_core._json (its contract: _json.pxd).
"""

from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from libc.string cimport memcmp, memset

from orderbook_core._json cimport (
    Level,
    Span,
    T_ARR,
    T_INT,
    T_NONE,
    T_OBJ,
    T_STR,
    count_of,
    is_word,
    item_then,
    key_after,
    key_index,
    millis_of,
    next_element,
    price_size_rows,
    same_text,
    skip_space,
    text_of,
    units_of,
    whole_levels,
    whole_object,
    words,
)
from orderbook_core._text cimport UnitScale, level, read_iso

include "_consts.pxi"


# The fields a Binance stream frame's scan keeps.
cdef enum:
    B_DATA = 0, B_EVENT, B_SYMBOL, B_FIRST, B_LAST, B_PREV, B_TIME, B_BIDS, B_ASKS, B_BID_QTY, B_ASK_QTY
    B_FIELDS

# The fields a KuCoin level2 message's scan keeps: of the message, of its data, of the
# data's changes (a key table each, read in one pass).
cdef enum:
    KU_TYPE = 0, KU_SUBJECT, KU_DATA, KU_TOPIC
    KU_START, KU_END, KU_SYMBOL, KU_CHANGES, KU_SEQ, KU_BID, KU_BID_SIZE, KU_ASK, KU_ASK_SIZE
    KU_BIDS, KU_ASKS
    KU_FIELDS

# The fields a Gate.io spot.order_book_update message's scan keeps (of the message, of
# its result).
cdef enum:
    G_CHANNEL = 0, G_EVENT, G_RESULT, G_TIME, G_PAIR, G_FIRST, G_LAST, G_BIDS, G_ASKS
    G_FIELDS

# The fields a Coinbase Advanced Trade l2_data message's scan keeps (of the message, its
# events and their updates).
cdef enum:
    CB_CHANNEL = 0, CB_SEQ, CB_EVENTS, CB_TYPE, CB_PRODUCT, CB_UPDATES, CB_SIDE, CB_PRICE
    CB_SIZE, CB_TIME
    CB_FIELDS

cdef int _binance_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The Binance field a key names, -1 for any other key."""
    cdef char c
    if n == 1:
        c = k[0]
        if c == 101: return B_EVENT    # e: event type
        if c == 115: return B_SYMBOL   # s: symbol
        if c == 85: return B_FIRST     # U: first update id
        if c == 117: return B_LAST     # u: last update id
        if c == 69: return B_TIME      # E: event time (ms)
        if c == 98: return B_BIDS      # b: bids, or the best bid
        if c == 97: return B_ASKS      # a: asks, or the best ask
        if c == 66: return B_BID_QTY   # B: best bid quantity
        if c == 65: return B_ASK_QTY   # A: best ask quantity
        return -1
    if n == 2 and k[0] == 112 and k[1] == 117:  # pu: previous update's last id
        return B_PREV
    if n == 4 and memcmp(k, b"data", 4) == 0:
        return B_DATA
    return -1


cdef Level BINANCE_LEVELS[2]  # a combined stream's fields are those of its data object
BINANCE_LEVELS[0].field_of, BINANCE_LEVELS[0].descend = _binance_field, B_DATA
BINANCE_LEVELS[1].field_of, BINANCE_LEVELS[1].descend = _binance_field, -1


cdef bytes _KUCOIN = words("type subject data topic")
cdef bytes _KUCOIN_DATA = words("sequenceStart sequenceEnd symbol changes sequence bestBid "
                                "bestBidSize bestAsk bestAskSize")
cdef bytes _KUCOIN_CHANGES = words("bids asks")
cdef bytes _COINBASE = words("channel sequence_num events type product_id updates side "
                             "price_level new_quantity event_time")
cdef bytes _GATEIO = words("channel event result")
cdef bytes _GATEIO_RESULT = words("t s U u b a")
cdef const char* GATEIO_KEYS = _GATEIO
cdef const char* GATEIO_RESULT_KEYS = _GATEIO_RESULT
cdef const char* KUCOIN_KEYS = _KUCOIN
cdef const char* KUCOIN_DATA_KEYS = _KUCOIN_DATA
cdef const char* KUCOIN_CHANGES_KEYS = _KUCOIN_CHANGES
cdef const char* COINBASE_KEYS = _COINBASE
cdef tuple _scaled(const char* p, Span s, dict units):
    """``(symbol, tick scale, lot scale)`` of the symbol in string span ``s``, from its
    (tick, lot) ``Unit`` pair in ``units``; None if ``s`` is no string or not in it."""
    if s.kind != T_STR:
        return None
    symbol = text_of(p, s)
    pair = units.get(symbol)
    return None if pair is None else (symbol, pair[0].scale, pair[1].scale)


cdef tuple _top(const char* p, Span bid, Span bid_size, Span ask, Span ask_size,
                UnitScale tick, UnitScale lot):
    """A ticker's (best bid, its size, best ask, its size) in units from four string spans;
    None to decline."""
    cdef int64_t b = units_of(p, bid, tick), bq = units_of(p, bid_size, lot)
    cdef int64_t a = units_of(p, ask, tick), aq = units_of(p, ask_size, lot)
    if b < 0 or bq < 0 or a < 0 or aq < 0:
        return None
    return (b, bq, a, aq)


def binance_frame(text, dict units):
    """One Binance stream frame (combined ``{"stream", "data"}`` or bare) of the two shapes
    a book feed is made of, read in C, or None to decline:

    - a ``depthUpdate``: ``("depth", symbol, U, u, pu or -1, E in ns, levels)``, the levels
      a tuple of (side, price units, size units), bids first;
    - a ``bookTicker`` (futures name it, spot sends ``u``, ``b``, ``a`` and no ``e``):
      ``("ticker", symbol, u, (bid, bid qty, ask, ask qty) in units)``.

    ``units`` maps a symbol to its (tick, step) ``hub.decimals.Unit`` pair; a symbol not
    in it declines. Ids are checked to be int64, not how they order (the parser does)."""
    cdef Span f[B_FIELDS]
    cdef const char* p
    cdef Py_ssize_t n, i
    cdef int k
    cdef int64_t first, last, prev, ms
    cdef list levels
    cdef UnitScale tick, lot
    if not whole_levels(text, f, B_FIELDS, BINANCE_LEVELS, &p, &n):
        return None
    if f[B_DATA].kind != T_NONE:  # combined stream: the fields are the data's alone
        if f[B_DATA].kind != T_OBJ:
            return None
        for k in range(B_FIELDS):
            if k != B_DATA and f[k].kind != T_NONE and not (
                f[B_DATA].start < f[k].start and f[k].end < f[B_DATA].end
            ):
                return None  # one beside the data (its own lie inside it)
    scaled = _scaled(p, f[B_SYMBOL], units)
    if scaled is None:
        return None
    symbol, tick, lot = scaled
    if is_word(p, f[B_EVENT], b"depthUpdate", 11):
        first = count_of(p, f[B_FIRST])
        last = count_of(p, f[B_LAST])
        ms = millis_of(p, f[B_TIME])
        if first < 0 or last < 0 or ms < 0:
            return None
        prev = -1
        if f[B_PREV].kind != T_NONE:
            prev = count_of(p, f[B_PREV])
            if prev < 0:
                return None
        levels = []
        if not price_size_rows(p, f[B_BIDS], BID, tick, lot, levels):
            return None
        if not price_size_rows(p, f[B_ASKS], ASK, tick, lot, levels):
            return None
        return ("depth", symbol, first, last, prev, ms * 1_000_000, tuple(levels))
    if f[B_EVENT].kind == T_NONE or is_word(p, f[B_EVENT], b"bookTicker", 10):
        last = count_of(p, f[B_LAST])
        top = _top(p, f[B_BIDS], f[B_BID_QTY], f[B_ASKS], f[B_ASK_QTY], tick, lot)
        if last < 0 or top is None:
            return None
        return ("ticker", symbol, last, top)
    return None


cdef int _kucoin_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The KuCoin message field a key names (KU_TYPE ... KU_TOPIC), -1 for any
    other key."""
    return key_index(k, n, KUCOIN_KEYS)


cdef int _kucoin_data_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The field of a message's data a key names (KU_START ... KU_ASK_SIZE), -1 for any other."""
    return key_after(k, n, KUCOIN_DATA_KEYS, KU_START)


cdef int _kucoin_changes_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The field of the data's changes a key names (KU_BIDS, KU_ASKS), -1 for any other."""
    return key_after(k, n, KUCOIN_CHANGES_KEYS, KU_BIDS)


cdef Level KUCOIN_LEVELS[3]  # the message, its data, the data's changes
KUCOIN_LEVELS[0].field_of, KUCOIN_LEVELS[0].descend = _kucoin_field, KU_DATA
KUCOIN_LEVELS[1].field_of, KUCOIN_LEVELS[1].descend = _kucoin_data_field, KU_CHANGES
KUCOIN_LEVELS[2].field_of, KUCOIN_LEVELS[2].descend = _kucoin_changes_field, -1


cdef int64_t _sequence(const char* p, Span s) noexcept nogil:
    """A KuCoin sequence: a non-negative int64 JSON integer, or a string of 1-19 ASCII
    digits (leading zeros read as int() reads them); -1 to decline."""
    cdef uint64_t v = 0
    cdef Py_ssize_t i
    if s.kind == T_INT:
        return count_of(p, s)
    if s.kind != T_STR or not 0 < s.end - s.start <= 19:
        return -1
    for i in range(s.start, s.end):
        if not 48 <= p[i] <= 57:
            return -1
        v = v * 10 + <uint64_t>(p[i] - 48)
    return -1 if v > <uint64_t>INT64_MAX else <int64_t>v


cdef bint _kucoin_changes(const char* p, Span s, int side, UnitScale tick, UnitScale lot,
                          int64_t first, int64_t last, unsigned char* seen,
                          list out) except -1:
    """Rows ``["price", "size", sequence]`` of ``s`` into ``out`` as (side, price, size,
    sequence), each sequence in first..last and not seen before; a price of 0 (a change
    that only moves the sequence) has size 0, its size not read. False to decline."""
    cdef Py_ssize_t i, n = s.end
    cdef Span price, size, seq
    cdef int64_t pu, su, q
    if s.kind != T_ARR:
        return False
    i = skip_space(p, s.start + 1, n)
    if p[i] == 93:
        return True
    while True:
        if p[i] != 91:
            return False
        i = item_then(p, skip_space(p, i + 1, n), n, &price, 44)
        if i < 0:
            return False
        i = item_then(p, i, n, &size, 44)
        if i < 0:
            return False
        i = item_then(p, i, n, &seq, 93)
        if i < 0:
            return False
        q = _sequence(p, seq)
        if q < first or q > last or seen[q - first]:
            return False
        seen[q - first] = 1
        pu = units_of(p, price, tick)
        if pu < 0:
            return False
        su = 0
        if pu:
            su = units_of(p, size, lot)
            if su < 0:
                return False
        out.append((side, pu, su, q))
        if p[i] == 93:
            return True
        if p[i] != 44:
            return False
        i = skip_space(p, i + 1, n)


def kucoin_frame(text, dict units):
    """One KuCoin message of the two shapes its book feed is made of, read in C, or None to
    decline:

    - a ``trade.l2update``: ``("level2", symbol, sequenceStart, sequenceEnd, changes)``,
      the changes a tuple of (side, price units, size units, sequence), bids first, one
      for each sequence of the message and none twice;
    - a ``trade.ticker``: ``("ticker", symbol, sequence, (best bid, its size, best ask,
      its size))`` in units, the symbol the topic's after its last ":".

    ``units`` maps a symbol to its (tick, lot) ``hub.decimals.Unit`` pair. It declines
    anything else: other messages, an unknown symbol, a value off the grid, a change
    outside the message's sequences, a message of more than 4,096 sequences or missing one."""
    cdef Span f[KU_FIELDS]  # the message's, its data's and the changes', one pass
    cdef const char* p
    cdef Py_ssize_t n, k
    cdef int64_t first, last
    cdef unsigned char seen[4096]
    cdef list changes = []
    cdef UnitScale tick, lot
    if not whole_levels(text, f, KU_FIELDS, KUCOIN_LEVELS, &p, &n):
        return None
    if not is_word(p, f[KU_TYPE], b"message", 7) or f[KU_DATA].kind != T_OBJ:
        return None
    if is_word(p, f[KU_SUBJECT], b"trade.ticker", 12):
        return _kucoin_ticker(p, f, units)
    if not is_word(p, f[KU_SUBJECT], b"trade.l2update", 14):
        return None
    if f[KU_CHANGES].kind != T_OBJ:
        return None
    scaled = _scaled(p, f[KU_SYMBOL], units)
    if scaled is None:
        return None
    symbol, tick, lot = scaled
    if not tick.usable or not lot.usable:
        return None
    first = _sequence(p, f[KU_START])
    last = _sequence(p, f[KU_END])
    if first < 0 or last < first or last - first >= 4096:
        return None
    memset(seen, 0, <size_t>(last - first + 1))
    if not _kucoin_changes(p, f[KU_BIDS], BID, tick, lot, first, last, seen, changes):
        return None
    if not _kucoin_changes(p, f[KU_ASKS], ASK, tick, lot, first, last, seen, changes):
        return None
    if len(changes) != last - first + 1:
        return None
    return ("level2", symbol, first, last, tuple(changes))


cdef tuple _kucoin_ticker(const char* p, Span* f, dict units):
    """The ticker of a ``trade.ticker`` message (see kucoin_frame), None to decline."""
    cdef Span name = f[KU_TOPIC]
    cdef Py_ssize_t colon
    cdef int64_t seq
    cdef UnitScale tick, lot
    if name.kind != T_STR:
        return None
    colon = name.end
    while colon > name.start and p[colon - 1] != 58:  # after the last ":", as rpartition
        colon -= 1
    name.start = colon
    scaled = _scaled(p, name, units)
    if scaled is None:
        return None
    symbol, tick, lot = scaled
    seq = _sequence(p, f[KU_SEQ])
    top = _top(p, f[KU_BID], f[KU_BID_SIZE], f[KU_ASK], f[KU_ASK_SIZE], tick, lot)
    if seq < 0 or top is None:
        return None
    return ("ticker", symbol, seq, top)


cdef int _gateio_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The Gate.io message field a key names (G_CHANNEL, G_EVENT, G_RESULT), -1 for any other."""
    return key_index(k, n, GATEIO_KEYS)


cdef int _gateio_result_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The field of a message's result a key names (G_TIME ... G_ASKS), -1 for any other."""
    return key_after(k, n, GATEIO_RESULT_KEYS, G_TIME)


cdef Level GATEIO_LEVELS[2]  # the message, its result
GATEIO_LEVELS[0].field_of, GATEIO_LEVELS[0].descend = _gateio_field, G_RESULT
GATEIO_LEVELS[1].field_of, GATEIO_LEVELS[1].descend = _gateio_result_field, -1


def gateio_update(text, dict units):
    """One Gate.io ``spot.order_book_update`` message read in C: ``(pair, U, u, t in ns,
    levels)``, the levels a tuple of (side, price units, size units), bids first. ``units``
    maps a pair to its (tick, lot) ``hub.decimals.Unit`` pair. None to decline anything
    else: other channels and events, an unknown pair, ``U`` after ``u``, a row other than
    ``["price", "size"]``, a price not positive, a value off the grid."""
    cdef Span f[G_FIELDS]  # the message's and its result's, one pass
    cdef const char* p
    cdef Py_ssize_t n
    cdef int64_t first, last, ms
    cdef list levels = []
    cdef UnitScale tick, lot
    if not whole_levels(text, f, G_FIELDS, GATEIO_LEVELS, &p, &n):
        return None
    if not is_word(p, f[G_CHANNEL], b"spot.order_book_update", 22) or not is_word(p, f[G_EVENT], b"update", 6):
        return None
    if f[G_RESULT].kind != T_OBJ:
        return None
    scaled = _scaled(p, f[G_PAIR], units)
    if scaled is None:
        return None
    pair, tick, lot = scaled
    first = count_of(p, f[G_FIRST])
    last = count_of(p, f[G_LAST])
    ms = millis_of(p, f[G_TIME])
    if first < 0 or last < first or ms < 0:
        return None
    if not price_size_rows(p, f[G_BIDS], BID, tick, lot, levels):
        return None
    if not price_size_rows(p, f[G_ASKS], ASK, tick, lot, levels):
        return None
    return (pair, first, last, ms * 1_000_000, tuple(levels))


cdef int _coinbase_field(const char* k, Py_ssize_t n) noexcept nogil:
    """The Coinbase Advanced Trade field a key names (CB_*: of the message, its events and
    their updates), -1 for any other key."""
    return key_index(k, n, COINBASE_KEYS)


cdef bint _coinbase_updates(const char* p, Span s, dict sides, UnitScale tick, UnitScale lot,
                            list out, int64_t* latest) except -1:
    """An event's updates ``{"side", "price_level", "new_quantity", "event_time"}`` into
    ``out`` as (side, price, size), the latest event time into ``latest``; False to
    decline (as ``_text.dict_levels`` would: any update not plain)."""
    cdef Span u[CB_FIELDS]
    cdef Span side_text, time_text  # the last update's: a snapshot's repeat them
    cdef Py_ssize_t i, k, n = s.end
    cdef int64_t price, size, t = -1
    side = None
    side_text.start = side_text.end = time_text.start = time_text.end = 0
    if s.kind != T_ARR:
        return False
    i = skip_space(p, s.start + 1, n)
    while p[i] != 93:
        i = next_element(p, i, n, u, CB_FIELDS, _coinbase_field)
        if i < 0 or u[CB_SIDE].kind != T_STR or u[CB_TIME].kind != T_STR:
            return False
        if side is None or not same_text(p, u[CB_SIDE], side_text):  # no str to build again
            side = sides.get(text_of(p, u[CB_SIDE]))
            if side is None:
                return False
            side_text = u[CB_SIDE]
        if t < 0 or not same_text(p, u[CB_TIME], time_text):  # nor the same stamp to read
            t = read_iso(p + u[CB_TIME].start, u[CB_TIME].end - u[CB_TIME].start)
            time_text = u[CB_TIME]
        price = units_of(p, u[CB_PRICE], tick)
        size = units_of(p, u[CB_SIZE], lot)
        if price <= 0 or size < 0 or t < 0:
            return False
        if t > latest[0]:
            latest[0] = t
        out.append(level(side, price, size))
    return True


def coinbase_l2(text, dict units, tuple default, dict sides):
    """One Coinbase Advanced Trade ``l2_data`` message read in C: ``(sequence_num,
    events)``, each event ``(product, snapshot?, levels, latest event_time in ns)``, the
    levels ``(side, price units, size units)`` in message order. ``units`` maps a product to
    its (tick, lot) ``hub.decimals.Unit`` pair (``default`` for others), ``sides`` a side's
    name to 0 or 1. None to decline anything else: other channels, an event of another
    type, an update whose side, price (positive), size or ISO time is not plain."""
    cdef Span f[CB_FIELDS]
    cdef Span e[CB_FIELDS]
    cdef const char* p
    cdef Py_ssize_t n, i, k
    cdef int64_t seq, latest
    cdef bint snapshot
    cdef list events = []
    cdef list levels
    cdef UnitScale tick, lot
    if not whole_object(text, f, CB_FIELDS, _coinbase_field, &p, &n):
        return None
    if not is_word(p, f[CB_CHANNEL], b"l2_data", 7) or f[CB_EVENTS].kind != T_ARR:
        return None
    seq = count_of(p, f[CB_SEQ])
    if seq < 0:
        return None
    i = skip_space(p, f[CB_EVENTS].start + 1, n)
    while p[i] != 93:
        i = next_element(p, i, n, e, CB_FIELDS, _coinbase_field)
        if i < 0 or e[CB_PRODUCT].kind != T_STR:
            return None
        if is_word(p, e[CB_TYPE], b"snapshot", 8):
            snapshot = True
        elif is_word(p, e[CB_TYPE], b"update", 6):
            snapshot = False
        else:
            return None
        product = text_of(p, e[CB_PRODUCT])
        pair = units.get(product) or default
        tick = pair[0].scale
        lot = pair[1].scale
        if not tick.usable or not lot.usable:
            return None
        levels = []
        latest = 0
        if not _coinbase_updates(p, e[CB_UPDATES], sides, tick, lot, levels, &latest):
            return None
        events.append((product, snapshot, tuple(levels), latest))
    return (seq, events)
