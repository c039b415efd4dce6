# cython: language_level=3
"""Compiled NASDAQ TotalView-ITCH 5.0 replay into per-symbol L3 books.

Sans-I/O: ``feed(bytes)`` consumes every complete length-prefixed message
and keeps an incomplete tail for the next call; ``finish()`` refuses a
truncated end. The whole message loop runs in C and drives the books
through their C-level API (orderbook_core/_l3.pxd).
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memset
from libcpp.vector cimport vector

from orderbook_core._l3 cimport L3Book, Order
from orderbook_core.errors import BookError, ItchFormatError, UnknownStockLocate, located
from orderbook_core.itch_spec import BOOK_MESSAGES, MESSAGE_LENGTHS

cdef int _LENGTH[256]
cdef bint _BOOK[256]
memset(_LENGTH, 0, sizeof(_LENGTH))
memset(_BOOK, 0, sizeof(_BOOK))
for _t, _n in MESSAGE_LENGTHS.items():
    _LENGTH[ord(_t)] = _n
for _t in BOOK_MESSAGES:
    _BOOK[ord(_t)] = True

DEF UNKNOWN = 0
DEF TRACKED = 1
DEF IGNORED = 2

include "_consts.pxi"

DEF BUY = BID  # an ITCH 'B' order rests on the bid
DEF SELL = ASK
DEF NO_AGGRESSOR = 2


cdef struct Print:
    uint32_t locate
    int64_t timestamp
    int64_t match
    int64_t price
    int64_t shares
    int side        # the aggressor: BUY, SELL or NO_AGGRESSOR (a cross)


cdef inline uint32_t _u16(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 8) | p[1]


cdef inline uint32_t _u32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint64_t _u64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>_u32(p) << 32) | _u32(p + 4)


cdef inline uint64_t _u48(const uint8_t* p) noexcept nogil:
    return (<uint64_t>_u16(p) << 32) | _u32(p + 2)


cdef class ItchReplay:
    """Replay ITCH 5.0 bytes into one L3 book per symbol (optionally only some symbols)."""

    cdef bytes _tail
    cdef readonly int64_t messages
    cdef readonly int64_t offset
    cdef readonly int64_t timestamp
    cdef readonly int64_t ignored
    cdef readonly int64_t errors
    cdef object _filter
    cdef list _books
    cdef list _names
    cdef uint8_t _status[65536]
    cdef int64_t _counts[256]
    cdef int64_t _exec_count[65536]
    cdef int64_t _exec_shares[65536]
    cdef dict _state
    cdef readonly bint keep_trades
    cdef readonly bint keep_orders
    cdef vector[Print] _prints

    def __cinit__(self, symbols=None, trades=False, orders=False):
        self._tail = b""
        self.messages = 0
        self.offset = 0
        self.timestamp = 0
        self.ignored = 0
        self.errors = 0
        self._filter = None if symbols is None else frozenset(symbols)
        self._books = [None] * 65536
        self._names = [None] * 65536
        self._state = {}
        self.keep_trades = bool(trades)
        self.keep_orders = bool(orders)
        memset(self._status, 0, sizeof(self._status))
        memset(self._counts, 0, sizeof(self._counts))
        memset(self._exec_count, 0, sizeof(self._exec_count))
        memset(self._exec_shares, 0, sizeof(self._exec_shares))

    cdef int _register(self, uint32_t locate, const uint8_t* stock) except -1:
        cdef bytes raw = (<const char*>stock)[:8]
        name = raw.rstrip(b" ").decode("ascii", "replace")
        self._names[locate] = name
        if self._filter is None or name in self._filter:
            if self._books[locate] is None:
                self._books[locate] = L3Book(emit_deltas=self.keep_orders, allow_cross=True)
            self._status[locate] = TRACKED
        else:
            self._status[locate] = IGNORED
        return 0

    cdef int _message(self, const uint8_t* m, uint32_t length) except -1:
        cdef uint8_t t = m[0]
        cdef uint32_t locate = _u16(m + 1)
        cdef L3Book book
        cdef uint8_t status
        self._counts[t] += 1
        self.timestamp = <int64_t>_u48(m + 5)
        if t == 65 or t == 70:  # A, F: add order
            if self._status[locate] == UNKNOWN:
                self._register(locate, m + 24)
        elif t == 82:  # R: stock directory
            self._register(locate, m + 11)
            return 0
        elif t == 72:  # H: trading action
            if self._status[locate] == UNKNOWN:
                self._register(locate, m + 11)
            self._state[locate] = chr(m[19])
            return 0
        status = self._status[locate]
        if self.keep_trades and status == TRACKED and (t == 80 or t == 81):
            self._trade(t, locate, m)
            return 0
        if not _BOOK[t]:
            return 0  # no book effect: P, Q, B, S, Y, L, V, W, K, J, h, I, N, O
        if status != TRACKED:
            if status == IGNORED:
                self.ignored += 1
                return 0
        if status != TRACKED:
            raise UnknownStockLocate(locate, -1, chr(t))
        book = <L3Book>self._books[locate]
        if t == 65 or t == 70:
            book.c_add(<int64_t>_u64(m + 11), 0 if m[19] == 66 else 1,
                       <int64_t>_u32(m + 32), <int64_t>_u32(m + 20))
        elif t == 69 or t == 67:  # E, C: execute against the resting order
            self._execute(t, locate, book, m)
        elif t == 88:  # X: partial cancel
            book.c_take(<int64_t>_u64(m + 11), <int64_t>_u32(m + 19))
        elif t == 68:  # D
            book.c_delete(<int64_t>_u64(m + 11))
        else:  # U: new reference, same side
            book.c_replace(<int64_t>_u64(m + 11), <int64_t>_u64(m + 19),
                           <int64_t>_u32(m + 31), <int64_t>_u32(m + 27))
        return 0

    cdef int _execute(self, uint8_t t, uint32_t locate, L3Book book,
                      const uint8_t* m) except -1:
        cdef int64_t ref = <int64_t>_u64(m + 11), shares = <int64_t>_u32(m + 19)
        cdef Order* order
        cdef Print pr
        if self.keep_trades:
            order = book.find(ref)
            pr.side = SELL if order.side == BUY else BUY  # the resting order is the passive side
            pr.price = order.price if t == 69 else <int64_t>_u32(m + 32)
        book.c_take(ref, shares)
        self._exec_count[locate] += 1
        self._exec_shares[locate] += shares
        # C with printable N is already counted elsewhere (e.g. in a cross): not a print.
        if self.keep_trades and (t == 69 or m[31] == 89):
            pr.locate = locate
            pr.timestamp = self.timestamp
            pr.match = <int64_t>_u64(m + 23)
            pr.shares = shares
            self._prints.push_back(pr)
        return 0

    cdef int _trade(self, uint8_t t, uint32_t locate, const uint8_t* m) except -1:
        cdef Print pr
        pr.locate = locate
        pr.timestamp = self.timestamp
        if t == 80:  # P: execution against a non-displayed order of the given side
            pr.side = SELL if m[19] == 66 else BUY
            pr.shares = <int64_t>_u32(m + 20)
            pr.price = <int64_t>_u32(m + 32)
            pr.match = <int64_t>_u64(m + 36)
        else:  # Q: the cross's bulk print, no aggressor
            pr.side = NO_AGGRESSOR
            pr.shares = <int64_t>_u64(m + 11)
            pr.price = <int64_t>_u32(m + 27)
            pr.match = <int64_t>_u64(m + 31)
        if pr.shares > 0:
            self._prints.push_back(pr)
        return 0

    def take_trades(self):
        """The prints since the last call, oldest first, and forget them:
        ``(symbol, timestamp, match number, price, shares, aggressor side)`` with side
        0 buy, 1 sell, 2 none (a cross). Empty unless constructed with ``trades=True``."""
        cdef Print pr
        out = []
        for pr in self._prints:
            out.append((self._names[pr.locate], pr.timestamp, pr.match, pr.price,
                        pr.shares, pr.side))
        self._prints.clear()
        return out

    def feed(self, data, int64_t limit=-1):
        """Apply every complete message in ``data`` (plus the kept tail); return how many.

        Stops early after ``limit`` messages in total when ``limit >= 0``. A bad
        message raises ItchFormatError (UnknownStockLocate for a book message of a
        locate never announced, with its ``locate``) or a book error carrying
        ``offset`` and ``msg_type``; everything before it stays applied, the bad message is
        skipped, and a later ``feed(b"")`` continues with what followed it.
        """
        cdef bytes buf = self._tail + bytes(data) if self._tail else bytes(data)
        cdef const uint8_t* p = <const uint8_t*>(<char*>buf)
        cdef Py_ssize_t n = len(buf), pos = 0
        cdef uint32_t length
        cdef int64_t done = 0, at
        cdef uint8_t t = 0
        err = None
        try:
            while pos + 2 <= n and (limit < 0 or self.messages < limit):
                length = _u16(p + pos)
                if pos + 2 + length > n:
                    break
                t = p[pos + 2] if length else 0
                if length == 0 or <int>length != _LENGTH[t]:
                    err = self._format_error(t, length, self.offset + pos)
                    break
                self._message(p + pos + 2, length)
                pos += 2 + length
                self.messages += 1
                done += 1
        except UnknownStockLocate as exc:
            at = self.offset + pos
            self._counts[t] -= 1
            err = UnknownStockLocate(exc.locate, at, chr(t))
        except (BookError, KeyError, ValueError) as exc:
            at = self.offset + pos
            self._counts[t] -= 1
            err = located(exc, f"ITCH {chr(t)!r} message at byte {at}", at, chr(t))
        if err is not None:
            # Skip the bad message: what came before stays applied, the caller may go on.
            pos += 2 + _u16(p + pos)
            self.errors += 1
            self._tail = buf[pos:]
            self.offset += pos
            raise err
        self._tail = buf[pos:]
        self.offset += pos
        return done

    cdef object _format_error(self, uint8_t t, uint32_t length, int64_t at):
        if length == 0:
            return ItchFormatError(f"zero-length message at byte {at}", at, "")
        if _LENGTH[t] == 0:
            return ItchFormatError(f"unknown ITCH message type {chr(t)!r} at byte {at}", at, chr(t))
        return ItchFormatError(
            f"ITCH {chr(t)!r} message at byte {at} has length {length}, "
            f"the spec says {_LENGTH[t]}", at, chr(t))

    def finish(self):
        """Declare the input complete; refuse a truncated last message."""
        if self._tail:
            t = chr(self._tail[2]) if len(self._tail) > 2 else ""
            raise ItchFormatError(
                f"truncated ITCH input: {len(self._tail)} byte(s) of an incomplete message "
                f"{t!r} at byte {self.offset}", self.offset, t)

    def book(self, symbol):
        """The L3 book of a symbol (KeyError if the replay never saw it or filtered it out)."""
        for locate in range(65536):
            if self._names[locate] == symbol and self._books[locate] is not None:
                return self._books[locate]
        raise KeyError(f"no book for symbol {symbol!r}")

    def symbols(self):
        """Symbols with a book, in stock-locate order."""
        return [self._names[i] for i in range(65536) if self._books[i] is not None]

    def trading_state(self, symbol):
        """Last H trading state letter of a symbol (T, H, P, Q) or None."""
        for locate, name in enumerate(self._names):
            if name == symbol:
                return self._state.get(locate)
        return None

    def executions(self, symbol):
        """``(count, shares)`` executed against the symbol's book (E and C messages)."""
        for locate, name in enumerate(self._names):
            if name == symbol:
                return (self._exec_count[locate], self._exec_shares[locate])
        return (0, 0)

    def counts(self):
        """Messages applied per type letter."""
        return {chr(i): self._counts[i] for i in range(256) if self._counts[i]}
